"""A series' preprocessing as one object: transforms, scaler and windowing.

``Preprocessor.fit`` learns everything from the training rows only; then

- ``transform(frame)``: raw values -> what the model sees (targets log /
  differenced / seasonally differenced, every input column standardised);
- ``inverse_transform(z, past)``: model outputs -> forecasts in the data's
  own units, given the raw target values up to each forecast origin;
- ``to_config()`` / ``from_config()``: a plain-JSON round trip, so a logged
  or served model carries its preprocessing with it.

It also keeps what forecasting past the end of the data needs: the series'
frequency, its last timestamp and its last observations. It needs NumPy and
pandas only: no Keras, no training code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from experiments.config import TRANSFORMS
from experiments.data import infer_freq
from experiments.errors import DataError


@dataclasses.dataclass(frozen=True)
class Preprocessor:
    """Transforms, scaler and window settings of one series.

    Attributes:
        targets: the columns forecast; features: the model's input columns
            (targets first).
        window, horizon: input and output length, in steps.
        transforms: applied to the targets, in order (``TRANSFORMS``).
        season: the lag of ``seasonal_diff``.
        mean, std: the scaler, per input column, from training rows only.
        freq: the time index's frequency (``"MS"``, ``"W-MON"``...) or None.
        last_time: the last timestamp seen (ISO 8601) or None.
        tail: the last ``lost`` raw values of each target, oldest first:
            what undoing the differencing after the end of the data needs.
    """

    targets: tuple[str, ...]
    features: tuple[str, ...]
    window: int
    horizon: int
    transforms: tuple[str, ...]
    season: int
    mean: dict
    std: dict
    freq: str | None = None
    last_time: str | None = None
    tail: dict = dataclasses.field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Rows lost at the start to differencing (and needed before an
        origin to undo it)."""
        return sum(self._lag(s) for s in self.transforms)

    def _lag(self, step: str) -> int:
        return {"log": 0, "diff": 1, "seasonal_diff": self.season}[step]

    # === Fitting ===
    @classmethod
    def fit(cls, series, *, window: int, horizon: int, transforms=(), season: int = 1,
            n_train: int) -> Preprocessor:
        """Learn the preprocessing of ``series`` from its first ``n_train``
        rows.

        Raises:
            DataError: a transform that cannot apply (log of a value <= 0), or
                a column constant over the training rows (it cannot be scaled).
        """
        for step in transforms:
            if step not in TRANSFORMS:
                raise DataError(f"unknown transform {step!r}; allowed: {list(TRANSFORMS)}")
        frame = series.frame
        targets, features = tuple(series.targets), tuple(series.features)
        index = frame.index
        timed = isinstance(index, pd.DatetimeIndex)
        if timed:

            freq, last_time = infer_freq(index), index[-1].isoformat()
        else:
            freq = last_time = None
        probe = cls(targets, features, window, horizon, tuple(transforms), season,
                    {}, {}, freq, last_time)
        current = frame[list(targets)]
        for step in transforms:  # log needs positive values where it applies
            if step == "log":
                bad = current <= 0
                if bad.any().any():
                    col = bad.any().idxmax()
                    row = int(np.flatnonzero(bad[col].to_numpy())[0])
                    raise DataError(
                        f"{series.label}: transform 'log' needs positive values; column "
                        f"{col!r}, row {row + 1} is {current[col].iloc[row]}")
                current = np.log(current)
            else:
                current = current.diff(probe._lag(step))
        transformed = probe._transform_targets(frame)
        fit_rows = transformed.iloc[probe.lost:n_train]
        mean, std = fit_rows.mean(), fit_rows.std(ddof=0)
        flat = std[std <= 1e-12 * (1 + mean.abs())]
        if len(flat):
            raise DataError(
                f"{series.label}: column {flat.index[0]!r} is constant over the "
                f"{n_train} training rows, so it cannot be scaled; drop it or move the "
                f"split")
        tail = {t: frame[t].to_numpy(dtype=float)[len(frame) - probe.lost:].tolist()
                for t in targets} if probe.lost else {}
        return dataclasses.replace(
            probe, mean={c: float(mean[c]) for c in features},
            std={c: float(std[c]) for c in features}, tail=tail)

    # === Raw -> model ===
    def _transform_targets(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[list(self.features)].astype("float64").copy()
        cols = list(self.targets)
        for step in self.transforms:
            if step == "log":
                out[cols] = np.log(out[cols])
            else:
                out[cols] = out[cols].diff(self._lag(step))
        return out

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Raw rows -> transformed, standardised model inputs (the first
        ``lost`` rows are NaN: differencing has nothing before them)."""
        out = self._transform_targets(frame)
        mean = pd.Series(self.mean)[list(self.features)]
        std = pd.Series(self.std)[list(self.features)]
        return (out - mean) / std

    def transform_values(self, values) -> np.ndarray:
        """``transform`` on arrays: raw ``(..., rows, features)`` values in
        ``features`` order, for many series at once; the first ``lost``
        rows are NaN."""
        out = np.array(values, dtype="float64")
        cols = [self.features.index(t) for t in self.targets]
        for step in self.transforms:
            if step == "log":
                out[..., cols] = np.log(out[..., cols])
            else:
                lag = self._lag(step)
                shifted = np.full_like(out[..., cols], np.nan)
                shifted[..., lag:, :] = out[..., :-lag, :][..., cols]
                out[..., cols] = out[..., cols] - shifted
        mean = np.array([self.mean[c] for c in self.features])
        std = np.array([self.std[c] for c in self.features])
        return (out - mean) / std

    def target_scaling(self) -> tuple[list[float], list[float]]:
        """``(means, deviations)`` of the targets' standardisation, in
        ``targets`` order: what a count head's loss needs to recover the
        counts (``zoo.distributions``)."""
        return ([self.mean[t] for t in self.targets], [self.std[t] for t in self.targets])

    # === Model -> raw ===
    def inverse_transform(self, z, past) -> np.ndarray:
        """Model outputs -> forecasts in the data's own units.

        Args:
            z: model outputs, ``(n, horizon)`` or ``(n, horizon, targets)``.
            past: raw target values up to and including each forecast
                origin, ``(n, k, targets)`` with ``k >= lost`` (oldest first).

        Returns:
            ``(n, horizon, targets)`` forecasts.
        """
        targets = list(self.targets)
        past = np.asarray(past, dtype="float64")
        n = past.shape[0]
        z = np.asarray(z, dtype="float64").reshape(n, self.horizon, len(targets))
        z = z * np.array([self.std[t] for t in targets]) + np.array(
            [self.mean[t] for t in targets])
        # The level before each differencing step, at the origin.
        levels, current = {}, past[:, past.shape[1] - self.lost:] if self.lost else past
        for step in self.transforms:
            if step == "log":
                current = np.log(current)
            else:
                lag = self._lag(step)
                levels[step] = current[:, current.shape[1] - lag:]
                current = current[:, lag:] - current[:, :-lag]
        for step in reversed(self.transforms):
            if step == "log":
                z = np.exp(z)
            else:
                z = _undifference(z, levels[step], self._lag(step))
        return z

    # === Plain JSON ===
    def to_config(self) -> dict:
        """Everything as plain JSON types (``json.dumps`` takes it as is)."""
        return {**dataclasses.asdict(self), "targets": list(self.targets),
                "features": list(self.features), "transforms": list(self.transforms)}

    @classmethod
    def from_config(cls, config: dict) -> Preprocessor:
        """The ``Preprocessor`` that ``to_config`` described."""
        return cls(**{**config, "targets": tuple(config["targets"]),
                      "features": tuple(config["features"]),
                      "transforms": tuple(config["transforms"])})


def _undifference(z, level, lag):
    """Invert ``x[t] - x[t - lag]`` for forecasts ``z`` (n, horizon, targets),
    given the last ``lag`` levels at each origin, ``level`` (n, lag, targets)."""
    out = np.empty_like(z)
    for h in range(z.shape[1]):
        back = h - lag  # the step `lag` earlier: a forecast, or a known level
        out[:, h] = z[:, h] + (out[:, back] if back >= 0 else level[:, lag + back])
    return out
