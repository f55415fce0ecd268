"""Quantile levels as plain data: checked, named, paired into intervals.

Without Keras, so that reading flags and serving tables need not import it
(the quantile head itself is ``zoo.quantiles``).
"""

from __future__ import annotations

import numpy as np

from zoo import checks

# The distribution heads (zoo.distributions) and their parameters, in the
# order a model outputs them; the smallest scale and degrees of freedom.
DISTRIBUTIONS = {"normal": ("loc", "scale"), "student_t": ("loc", "scale", "df")}
MIN_SCALE = 1e-3
MIN_DF = 2.0


def check_quantiles(where, quantiles) -> tuple[float, ...]:
    """Quantile levels as sorted floats in (0, 1), the median among them,
    or a ``ValueError`` naming what is wrong."""
    if isinstance(quantiles, (str, bytes)) or not hasattr(quantiles, "__iter__"):
        raise ValueError(f"{where}: `quantiles` must be a sequence of levels in (0, 1) "
                         f"such as (0.1, 0.5, 0.9); received quantiles={quantiles!r}")
    levels = [checks.check_float(where, "quantiles", q, low=0.0, high=1.0)
              for q in quantiles]
    if any(q <= 0.0 for q in levels):
        raise ValueError(f"{where}: every quantile must be strictly between 0 and 1; "
                         f"received quantiles={tuple(quantiles)!r}")
    # Rounded, so that 1 - 0.9 and 0.1 are one level.
    levels = sorted({round(q, 6) for q in levels})
    if 0.5 not in levels:
        raise ValueError(f"{where}: `quantiles` must include the median, 0.5 (the point "
                         f"forecast); received quantiles={tuple(quantiles)!r}")
    return tuple(levels)


def median_index(quantiles) -> int:
    return list(quantiles).index(0.5)


def interval_ends(level) -> tuple[float, float]:
    """The quantiles that bound a central ``level``% interval: 80 -> (0.1, 0.9)."""
    low = round((100 - float(level)) / 200, 6)
    return low, round(1 - low, 6)


def column_name(q) -> str:
    """How a served table names quantile ``q``: 0.1 -> 'q10', 0.025 -> 'q2.5'."""
    return f"q{round(100 * float(q), 4):g}"


def distribution_quantiles(parameters, distribution, quantiles) -> np.ndarray:
    """A distribution head's outputs ``(..., parameters)`` as its
    ``quantiles``, ``(..., len(quantiles))``: location + scale times the
    standard Normal's (or Student-t's, at each output's degrees of freedom)."""
    parameters = np.asarray(parameters, dtype="float64")
    loc, scale = parameters[..., :1], parameters[..., 1:2]
    levels = np.asarray(quantiles, dtype="float64")
    if distribution == "normal":
        from statistics import NormalDist

        z = np.array([NormalDist().inv_cdf(q) for q in levels])
    else:
        from scipy.stats import t

        z = t.ppf(levels, parameters[..., 2:3])
    return loc + scale * z
