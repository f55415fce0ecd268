"""The validated series every forecasting stage reads, and what its time
index says about it (its frequency and season)."""

from __future__ import annotations

import dataclasses
import os

import pandas as pd


@dataclasses.dataclass(frozen=True)
class Series:
    """A validated, numeric, time-ordered table ready for windowing.

    Attributes:
        name: dataset name (``"airline"``, ``"sine"`` or the CSV's stem).
        frame: numeric columns only, indexed by time (``DatetimeIndex``) or by
            position (``RangeIndex``) when there is no time column.
        targets: the columns to forecast.
        features: the model's input columns: targets first, then the extra
            features.
        source: where the data came from (a path or ``bundled:``/``generated:``).
        season: season length in steps, inferred from the time index's
            frequency (12 for monthly data), or ``None`` if unknown.
        repairs: what an explicit opt-in changed, for the run's record.
        defaults: settings that suit this dataset (window, horizon, ...),
            used where the user gives none.
    """

    name: str
    frame: pd.DataFrame
    targets: tuple[str, ...]
    features: tuple[str, ...]
    source: str
    season: int | None = None
    repairs: tuple[str, ...] = ()
    defaults: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.frame)

    @property
    def label(self) -> str:
        """How messages name the data: the file's path, or the dataset name."""
        return self.source if os.path.isfile(self.source) else self.name


_FREQ_SEASONS = {"h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "Q": 4, "Y": 1,
                 "A": 1, "min": 60}


def infer_season(index) -> int | None:
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 3:
        return None
    freq = infer_freq(index)
    if freq is None:
        return None
    # "MS", "ME", "QS-DEC", "W-SUN", "h", "min", ... -> the base unit.
    base = freq.split("-")[0].lstrip("0123456789")
    for unit in ("min", "h", "B", "D", "W", "M", "Q", "Y", "A"):
        if base.startswith(unit):
            return _FREQ_SEASONS[unit]
    return None


def infer_freq(index) -> str | None:
    # pandas 3.1 warns that infer_freq will return an offset; ask for that.
    try:
        with pd.option_context("future.infer_freq_returns_offset", True):
            offset = pd.infer_freq(index)
    except (KeyError, pd.errors.OptionError):
        return pd.infer_freq(index)
    return None if offset is None else getattr(offset, "freqstr", str(offset))
