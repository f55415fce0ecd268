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

from experiments.data import DataError, Series

TRANSFORMS = ("log", "diff", "seasonal_diff")


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
        window, horizon: input length and forecast length, in steps.
        transforms: the target transforms applied, in order.
        season: season length used by ``seasonal_diff``, MASE and the
            seasonal-naive baseline.
        n_train, n_val, n_test: rows in each part.
        mean, std: scaler statistics per input column, from training rows.
        train, val, test: the windows of each part.
    """

    series: Series
    window: int
    horizon: int
    transforms: tuple[str, ...]
    season: int
    n_train: int
    n_val: int
    n_test: int
    mean: pd.Series
    std: pd.Series
    train: Windows
    val: Windows
    test: Windows
    levels: dict = dataclasses.field(repr=False, default_factory=dict)

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
        targets = list(self.series.targets)
        z = np.asarray(y, dtype="float64").reshape(len(origins), self.horizon,
                                                   len(targets))
        z = z * self.std[targets].to_numpy() + self.mean[targets].to_numpy()
        for step in reversed(self.transforms):
            if step == "log":
                z = np.exp(z)
            else:
                lag = 1 if step == "diff" else self.season
                z = _undifference(z, self.levels[step], origins, lag)
        return z


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
    lost = sum(1 if s == "diff" else season if s == "seasonal_diff" else 0
               for s in transforms)
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

    # === Transforms (targets only; each uses past values only) ===
    transformed = frame.copy()
    levels = {}
    for step in transforms:
        cols = list(series.targets)
        if step == "log":
            bad = transformed[cols] <= 0
            if bad.any().any():
                col = bad.any().idxmax()
                row = int(np.flatnonzero(bad[col].to_numpy())[0])
                raise DataError(
                    f"{series.label}: transform 'log' needs positive values; "
                    f"column {col!r}, row {row + 1} is "
                    f"{transformed[col].iloc[row]}")
            transformed[cols] = np.log(transformed[cols])
        else:
            lag = 1 if step == "diff" else season
            levels[step] = transformed[cols].to_numpy(copy=True)
            transformed[cols] = transformed[cols].diff(lag)

    # === Scaler: training rows only ===
    fit_rows = transformed.iloc[lost:n_train]
    mean, std = fit_rows.mean(), fit_rows.std(ddof=0)
    flat = std[std <= 1e-12 * (1 + mean.abs())]
    if len(flat):
        raise DataError(
            f"{series.label}: column {flat.index[0]!r} is constant over the "
            f"{n_train} training rows, so it cannot be scaled; drop it or "
            f"move the split")
    scaled = (transformed - mean) / std

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
        series=series, window=window, horizon=horizon, transforms=transforms,
        season=season, n_train=n_train, n_val=n_val, n_test=n_test,
        mean=mean, std=std, train=part(train), val=part(val), test=part(test),
        levels=levels,
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


def _undifference(z, level, origins, lag):
    """Invert ``x[t] - x[t - lag]`` for forecasts ``z`` made at ``origins``,
    using true levels up to each origin and the forecasts after it."""
    n, horizon, _ = z.shape
    out = np.empty_like(z)
    for h in range(horizon):
        back = h - lag  # index into the forecast of the value `lag` earlier
        if back >= 0:
            base = out[:, back]
        else:
            base = level[origins + 1 + back]
        out[:, h] = z[:, h] + base
    return out
