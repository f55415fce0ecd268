"""Short series: settings that fit a series too short for the defaults.

A series of 54 months asked for 18 months ahead cannot hold the default
splits (15% validation and test, each at least the horizon) and a 24-month
window. Rather than refuse it, the settings the user did not name shrink,
in this order, until the training rows hold ``MIN_TRAIN_WINDOWS`` windows:

1. validation and test become one horizon each;
2. the window shrinks (down to ``MIN_WINDOW``);
3. the network's direct horizon shrinks (18, 9, 6, ... steps) and the
   forecast rolls forward to the horizon asked for, as ``--steps`` past the
   horizon does (possible only when every input column is forecast).

Below ``minimum_rows`` (two seasons plus the horizon) a series is refused
with that minimum named. What changed is said in one sentence, which the
run records.
"""

from __future__ import annotations

import math

MIN_TRAIN_WINDOWS = 8
MIN_WINDOW = 2


def minimum_rows(horizon: int, season: int | None, *, lost: int = 1,
                 rolls: bool = True) -> int:
    """The fewest rows a forecast of ``horizon`` steps is attempted on: two
    seasons plus the horizon, or more where that is too few for any
    settings ``fit_to_length`` may choose."""
    floor = 2 * max(season or 1, MIN_WINDOW) + horizon
    start = {"window": MIN_WINDOW, "horizon": horizon, "val_size": horizon,
             "test_size": horizon}
    n = floor
    # Neither fits as it is (one training window) nor shrinks to fit: one more row.
    while (training_windows(n, MIN_WINDOW, horizon, horizon, horizon, lost) < 1
           and fit_to_length(n, start, set(), lost=lost, rolls=rolls)[1] is None):
        n += 1
    return n


def training_windows(n: int, window: int, horizon: int, n_val: int, n_test: int,
                     lost: int) -> int:
    """Windows whose inputs and targets lie in the training rows."""
    return n - n_val - n_test - lost - window - horizon + 1


def fit_to_length(n: int, chosen: dict, given: set, *, lost: int, rolls: bool):
    """``(settings, note)``: ``chosen`` (window, horizon, val_size, test_size,
    already resolved to row counts where ``given`` does not hold them) with
    the unnamed ones shrunk to fit ``n`` rows, and the sentence saying so;
    ``(chosen, None)`` when they fit as they are, or nothing that may shrink
    makes them fit (``prepare`` then says why).

    Args:
        n: rows in the series.
        chosen: the settings; ``val_size``/``test_size`` as row counts.
        given: the names of the settings the user (or the dataset) fixed;
            a named horizon is still forecast in full, by rolling.
        lost: rows the transforms lose at the start.
        rolls: the forecast can roll past the network's horizon (every
            input column is a target).
    """
    window, horizon = chosen["window"], chosen["horizon"]
    n_val, n_test = chosen["val_size"], chosen["test_size"]
    if min(n_val, n_test) >= horizon and training_windows(
            n, window, horizon, n_val, n_test, lost) >= 1:
        return chosen, None
    horizons = [horizon]
    if rolls:  # the forecast still covers the horizon asked for
        horizons += sorted({math.ceil(horizon / k) for k in range(2, horizon + 1)},
                           reverse=True)
    for direct in horizons:
        val = n_val if "val_size" in given else direct
        test = n_test if "test_size" in given else direct
        windows = [window] if "window" in given else range(window, MIN_WINDOW - 1, -1)
        for w in windows:
            if min(val, test) >= direct and training_windows(
                    n, w, direct, val, test, lost) >= MIN_TRAIN_WINDOWS:
                settings = dict(chosen, window=w, horizon=direct, val_size=val,
                                test_size=test)
                return settings, _note(n, chosen, settings)
    return chosen, None


def _note(n, before, after) -> str:
    changes = [f"{name.replace('_size', '')} {before[name]} -> {after[name]}"
               for name in ("window", "val_size", "test_size") if before[name] != after[name]]
    text = f"the series is short ({n} rows): {', '.join(changes)}"
    if after["horizon"] != before["horizon"]:
        text += (f"; the network forecasts {after['horizon']} steps at a time and rolls "
                 f"forward to the {before['horizon']} asked for")
    return text
