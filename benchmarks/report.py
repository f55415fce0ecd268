"""Where a benchmark's result goes: ``<out>/<stem>.json`` (everything) and
``<out>/<stem>.md`` (the table the README shows), and the table printed."""

from __future__ import annotations

import json
import os


def write(out: str, stem: str, result: dict, table: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(result, f, indent=2, default=float)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(table)
    print("\n" + table)
