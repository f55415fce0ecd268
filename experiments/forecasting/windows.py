"""From a validated series to model-ready windows, without leakage.

The flow, in order:

1. split the rows chronologically into train / validation / test;
2. apply the optional target transforms (log, differencing, seasonal
   differencing), which use only past values;
3. fit the scaler on the training rows only;
4. cut windows with ``keras.utils.timeseries_dataset_from_array`` and give
   each one to the part its *targets* fall in: a window whose targets
   straddle two parts is dropped, so no training target lies in the
   validation or test period.

``Prepared.to_original`` inverts scaling and transforms so that metrics are
computed in the data's own units.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from experiments.config import TRANSFORMS
from experiments.data import DataError, Series
from experiments.forecasting.preprocessing import Preprocessor


@dataclasses.dataclass(frozen=True)
class Windows:
    """Windows of one part.

    Attributes:
        x: inputs, ``(n, window, features)``, scaled.
        y: targets, ``(n, horizon)`` for one target or
            ``(n, horizon, targets)`` for several, transformed and scaled.
        origins: for each window, the row of its last input (the forecast
            origin) in the series' frame.
    """

    x: np.ndarray
    y: np.ndarray
    origins: np.ndarray

    def __len__(self):
        return len(self.x)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything training and evaluation need from one series.

    Attributes:
        series: the source data.
        preprocessor: transforms, scaler and window settings, fitted on the
            training rows (see ``experiments.forecasting.preprocessing``).
        n_train, n_val, n_test: rows in each part.
        train, val, test: the windows of each part.
    """

    series: Series
    preprocessor: Preprocessor
    n_train: int
    n_val: int
    n_test: int
    train: Windows
    val: Windows
    test: Windows

    # The preprocessing's settings, read through for the rest of the run.
    window = property(lambda self: self.preprocessor.window)
    horizon = property(lambda self: self.preprocessor.horizon)
    transforms = property(lambda self: self.preprocessor.transforms)
    season = property(lambda self: self.preprocessor.season)
    mean = property(lambda self: pd.Series(self.preprocessor.mean))
    std = property(lambda self: pd.Series(self.preprocessor.std))

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.window, len(self.series.features))

    @property
    def outputs(self):
        n_targets = len(self.series.targets)
        return self.horizon if n_targets == 1 else (self.horizon, n_targets)

    def truth(self, part: Windows) -> np.ndarray:
        """Actual target values after each origin, in original units,
        shaped ``(n, horizon, targets)``."""
        values = self.series.frame[list(self.series.targets)].to_numpy()
        rows = part.origins[:, None] + np.arange(1, self.horizon + 1)
        return values[rows]

    def to_original(self, y: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """Map model outputs (scaled, transformed) back to original units,
        ``(n, horizon, targets)``."""
        values = self.series.frame[list(self.series.targets)].to_numpy(dtype="float64")
        lost = self.preprocessor.lost
        rows = origins[:, None] + np.arange(-lost + 1, 1)  # up to each origin
        return self.preprocessor.inverse_transform(y, values[rows])


def resolve_part(size, n: int, index, what: str) -> int:
    """Rows in a part given as a fraction (0 < f < 1), a count, or a date
    (the part then starts at that date)."""
    if isinstance(size, str):
        try:
            return int(float(size)) if float(size) >= 1 else resolve_part(
                float(size), n, index, what)
        except ValueError:
            pass
        if not isinstance(index, pd.DatetimeIndex):
            raise DataError(f"--{what}-size {size!r}: a date needs a time "
                            f"column (--time-col)")
        try:
            start = pd.Timestamp(size)
        except ValueError:
            raise DataError(f"--{what}-size {size!r} is not a fraction, a "
                            f"count or a date") from None
        return int((index >= start).sum())
    if isinstance(size, float) and 0 < size < 1:
        return max(1, int(round(n * size)))
    if isinstance(size, (int, float)) and size >= 1 and size == int(size):
        return int(size)
    raise DataError(f"--{what}-size must be a fraction in (0, 1), a row "
                    f"count >= 1 or a date; received {size!r}")


def rows_lost(transforms, season: int) -> int:
    """Rows lost at the start of a series to its differencing."""
    return sum(1 if s == "diff" else season if s == "seasonal_diff" else 0
               for s in transforms)


def prepare(series: Series, *, window: int, horizon: int, val_size,
            test_size, transforms=(), season: int | None = None) -> Prepared:
    """Split, transform, scale and window ``series``.

    Args:
        series: validated data from ``experiments.data``.
        window: input steps per sample.
        horizon: steps forecast directly (one output per step).
        val_size, test_size: see ``resolve_part``; the test part is the
            last rows, validation the rows before it.
        transforms: any of ``TRANSFORMS``, applied to the targets in order.
        season: season length; defaults to the series' inferred one.

    Raises:
        DataError: if the series is too short for the settings (the message
            gives the minimum length), or a transform cannot apply.
    """
    for name, value in (("window", window), ("horizon", horizon)):
        if not isinstance(value, int) or value < 1:
            raise DataError(f"--{name} must be an int >= 1; received {value!r}")
    transforms = tuple(transforms)
    for step in transforms:
        if step not in TRANSFORMS:
            raise DataError(f"unknown transform {step!r}; allowed: "
                            f"{list(TRANSFORMS)}")
    season = season or series.season or 1
    frame = series.frame
    n = len(frame)
    n_test = resolve_part(test_size, n, frame.index, "test")
    n_val = resolve_part(val_size, n - n_test, frame.index, "val")
    n_train = n - n_val - n_test
    lost = rows_lost(transforms, season)
    need_train = lost + window + horizon
    if n_train < need_train or n_val < horizon or n_test < horizon:
        minimum = need_train + max(n_val, horizon) + max(n_test, horizon)
        raise DataError(
            f"{series.label}: the series is too short: {n} rows split into "
            f"train {n_train} / validation {n_val} / test {n_test}, but "
            f"window {window} + horizon {horizon}"
            + (f" + {lost} rows lost to {'+'.join(transforms)}" if lost else "")
            + f" need at least {need_train} training rows and {horizon} in "
            f"validation and test each: at least {minimum} rows in all")

    # === Transforms and scaler, fitted on the training rows only ===
    pre = Preprocessor.fit(series, window=window, horizon=horizon, transforms=transforms,
                           season=season, n_train=n_train)
    scaled = pre.transform(frame)

    # === Windows, assigned by where their targets fall ===
    x, y, origins = _cut_windows(scaled, series, window, horizon, lost)
    first_target = origins + 1
    last_target = origins + horizon
    train = last_target < n_train
    val = (first_target >= n_train) & (last_target < n_train + n_val)
    test = first_target >= n_train + n_val

    def part(mask):
        return Windows(x[mask], y[mask], origins[mask])

    return Prepared(
        series=series, preprocessor=pre, n_train=n_train, n_val=n_val, n_test=n_test,
        train=part(train), val=part(val), test=part(test),
    )


def _cut_windows(scaled: pd.DataFrame, series: Series, window, horizon, start):
    import keras  # heavy; only when windows are actually cut

    features = scaled[list(series.features)].to_numpy("float32")[start:]
    targets = scaled[list(series.targets)].to_numpy("float32")[start:]
    # Each sample spans window + horizon rows; the first `window` rows are
    # its inputs, the rest its targets (direct multi-step).
    data = np.concatenate([features, targets], axis=1)
    dataset = keras.utils.timeseries_dataset_from_array(
        data, None, sequence_length=window + horizon, batch_size=4096,
        shuffle=False)
    blocks = np.concatenate([np.asarray(b) for b in dataset], axis=0)
    n_features = features.shape[1]
    x = blocks[:, :window, :n_features]
    y = blocks[:, window:, n_features:]
    if y.shape[-1] == 1:
        y = y[..., 0]
    origins = start + np.arange(len(blocks)) + window - 1
    return x, y, origins
