"""The errors every stage raises; the CLI maps each to an exit code.

- ``DataError`` (bad input data) and ``ConfigError`` (a setting that cannot
  work): exit 2, and no MLflow run was opened.
- ``TrainingError`` (training itself went wrong, e.g. a NaN loss): exit 1,
  and the run is recorded FAILED with the cause.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data; the message says where and what."""


class ConfigError(ValueError):
    """A setting that cannot work; the message names it, says what is allowed
    and what was received."""


class TrainingError(RuntimeError):
    """Training itself went wrong (e.g. the loss became NaN)."""


def loss_problem(losses) -> str | None:
    """What is wrong with a training run's per-epoch ``losses``: ``None``
    when every one is finite, else where it became NaN or infinite."""
    import math

    losses = list(losses)
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if losses and bad is None:
        return None
    if bad is None:
        return "training loss became undefined at epoch 0"
    return f"training loss became {losses[bad]} at epoch {bad + 1}"


def check_losses(history: dict) -> None:
    """Raise ``TrainingError`` if the training loss became NaN or infinite."""
    problem = loss_problem(history.get("loss", []))
    if problem:
        raise TrainingError(f"{problem}; try a lower learning rate")
