"""From a panel to windows for one network trained over every series.

- **One date split for the whole panel**: the test part is the last
  ``n_test`` dates of the panel, validation the ``n_val`` dates before them,
  so every series is validated and tested on the same dates.
- **Windows within each series, never across two**, each given to the
  part its targets fall in (a window whose targets straddle two parts is
  dropped, as for one series).
- **Scaling per window** (as DeepAR and neuralforecast's temporal scalers
  do): each window is standardised by its own mean and standard deviation,
  and the network's forecast is mapped back by the same two numbers. So a
  series on any scale, or one never seen in training, is forecast from its
  own history: multiply a series by 1,000 and its forecast multiplies by
  1,000, and nothing else changes.
- A series too short for one training window is left out, with a note
  naming it.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd

from experiments.data.panel import Panel, release_unused_memory
from experiments.errors import DataError
from experiments.forecasting.panel_covariates import Covariates
from experiments.forecasting.window_index import WindowIndex, window_scale
from experiments.forecasting.windows import resolve_part


def scaled_inputs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw windows ``(n, window)`` as the network reads them, ``(n, window,
    1)`` float32, with each window's location and scale."""
    loc, scale = window_scale(x)
    return ((x - loc[:, None]) / scale[:, None])[..., None].astype("float32"), loc, scale


@dataclasses.dataclass(frozen=True, eq=False)
class PanelWindows:
    """Windows of one part, from every series, drawn by index from the
    series' values (``experiments.forecasting.window_index``): the arrays
    ``x`` and ``y`` are made the first time they are asked for, and training
    assembles batches instead (``experiments.training.window_feed``).

    Attributes:
        index: each window's start row in the panel's values.
        series: each window's series, an index into ``PreparedPanel.ids``.
        origins: each window's last input row within its series.
        x: inputs ``(n, window, 1)`` (or ``(n, window + horizon, channels)``
            with covariates), each window standardised by itself.
        y: targets ``(n, horizon)``, on their window's scale.
        loc, scale: each window's location and scale ``(n,)``.
    """

    index: WindowIndex
    # Split's capability: training draws batches from ``index``.
    drawn_by_index = True

    def __len__(self):
        return len(self.index)

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.index.arrays()

    @functools.cached_property
    def _scaling(self) -> tuple[np.ndarray, np.ndarray]:
        return self.index.scaling()

    x = property(lambda self: self._arrays[0])
    y = property(lambda self: self._arrays[1])
    loc = property(lambda self: self._scaling[0])
    scale = property(lambda self: self._scaling[1])

    @functools.cached_property
    def series(self) -> np.ndarray:
        return self.index.series

    @functools.cached_property
    def origins(self) -> np.ndarray:
        return self.index.origins

    def sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """At most ``size`` windows drawn across every series."""
        return self.index.sample(size)

    def concat(self, *others: PanelWindows) -> PanelWindows:
        """These windows, then ``others``'."""
        return PanelWindows(self.index.concat(*(o.index for o in others)))

    def to_original(self, y: np.ndarray) -> np.ndarray:
        """Network outputs ``(n, horizon)`` in the data's units."""
        return self.loc[:, None] + self.scale[:, None] * np.asarray(y, "float64")


@dataclasses.dataclass(frozen=True)
class PreparedPanel:
    """Everything training and evaluation need from a panel.

    Attributes:
        panel: the data (every series, those left out too).
        window, horizon: input steps and steps forecast.
        val_start, test_start: the first date of validation and of test.
        ids: the series kept, in order.
        values: each kept series' values, by id.
        left_out: a sentence per series left out, naming it and why.
        train, val, test: the windows of each part.
        covariates: how covariates become input channels, or None without
            any (``experiments.forecasting.panel_covariates``).
    """

    panel: Panel
    window: int
    horizon: int
    val_start: pd.Timestamp
    test_start: pd.Timestamp
    ids: tuple[str, ...]
    values: dict
    left_out: tuple[str, ...]
    train: PanelWindows
    val: PanelWindows
    test: PanelWindows
    covariates: Covariates | None = None

    @property
    def input_shape(self) -> tuple[int, int]:
        if self.covariates is None:
            return (self.window, 1)
        return (self.window + self.horizon, 2 + self.covariates.channels)

    @property
    def outputs(self) -> int:
        return self.horizon

    def truth(self, part: PanelWindows) -> np.ndarray:
        """The actual values after each origin, ``(n, horizon)``."""
        return np.stack([self.values[self.ids[s]][o + 1:o + 1 + self.horizon]
                         for s, o in zip(part.series, part.origins, strict=True)]) \
            if len(part) else np.zeros((0, self.horizon))


