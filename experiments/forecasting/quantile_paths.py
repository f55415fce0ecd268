"""A quantile network's forecasts, from the scale it forecasts in (scaled,
perhaps logged and differenced) to the data's units.

The median maps exactly: it is one path. The other quantiles do not: with
differencing, a forecast ``h`` steps ahead is the sum of ``h`` forecast
changes, and the quantile of a sum is not the sum of the changes'
quantiles (that sum grows with ``h``, the spread of a sum of independent
changes with its square root). So each quantile's distance from the median
is taken one step at a time: the median path with that step moved to the
quantile, mapped to the data's units, and what it moves at every later step
noted; the distance at a step is the square root of the sum of the squares
of those moves, as for independent changes. Without differencing, a step
moves only itself, and this is the quantile mapped on its own.
"""

from __future__ import annotations

import numpy as np


def to_original(inverse, raw: np.ndarray, quantiles) -> np.ndarray:
    """``raw`` quantile outputs ``(n, horizon, targets, quantiles)`` (or
    ``(n, horizon, quantiles)`` for one target) in the data's units,
    ``(n, horizon, targets, quantiles)``.

    Args:
        inverse: ``inverse(outputs, copies)`` maps ``(copies * n, horizon,
            targets)`` network outputs, ``copies`` blocks of the ``n``
            forecasts in order, to the data's units.
        quantiles: the levels, sorted, 0.5 among them.
    """
    raw = np.asarray(raw, dtype="float64")
    if raw.ndim == 3:  # one target, forecast as (n, horizon, quantiles)
        raw = raw[:, :, None, :]
    n, horizon = raw.shape[:2]
    median = list(quantiles).index(0.5)
    centre_raw = raw[..., median]
    centre = inverse(centre_raw, 1)
    out = np.empty(raw.shape, dtype="float64")
    out[..., median] = centre
    # moved[j]: the median path with step j moved to a quantile, (horizon, n, horizon, targets)
    one_step = np.eye(horizon)[:, None, :, None]
    for k, level in enumerate(quantiles):
        if k == median:
            continue
        moved = centre_raw[None] + one_step * (raw[..., k] - centre_raw)[None]
        shift = inverse(moved.reshape(horizon * n, *centre_raw.shape[1:]), horizon)
        shift = shift.reshape(horizon, n, *centre.shape[1:]) - centre[None]
        distance = np.sqrt(np.sum(shift ** 2, axis=0))
        out[..., k] = centre + (distance if level > 0.5 else -distance)
    return out
