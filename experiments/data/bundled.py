"""The datasets that ship with the package or are generated: no file needed."""

from __future__ import annotations

import dataclasses
import importlib.resources

import numpy as np
import pandas as pd

from experiments.data.files import check_generated
from experiments.data.series import Series
from experiments.data.tables import load_csv
from experiments.errors import DataError


def load_airline() -> Series:
    """Box & Jenkins monthly international airline passengers (thousands),
    1949-01 to 1960-12, 144 rows, shipped inside the package."""
    ref = importlib.resources.files("experiments.data") / "airline-passengers.csv"
    with importlib.resources.as_file(ref) as path:
        series = load_csv(path, target=["Passengers"], time_col="Month")
    # Trend and growing seasonal swings: the Box-Jenkins airline model's
    # differencing (of logs, at lag 1 and at lag 12); forecast the last two
    # years, validate on the two before.
    return dataclasses.replace(
        series, name="airline",
        defaults={"window": 24, "horizon": 12, "test_size": 24,
                  "val_size": 24, "transforms": ("log", "diff", "seasonal_diff")},
    )


def make_sine(length: int = 400, period: int = 50, noise: float = 0.05,
              seed: int = 0) -> Series:
    """The classic synthetic sine wave with Gaussian noise.

    Args:
        length: number of steps.
        period: steps per cycle (also the season length).
        noise: standard deviation of the added noise.
        seed: seed of the noise; the same seed gives the same series.
    """
    if length < 2 or period < 2 or noise < 0:
        raise DataError(
            f"sine: need length >= 2, period >= 2, noise >= 0; received "
            f"length={length}, period={period}, noise={noise}")
    check_generated("sine", (length,))
    t = np.arange(length)
    rng = np.random.default_rng(seed)
    y = np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(length)
    frame = pd.DataFrame({"value": y})
    return Series(
        name="sine", frame=frame, targets=("value",), features=("value",),
        source=f"generated:sine(length={length},period={period},"
               f"noise={noise},seed={seed})",
        season=period,
        defaults={"window": period, "horizon": 10, "test_size": 0.15,
                  "val_size": 0.15, "transforms": ()},
    )
