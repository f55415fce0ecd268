"""Tags that say where and with what a run was made."""

from __future__ import annotations

import os
import sys


def run_environment() -> dict[str, str]:
    """Tags that say where and with what a run was made."""
    from importlib.metadata import PackageNotFoundError, version

    import keras

    try:
        package = version("lstm-zoo")
    except PackageNotFoundError:
        package = "unknown"
    return {
        "keras_backend": keras.config.backend(),
        "keras_version": keras.__version__,
        "device": device_name(),
        "git_commit": git_commit(),
        "lstm_zoo_version": package,
        "python": sys.version.split()[0],
    }


def device_name() -> str:
    """``"gpu"`` when the Keras backend sees a GPU, else ``"cpu"``."""
    import keras

    backend = keras.config.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
        if backend == "torch":
            import torch

            return "gpu" if torch.cuda.is_available() else "cpu"
        if backend == "jax":
            import jax

            return "gpu" if jax.default_backend() == "gpu" else "cpu"
    except Exception:  # a broken GPU stack should not stop a CPU run
        pass
    return "cpu"


def git_commit() -> str:
    """The commit of the source tree this package runs from, if any.

    Read from ``.git`` directly rather than by running ``git``: a search's
    processes hold gRPC channels, and a fork after gRPC has started can
    abort the process (gRPC's fork handlers).
    """
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = os.path.join(folder, ".git")
    try:
        if os.path.isfile(git):  # a worktree: "gitdir: <path>"
            with open(git) as f:
                git = os.path.join(folder, f.read().split(":", 1)[1].strip())
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head  # a detached HEAD is the commit itself
        ref = head.split(":", 1)[1].strip()
        common = git
        if os.path.isfile(os.path.join(git, "commondir")):
            with open(os.path.join(git, "commondir")) as f:
                common = os.path.join(git, f.read().strip())
        for base in (git, common):
            path = os.path.join(base, ref)
            if os.path.isfile(path):
                with open(path) as f:
                    return f.read().strip()
        with open(os.path.join(common, "packed-refs")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except (OSError, IndexError):
        pass
    return "unknown"
