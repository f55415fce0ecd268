"""Forecasting counts with a negative binomial head (``--loss
negative_binomial``): what the data must be, and intervals in whole numbers.

A count head models the counts themselves, so its series are neither logged
nor differenced, and its intervals are whole numbers >= 0: the lower end
rounded down, the upper up, so that rounding never narrows an interval.
"""

from __future__ import annotations

import numpy as np

from experiments.errors import DataError

# Float noise in counts mapped back from a standardised scale (4.9999999).
_SLACK = 1e-6


def check_counts(series) -> None:
    """A ``DataError`` naming the column and row of the first value of
    ``series``' targets that is not a whole number >= 0."""
    for col in series.targets:
        values = series.frame[col].to_numpy(dtype="float64")
        bad = (values < 0) | (np.abs(values - np.round(values)) > _SLACK)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{series.label}: --loss negative_binomial forecasts counts (whole "
                f"numbers >= 0); column {col!r}, row {row + 1} is {values[row]:g}")


def whole_bounds(lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """An interval's ends as whole numbers >= 0, never narrower."""
    lower = np.maximum(np.floor(np.asarray(lower, dtype="float64") + _SLACK), 0.0)
    return lower, np.maximum(np.ceil(np.asarray(upper, dtype="float64") - _SLACK), 0.0)


def whole(values) -> np.ndarray:
    """Quantile counts as whole numbers >= 0."""
    return np.maximum(np.round(np.asarray(values, dtype="float64")), 0.0)
