"""The ``lstm-zoo`` command line.

Thin by design: each subcommand parses its flags and calls one plain function
from ``zoo``, ``experiments`` or ``tuning``. Heavy imports (TensorFlow, Keras,
MLflow) happen inside the handlers, so ``lstm-zoo --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys

# The input each family is shown with in `lstm-zoo models`.
_DEMO_SHAPES = {
    ("time", "features"): ((24, 1), 12),
    ("time", "rows", "cols", "channels"): ((10, 16, 16, 1), 1),
}


def cmd_models(args) -> int:
    import zoo

    rows = []
    for name in zoo.list_models():
        info = zoo.get(name)
        shape, outputs = _DEMO_SHAPES[info.input_axes]
        model = zoo.build_model(name, shape, outputs)
        rows.append((name, f"{model.count_params():,}", str(shape),
                     ",".join(info.heads), info.summary))
    header = ("model", "params", "input", "heads", "")
    print(_table([header, *rows]))
    print("\nParameter counts use the default hyperparameters; forecasters "
          "predict 12 steps, conv_lstm one frame.")
    return 0


def _table(rows) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        cells = [str(c).rjust(w) if c and str(c)[0].isdigit() else str(c).ljust(w)
                 for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-zoo",
        description="Recurrent network zoo with hyperparameter search and "
                    "MLflow tracking.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("models", help="list the model families")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
