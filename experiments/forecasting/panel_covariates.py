"""Covariates of a global model, as input channels the network reads.

With covariates, a sample is no longer the target's window alone but the
``window + horizon`` rows from the window's start to the horizon's end, one
channel per input:

- the target, scaled by its window (``panel_windows``), and 0 over the
  horizon, where it is unknown;
- a flag, 1 over the horizon: where the forecast begins;
- past covariates (``--features``): over the window, 0 over the horizon;
- future covariates (``--future-features``): over the window and the
  horizon, which is what lets the model use tomorrow's known promotion or
  temperature forecast;
- the calendar (``--calendar month,dayofweek,...``): the sine and cosine
  of each part, from the timestamps, so nothing is needed at predict time;
- static covariates (``--static``): numbers standardised, text one-hot,
  every row; the network's first layer weights the one-hot columns, so each
  category gets a learned embedding. A category not seen in training is all
  zeros: the "unknown" embedding;
- the series id (``--id-embedding``): one-hot like a static text column, so
  each series seen in training gets an embedding of its own, and one it has
  not seen the "unknown" one.

Numbers are standardised with the mean and standard deviation of the
training rows (covariates keep one scale for every series: a temperature
is a temperature).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

_LOG = logging.getLogger("lstm_zoo.panel")
# Calendar part -> (its value from a DatetimeIndex, from 0; its period); the
# parts are experiments.config.CALENDAR_PARTS, which --calendar checks.
CALENDAR = {
    "month": (lambda t: t.month - 1, 12),
    "quarter": (lambda t: t.quarter - 1, 4),
    "dayofweek": (lambda t: t.dayofweek, 7),
    "dayofmonth": (lambda t: t.day - 1, 31),
    "dayofyear": (lambda t: t.dayofyear - 1, 366),
    "weekofyear": (lambda t: t.isocalendar().week.to_numpy() - 1, 53),
    "hour": (lambda t: t.hour, 24),
}


@dataclasses.dataclass(frozen=True)
class Covariates:
    """How a panel's covariates become channels (see the module).

    Attributes:
        past, future: numeric columns known up to the origin / in advance.
        calendar: parts of ``CALENDAR``.
        static: static columns; ``categories`` maps each text one to the
            categories seen in training (numbers have none).
        mean, std: of each numeric column on the training rows.
        series_id: the id column, read as one more static text column
            (``--id-embedding``), or None.
    """

    past: tuple[str, ...] = ()
    future: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()
    static: tuple[str, ...] = ()
    categories: dict = dataclasses.field(default_factory=dict)
    mean: dict = dataclasses.field(default_factory=dict)
    std: dict = dataclasses.field(default_factory=dict)
    series_id: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.past or self.future or self.calendar or self.describing)

    @property
    def describing(self) -> tuple[str, ...]:
        """The columns that describe a series, each row the same: the static
        ones, then the id under ``--id-embedding``."""
        return (*self.static, *((self.series_id,) if self.series_id else ()))

    @property
    def static_channels(self) -> int:
        """How many channels the series-describing columns take (the last)."""
        return sum(len(self.categories.get(c, ())) or 1 for c in self.describing)

    @property
    def channels(self) -> int:
        """Channels per row beside the target and the horizon flag."""
        return (len(self.past) + len(self.future) + 2 * len(self.calendar)
                + self.static_channels)

    @classmethod
    def fit(cls, panel, train_rows: np.ndarray, calendar=(), id_embedding=False
            ) -> Covariates:
        """Scales and categories from the panel's training rows (a mask);
        with ``id_embedding``, the series ids of those rows as categories."""
        frame = panel.frame[train_rows]
        mean, std, categories = {}, {}, {}
        series_id = panel.id_col if id_embedding else None
        for col in (*panel.past, *panel.future, *panel.static,
                    *((series_id,) if series_id else ())):
            if not pd.api.types.is_numeric_dtype(frame[col]) or col == series_id:
                categories[col] = sorted(map(str, frame[col].unique()))
                continue
            values = frame[col].to_numpy(dtype="float64")
            mean[col] = float(np.mean(values))
            std[col] = float(np.std(values)) or 1.0
        return cls(tuple(panel.past), tuple(panel.future), tuple(calendar),
                   tuple(panel.static), categories, mean, std, series_id)

    def rows(self, rows: pd.DataFrame, time_col: str) -> np.ndarray:
        """The covariate channels of a series' ``rows`` ``(len, channels)``:
        past, future, calendar, then static."""
        parts = [self._scaled(rows, col) for col in (*self.past, *self.future)]
        times = pd.DatetimeIndex(rows[time_col])
        for part in self.calendar:
            value, period = CALENDAR[part]
            angle = 2 * np.pi * np.asarray(value(times), dtype="float64") / period
            parts += [np.sin(angle), np.cos(angle)]
        for col in self.describing:
            if col in self.categories:
                known = self.categories[col]
                hot = np.zeros((len(rows), len(known)))
                value = str(rows[col].iloc[0]) if len(rows) else ""
                if value in known:
                    hot[:, known.index(value)] = 1.0
                else:  # all zeros: the "unknown" category
                    _LOG.warning("static %r: %r was not seen in training; forecast with "
                                 "the unknown category", col, value)
                parts += list(hot.T)
            else:
                parts.append(self._scaled(rows, col))
        return np.stack(parts, axis=-1) if parts else np.zeros((len(rows), 0))

    def _scaled(self, rows, col) -> np.ndarray:
        values = rows[col].to_numpy(dtype="float64")
        return np.nan_to_num((values - self.mean[col]) / self.std[col])

    def samples(self, scaled_window: np.ndarray, channels: np.ndarray, window: int
                ) -> np.ndarray:
        """Network inputs ``(n, window + horizon, 2 + channels)`` from the
        scaled target windows ``(n, window)`` and each sample's covariate
        channels over ``window + horizon`` rows ``(n, window + horizon, C)``."""
        n, span = channels.shape[0], channels.shape[1]
        target = np.zeros((n, span, 1))
        target[:, :window, 0] = scaled_window
        flag = np.zeros((n, span, 1))
        flag[:, window:, 0] = 1.0
        channels = channels.copy()
        if self.past:  # past covariates are unknown over the horizon
            channels[:, window:, :len(self.past)] = 0.0
        return np.concatenate([target, flag, channels], axis=-1).astype("float32")

    def to_config(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_config(cls, config: dict) -> Covariates:
        config = dict(config)
        for key in ("past", "future", "calendar", "static"):
            config[key] = tuple(config.get(key, ()))
        return cls(**config)
