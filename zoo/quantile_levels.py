"""Quantile levels as plain data: checked, named, paired into intervals.

Without Keras, so that reading flags and serving tables need not import it
(the quantile head itself is ``zoo.quantiles``).
"""

from __future__ import annotations

import numpy as np

from zoo import checks

# The distribution heads (zoo.distributions) and their parameters, in the
# order a model outputs them; the smallest scale, degrees of freedom and
# dispersion. A count distribution's first parameter is the location of its
# mean count, ``softplus(center + scale * loc)`` (see ``count_mean``).
DISTRIBUTIONS = {"normal": ("loc", "scale"), "student_t": ("loc", "scale", "df"),
                 "negative_binomial": ("loc", "dispersion")}
COUNT_DISTRIBUTIONS = ("negative_binomial",)
MIN_SCALE = 1e-3
MIN_DF = 2.0
# Above Poisson (dispersion 0) by a little: 1 / dispersion enters lgamma,
# whose differences lose float32 precision as it grows.
MIN_DISPERSION = 1e-3


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


def count_mean(loc, center=0.0, scale=1.0):
    """A count head's mean count from its location ``loc``, given in units
    ``(count - center) / scale`` (a standardised target's): positive by a
    softplus, which is the identity well above zero."""
    return np.logaddexp(0.0, center + scale * np.asarray(loc, dtype="float64"))


def distribution_quantiles(parameters, distribution, quantiles, center=0.0,
                           scale=1.0) -> np.ndarray:
    """A distribution head's outputs ``(..., parameters)`` as its
    ``quantiles``, ``(..., len(quantiles))``, in the units of its location:
    location + scale times the standard Normal's (or Student-t's, at each
    output's degrees of freedom); a negative binomial's quantile counts
    (whole numbers), as ``(count - center) / scale``. ``center`` and
    ``scale``: a count head's standardisation, one per target (the axis
    before the parameters) or one for all."""
    parameters = np.asarray(parameters, dtype="float64")
    loc, spread = parameters[..., :1], parameters[..., 1:2]
    levels = np.asarray(quantiles, dtype="float64")
    if distribution in COUNT_DISTRIBUTIONS:
        from scipy.stats import nbinom

        center, scale = _standardisation(center, scale, per_target_axis=True)
        counts = nbinom.ppf(levels, *_count_law(loc, spread, center, scale))
        return (counts - center) / scale
    if distribution == "normal":
        from statistics import NormalDist

        z = np.array([NormalDist().inv_cdf(q) for q in levels])
    else:
        from scipy.stats import t

        z = t.ppf(levels, parameters[..., 2:3])
    return loc + spread * z


def _standardisation(center, scale, per_target_axis=False):
    """A count head's ``center`` and ``scale`` as arrays, one per target (or
    one for all); with ``per_target_axis`` shaped to broadcast against
    ``(..., targets, 1)`` parameters."""
    center, scale = (np.asarray(v, dtype="float64") for v in (center, scale))
    if per_target_axis:
        center, scale = (v[..., None] if v.ndim else v for v in (center, scale))
    return center, scale


def _count_law(loc, dispersion, center, scale) -> tuple[np.ndarray, np.ndarray]:
    """The negative binomial of a count head's location and dispersion as
    NumPy and SciPy take it: ``(n, p)``."""
    mean, size = count_mean(loc, center, scale), 1.0 / dispersion
    return size, size / (size + mean)


def distribution_samples(parameters, distribution, rng, center=0.0,
                         scale=1.0) -> np.ndarray:
    """One draw from each of a distribution head's outputs ``(...,
    parameters)``, ``(...)``, in the units of its location (as
    ``distribution_quantiles``): a negative binomial's a whole count, as
    ``(count - center) / scale``. ``rng``: a ``numpy.random.Generator``."""
    parameters = np.asarray(parameters, dtype="float64")
    loc, spread = parameters[..., 0], parameters[..., 1]
    if distribution in COUNT_DISTRIBUTIONS:
        center, scale = _standardisation(center, scale)
        counts = rng.negative_binomial(*_count_law(loc, spread, center, scale))
        return (counts - center) / scale
    if distribution == "normal":
        return loc + spread * rng.standard_normal(loc.shape)
    return loc + spread * rng.standard_t(parameters[..., 2])
