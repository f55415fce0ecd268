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