def series_rows(panel: Panel) -> tuple[list[str], np.ndarray]:
    """Each series' id and its first row in ``panel.frame`` (sorted by series,
    then time), with the number of rows appended: no copy of the columns."""
    sizes = panel.frame.groupby(panel.id_col, sort=False).size()
    return [str(key) for key in sizes.index], np.concatenate([[0], np.cumsum(sizes)])


def date_split(panel: Panel, val_size, test_size) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first validation date and the first test date: the panel's last
    ``test_size`` dates are the test part, the ``val_size`` before them
    validation (each a count, a fraction of the dates, or a start date)."""
    dates = pd.DatetimeIndex(sorted(panel.frame[panel.time_col].unique()))
    n_test = resolve_part(test_size, len(dates), dates, "test")
    n_val = resolve_part(val_size, len(dates) - n_test, dates[:len(dates) - n_test], "val")
    if n_test + n_val >= len(dates):
        raise DataError(f"{panel.label}: the panel spans {len(dates)} dates; validation "
                        f"({n_val}) and test ({n_test}) leave none to train on")
    return dates[len(dates) - n_test - n_val], dates[len(dates) - n_test]


def prepare_panel(panel: Panel, *, window: int, horizon: int, val_size,
                  test_size, calendar=(), id_embedding=False) -> PreparedPanel:
    """Split the panel by date, cut each series into windows and scale each
    window by itself; with covariates (the panel's, ``calendar`` parts and,
    with ``id_embedding``, the series id), each sample spans the window and
    the horizon (see ``experiments.forecasting.panel_covariates``).

    Raises:
        DataError: no series is long enough for one training window (the
            message gives the rows needed).
    """
    for name, value in (("window", window), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"--{name} must be an int >= 1; received {value!r}")
    val_start, test_start = date_split(panel, val_size, test_size)
    covariates = None
    if panel.past or panel.future or panel.static or calendar or id_embedding:
        train_rows = (panel.frame[panel.time_col] < val_start).to_numpy()
        covariates = Covariates.fit(panel, train_rows, calendar, bool(id_embedding))
    # Views of the frame's columns: the windows are start rows into them.
    values = panel.frame[panel.target].to_numpy(dtype="float64")
    times = panel.frame[panel.time_col].to_numpy()
    keys, bounds = series_rows(panel)
    span, first_val = window + horizon, val_start.to_datetime64()
    kept, left_out, starts, parts = [], [], [], []
    row_type = "int32" if len(values) < 2**31 else "int64"
    for key, first, end in zip(keys, bounds[:-1], bounds[1:], strict=True):
        if end - first < span or times[first + span - 1] >= first_val:
            before = int((times[first:end] < first_val).sum())
            left_out.append(f"series {key!r}: {before} rows before the validation period "
                            f"({val_start.date()}), fewer than window {window} + horizon "
                            f"{horizon}; left out")
            continue
        kept.append((key, first, end))
        # int32 where the rows allow: half the index's memory.
        start = np.arange(first, end - span + 1, dtype=row_type)
        starts.append(start)
        parts.append(_part_of(times[start + window], times[start + span - 1],
                              val_start, test_start))
    if not kept:
        raise DataError(f"{panel.label}: no series has {window + horizon} rows before the "
                        f"validation period ({val_start.date()}), which one training window "
                        f"of window {window} + horizon {horizon} needs; use a shorter "
                        f"--window or --horizon")
    channels = None
    if covariates is not None:
        channels = np.zeros((len(values), covariates.channels), "float32")
        for rows in panel.frame.groupby(panel.id_col, sort=False).indices.values():
            channels[rows] = covariates.rows(panel.frame.iloc[rows], panel.time_col)
    index = WindowIndex(values, np.array([first for _, first, _ in kept]),
                        np.concatenate(starts), window, horizon, covariates, channels)
    parts = np.concatenate(parts)
    release_unused_memory()
    return PreparedPanel(
        panel=panel, window=window, horizon=horizon, val_start=val_start,
        test_start=test_start, ids=tuple(k for k, _, _ in kept),
        values={k: values[first:end] for k, first, end in kept}, left_out=tuple(left_out),
        train=PanelWindows(index.subset(parts == TRAIN)),
        val=PanelWindows(index.subset(parts == VAL)),
        test=PanelWindows(index.subset(parts == TEST)), covariates=covariates)


# Which part a window belongs to (one that straddles two belongs to none).
TRAIN, VAL, TEST, NEITHER = range(4)


def _part_of(first_target, last_target, val_start, test_start) -> np.ndarray:
    """Each window's part, from the dates of its first and last target."""
    val_start, test_start = val_start.to_datetime64(), test_start.to_datetime64()
    return np.select([last_target < val_start,
                      (first_target >= val_start) & (last_target < test_start),
                      first_target >= test_start], [TRAIN, VAL, TEST], NEITHER).astype("int8")
