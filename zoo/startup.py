"""TensorFlow's start-up lines, kept off the user's terminal.

TensorFlow's C++ libraries print lines such as

    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine ...
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error ...

while they load, before ``absl::InitializeLog`` has read
``TF_CPP_MIN_LOG_LEVEL``, so that variable cannot hide them, and a new user
reads ``E`` and "failed call" as a failure when the machine merely has no
GPU. ``install()`` puts an import hook in front of TensorFlow: its import,
and the first look for devices (where ``cuInit`` runs), write to a
temporary file instead of standard error, and every line that is not such
a start-up line (a Python warning, anything of ours) is written back to
standard error afterwards. Errors still raise as they would; lines at or
above the level asked for with ``TF_CPP_MIN_LOG_LEVEL`` still show.

Standard library only: this runs before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

# absl's format: severity, date, time, thread, file:line] message.
_CPP_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-/]+:\d+\] ")
_BEFORE_INIT = "WARNING: All log messages before absl::InitializeLog() is called"
_CONTINUATION = "To enable the following instructions:"  # cpu_feature_guard's 2nd line
# Said at start-up on any machine without a usable NVIDIA driver: not an error.
_NO_GPU = ("cuInit", "cuda drivers", "CUDA driver")
_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
# Default verbosity for TensorFlow's own later logging (after absl starts):
# fatal only. Its E lines at run time are notes for TensorFlow's developers
# ("oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back...",
# seen in `make demo`); a real failure raises a Python error, which always shows.
DEFAULT_LEVEL = "3"


def keep_line(line: str, min_level: int) -> bool:
    """Whether a line written during TensorFlow's start-up reaches the user."""
    if line.startswith(_BEFORE_INIT) or line.startswith(_CONTINUATION):
        return False
    match = _CPP_LINE.match(line)
    if not match:
        return True  # not TensorFlow's C++ logging: a warning or error of Python's
    level = _LEVELS[match.group(1)]
    if level == 3:
        return True
    if level == 2 and any(s in line for s in _NO_GPU):
        return min_level <= 0  # no GPU is the normal case on a CPU machine
    return level >= min_level


@contextlib.contextmanager
def filtered_stderr():
    """Send file descriptor 2 to a temporary file inside, then write back
    the lines ``keep_line`` keeps."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (some embedders)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", DEFAULT_LEVEL) or 0)
            kept = [ln for ln in text.splitlines(keepends=True) if keep_line(ln, level)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of the ``tensorflow`` package."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: find the real spec without us
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def quietly(module):
            with filtered_stderr():
                exec_module(module)
                # The first look for devices is where cuInit runs and fails
                # on a machine without a GPU: inside, too.
                module.config.list_physical_devices("GPU")

        loader.exec_module = quietly
        return spec


class _NotRetracing:
    """Drops TensorFlow's "triggered tf.function retracing" warning: a search,
    a cross-validation or a refit builds a new model each time, and each
    traces its own functions once, which that heuristic mistakes for a loop
    that retraces."""

    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def install() -> None:
    """Hide TensorFlow's start-up lines in this process (idempotent; does
    nothing once TensorFlow is imported). Also sets ``TF_CPP_MIN_LOG_LEVEL``
    to 3 unless the user set it, for what TensorFlow logs later, and drops
    its retracing warning (see ``_NotRetracing``)."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_LEVEL)
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NotRetracing) for f in logger.filters):
        logger.addFilter(_NotRetracing())
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() == "0":
        # Level 0 asks for everything, as TensorFlow prints it (debugging a GPU
        # set-up; a crash inside the import is then not hidden in the filter).
        return
    if not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())
