"""Install PyTorch's CPU build for the benchmark's PyTorch column, then
neuralforecast (its panel column) on top of it.

``pip install torch`` from the public index resolves to the CUDA build and
several GB of NVIDIA wheels. This asks pip's configured indexes for a
``+cpu`` build first, then PyTorch's own CPU index, and otherwise writes why
it could not into ``<venv>/torch-missing.txt``, which ``make bench`` prints
in place of the column. neuralforecast needs PyTorch, so it is installed
only after a CPU build is there (else pip would fetch the CUDA one); why it
could not be goes into ``<venv>/neuralforecast-missing.txt``. Run by
``make bench``; safe to run again.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MISSING = os.path.join(sys.prefix, "torch-missing.txt")
NEURALFORECAST = "neuralforecast==3.3.0"
NEURALFORECAST_MISSING = os.path.join(sys.prefix, "neuralforecast-missing.txt")


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True,
                          text=True)


def cpu_versions() -> list[str]:
    """The ``+cpu`` versions of torch that pip's configured indexes offer,
    newest first."""
    listed = pip("index", "versions", "torch")
    match = re.search(r"Available versions: (.*)", listed.stdout)
    return [v for v in (match.group(1).split(", ") if match else []) if v.endswith("+cpu")]


def install() -> str | None:
    """Install a CPU build; the reason it could not, or None."""
    if importlib.util.find_spec("torch") is not None:
        return None
    tried = []
    for version in cpu_versions()[:1]:
        done = pip("install", "--quiet", f"torch=={version}")
        if done.returncode == 0:
            return None
        tried.append(f"torch=={version} from pip's indexes: {_last_line(done.stderr)}")
    done = pip("install", "--quiet", "torch", "--index-url", CPU_INDEX)
    if done.returncode == 0:
        return None
    tried.append(f"torch from {CPU_INDEX}: {_last_line(done.stderr)}")
    return "no CPU build of PyTorch could be installed (" + "; ".join(tried) + ")"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def install_neuralforecast(torch_missing: str | None) -> str | None:
    """Install neuralforecast over the CPU PyTorch; the reason it could not, or None."""
    if torch_missing:
        return f"it needs PyTorch, and {torch_missing}"
    if importlib.util.find_spec("neuralforecast") is not None:
        return None
    done = pip("install", "--quiet", NEURALFORECAST)
    return None if done.returncode == 0 else f"{NEURALFORECAST}: {_last_line(done.stderr)}"


def record(path: str, why: str | None, column: str) -> None:
    """Write (or clear) why ``column`` of the benchmark will be missing."""
    if why is None:
        if os.path.exists(path):
            os.remove(path)
        return
    with open(path, "w") as f:
        f.write(why + "\n")
    print(f"benchmark: {why}; the {column} column will be missing", file=sys.stderr)


def main() -> int:
    why = install()
    record(MISSING, why, "PyTorch")
    record(NEURALFORECAST_MISSING, install_neuralforecast(why), "neuralforecast")
    return 0  # the rest of the benchmark runs without them


if __name__ == "__main__":
    sys.exit(main())
