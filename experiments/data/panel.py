"""Panels: many series in one long table, one row per series and time, as
neuralforecast takes them (``unique_id, ds, y``): an id column, a time
column and one target column.

Every problem is named by the file (or DataFrame), the series, the line (or
row) and the raw value, as for a single series (``experiments.data.tables``).
Rows may come in any order; each series is sorted by time, and every series
must be spaced at the panel's one frequency, with no row missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import warnings

import numpy as np
import pandas as pd
import pyarrow
from pandas.tseries.frequencies import to_offset

from experiments.data.cells import numeric_column, parse_times
from experiments.data.files import InMemory, at, load_table
from experiments.data.series import infer_freq, infer_season
from experiments.errors import DataError


@dataclasses.dataclass(frozen=True)
class Panel:
    """A validated panel.

    Attributes:
        name: the dataset's name (the CSV's stem, or ``"panel"``).
        frame: columns ``id_col`` (text), ``time_col`` (timestamps) and
            ``target`` (float), sorted by series and then time.
        id_col, time_col, target: the column names, as the user gave them.
        freq: the panel's frequency (a pandas offset alias such as ``"MS"``).
        source: where the data came from (a path or ``generated:``).
        season: season length in steps, from the frequency (12 for monthly).
        defaults: settings that suit this dataset where the user gives none.
        past: covariates known up to each forecast origin only (numbers).
        future: covariates known in advance, over the forecast horizon too
            (numbers: a holiday flag, a promotion, a temperature forecast).
        static: one value per series (a region, a category; text or numbers).
    """

    name: str
    frame: pd.DataFrame
    id_col: str
    time_col: str
    target: str
    freq: str
    source: str
    season: int | None = None
    defaults: dict = dataclasses.field(default_factory=dict)
    past: tuple[str, ...] = ()
    future: tuple[str, ...] = ()
    static: tuple[str, ...] = ()

    def __len__(self):
        return len(self.frame)

    @property
    def label(self) -> str:
        return self.source if os.path.isfile(self.source) else self.name

    @property
    def targets(self) -> tuple[str]:
        return (self.target,)

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys(self.frame[self.id_col]))

    def groups(self) -> dict[str, tuple[pd.DatetimeIndex, np.ndarray]]:
        """Each series' timestamps and values, by id."""
        out = {}
        for key, rows in self.frame.groupby(self.id_col, sort=False):
            out[str(key)] = (pd.DatetimeIndex(rows[self.time_col]),
                             rows[self.target].to_numpy(dtype="float64"))
        return out

    def subset(self, keep) -> Panel:
        """This panel with only the series ``keep`` names."""
        frame = self.frame[self.frame[self.id_col].isin(set(keep))].reset_index(drop=True)
        return dataclasses.replace(self, frame=frame)


def load_panel_csv(path, *, id_col, time_col, target, time_format=None,
                   max_file_mb=None, past=(), future=(), static=(),
                   future_rows=False) -> Panel:
    """Read and validate a long CSV of many series.

    ``past``, ``future``, ``static``: covariate columns (see ``Panel``);
    ``future_rows``: each series may end in rows whose target is empty,
    carrying the future covariates of the dates to forecast.

    Raises:
        DataError: a missing column, an empty id, a cell that is no number, a
            timestamp that does not parse, a (series, time) pair given twice,
            or a series spaced otherwise than the panel; each names the file,
            series, line and value.
    """
    path = os.fspath(path)
    covariates = dict(past=tuple(past), future=tuple(future), static=tuple(static))
    wanted = _check_names(path, id_col, time_col, target, **covariates)
    raw = load_table(path, wanted, max_file_mb=max_file_mb)
    return check_panel(path, raw, id_col=id_col, time_col=time_col, target=target,
                       time_format=time_format,
                       name=os.path.splitext(os.path.basename(path))[0],
                       source=os.path.abspath(path), future_rows=future_rows,
                       **covariates)


def frame_panel(frame: pd.DataFrame, *, id_col, time_col, target, time_format=None,
                name="panel", freq=None, past=(), future=(), static=(),
                future_rows=False) -> Panel:
    """A panel from a long DataFrame, checked as ``load_panel_csv`` checks
    a file; messages name the DataFrame and the row's position. ``freq``:
    the spacing every series must have (a served model's); default the one
    most series have. ``future_rows``: each series may end in rows whose
    target is empty, which carry the future covariates of the dates to
    forecast (a served model's request)."""
    label = InMemory(f"DataFrame {name!r}")
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{label}: expected a pandas DataFrame; received "
                        f"{type(frame).__name__}")
    covariates = dict(past=tuple(past), future=tuple(future), static=tuple(static))
    wanted = _check_names(label, id_col, time_col, target, **covariates)
    columns = [str(c) for c in frame.columns]
    for col in wanted:
        if col not in columns:
            raise DataError(f"{label}: no column {col!r}; the columns are {columns}")
    if frame.empty:
        raise DataError(f"{label}: no rows")
    raw = pd.DataFrame({col: [("" if _missing(v) else _text(v)) for v in frame[col]]
                        for col in wanted}, dtype=object)
    return check_panel(label, raw, id_col=id_col, time_col=time_col, target=target,
                       time_format=time_format, name=name, source=str(label), freq=freq,
                       future_rows=future_rows, **covariates)


# A table this long is a file, not a served model's request (those hold at
# most 500,000 rows by default: experiments.serving.pyfunc.MAX_REQUEST_ROWS):
# memory its parsing freed is handed back at once.
LARGE_TABLE_ROWS = 1_000_000


def check_panel(path, raw, *, id_col, time_col, target, time_format, name,
                source, freq=None, past=(), future=(), static=(),
                future_rows=False) -> Panel:
    """Validate the text cells of a long table into a ``Panel``.

    ``raw``'s columns are taken out of it as each is parsed, so that a big
    file's text is not held beside what it became (700 MB of text on ten
    million rows)."""
    ids = raw.pop(id_col).astype(str).str.strip()
    empty = ids == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{path}: column {id_col!r}, {at(path, row)}: missing series id")
    # Cells that are no number are named first; what is left missing is blank.
    values = numeric_column(path, raw[target], target, allow_missing=True)
    blank = values.isna()
    if blank.any() and not future_rows:
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataError(f"{path}: series {ids.iloc[row]!r}, column {target!r}, "
                        f"{at(path, row)}: missing value {raw[target].iloc[row]!r}; "
                        f"every row of a panel needs its {target}")
    del raw[target]
    times = parse_times(path, raw.pop(time_col), time_col, time_format).to_numpy()
    if len(times) >= LARGE_TABLE_ROWS:
        release_unused_memory()  # what parsing freed: 660 MB on ten million rows
    # The ids stay pandas text (Arrow): as Python objects, ten million of
    # them took 300 MB more.
    frame = pd.DataFrame({id_col: ids.array, time_col: times,
                          target: values.to_numpy(), "_row": np.arange(len(times))})
    del ids, times, values, blank
    for col in (*past, *future):
        frame[col] = numeric_column(path, raw.pop(col), col, allow_missing=True).to_numpy()
    for col in static:
        frame[col] = _static_column(raw.pop(col))
    if not _is_sorted(frame, id_col, time_col):  # a file's rows usually are: no copy then
        frame = frame.sort_values([id_col, time_col], kind="stable")
    starts = _series_starts(frame[id_col])
    _check_duplicates(path, frame, starts, id_col, time_col)
    freq = freq or _panel_freq(path, frame, starts, time_col)
    _check_spacing(path, frame, starts, id_col, time_col, freq)
    _check_covariates(path, frame, id_col, target, past, future, static)
    frame = frame.drop(columns="_row").reset_index(drop=True)
    season = infer_season(pd.DatetimeIndex(_longest_series(frame[time_col], starts)))
    return Panel(name=name, frame=frame, id_col=id_col, time_col=time_col, target=target,
                 freq=freq, source=source, season=season, past=tuple(past),
                 future=tuple(future), static=tuple(static))


def _is_sorted(frame, id_col, time_col) -> bool:
    """Whether ``frame`` is already in series order, then time order (so a
    stable sort would leave it as it is), compared without copying it."""
    ids = frame[id_col].array
    if len(ids) < 2:
        return True
    after = np.asarray(ids[1:] > ids[:-1], dtype=bool)
    same = np.asarray(ids[1:] == ids[:-1], dtype=bool)
    if not (after | same).all():
        return False
    times = frame[time_col].to_numpy()
    return bool((times[1:][same] >= times[:-1][same]).all())


def _series_bounds(starts: np.ndarray) -> list[tuple[int, int]]:
    """Each series' first and past-the-last row, from ``_series_starts``."""
    first = np.flatnonzero(starts)
    return list(zip(first.tolist(), [*first[1:].tolist(), len(starts)], strict=True))


def _longest_series(times: pd.Series, starts: np.ndarray) -> np.ndarray:
    """The timestamps of the series with the most rows (the first such)."""
    begin, end = max(_series_bounds(starts), key=lambda b: b[1] - b[0])
    return times.to_numpy()[begin:end]


def _static_column(text: pd.Series) -> np.ndarray:
    """A static covariate: numbers where every cell is one, else text."""
    stripped = text.astype(str).str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(dtype="float64")
    return stripped.to_numpy(dtype=object)


def _check_covariates(path, frame, id_col, target, past, future, static):
    """Rows with a target need every covariate; rows without one (a
    request's future rows) come after all of their series' rows with one,
    and need the future covariates; a static value never changes within a
    series."""
    has_target = frame[target].notna().to_numpy()
    # The id column stays Arrow text: as ten million Python strings it took 600 MB.
    ids = frame[id_col].array
    if not has_target.all():  # a request's future rows
        later = (pd.Series(has_target[::-1]).groupby(np.asarray(ids[::-1])).cummax()
                 .to_numpy()[::-1])
        _refuse_first(path, frame, ids, ~has_target & later, "",
                      lambda i: f"missing {target}; only the rows after a series' history "
                                f"(its future covariates) may leave it empty")
    for col, needed in [*((c, has_target) for c in past),
                        *((c, np.ones(len(frame), bool)) for c in future)]:
        _refuse_first(path, frame, ids, frame[col].isna().to_numpy() & needed,
                      f"column {col!r}, ", lambda i: "missing value")
    for col in static:
        first = frame.groupby(id_col, sort=False)[col].transform("first")
        _refuse_first(path, frame, ids, (frame[col] != first).to_numpy(), f"column {col!r}, ",
                      lambda i, col=col, first=first: (
                          f"{frame[col].iloc[i]!r} differs from the series' first value "
                          f"{first.iloc[i]!r}; a static covariate has one value per series"))


def _refuse_first(path, frame, ids, flagged, column: str, problem) -> None:
    """A ``DataError`` naming the series, ``column`` and file row of the
    first ``flagged`` row, and ``problem(i)`` of it; nothing if none is."""
    if flagged.any():
        i = int(np.flatnonzero(flagged)[0])
        raise DataError(f"{path}: series {ids[i]!r}, {column}"
                        f"{at(path, int(frame['_row'].iloc[i]))}: {problem(i)}")


def _check_names(path, id_col, time_col, target, past=(), future=(), static=()) -> list:
    """The columns to read: id, time, target and covariates, each once."""
    given = {"--id-col": id_col, "--time-col": time_col, "--target": target}
    missing = [flag for flag, col in given.items() if not col]
    if missing:
        raise DataError(f"{path}: a panel needs {', '.join(missing)} (the series id, the "
                        f"timestamps and the value to forecast)")
    if len({id_col, time_col, target}) < 3:
        raise DataError(f"{path}: --id-col, --time-col and --target must name three "
                        f"different columns; received {id_col!r}, {time_col!r}, {target!r}")
    wanted = [id_col, time_col, target, *past, *future, *static]
    twice = sorted({c for c in wanted if wanted.count(c) > 1})
    if twice:
        raise DataError(f"{path}: column {twice[0]!r} is named twice among the id, time, "
                        f"target, --features, --future-features and --static columns")
    return wanted


def _series_starts(ids: pd.Series) -> np.ndarray:
    """True where a row's series differs from the row before's (``ids``
    sorted), compared as pandas text: as Python objects, ten million ids
    took 300 MB."""
    values = ids.array
    starts = np.ones(len(values), dtype=bool)
    starts[1:] = np.asarray(values[1:] != values[:-1], dtype=bool)
    return starts


def _check_duplicates(path, frame, starts, id_col, time_col):
    """No (series, time) pair twice. ``frame`` is sorted (stably) by series,
    then time, so a pair given again is the row after it; the first in the
    file is named, with the line it repeats. (``DataFrame.duplicated`` hashed
    every pair: 490 MB more on ten million rows.)"""
    times = frame[time_col].to_numpy()
    again = ~starts
    again[1:] &= times[1:] == times[:-1]
    if not again.any():
        return
    rows = frame["_row"].to_numpy()
    k = int(np.flatnonzero(again)[np.argmin(rows[again])])
    first = k - 1
    while again[first]:  # the first of its run is the one in the file first
        first -= 1
    raise DataError(f"{path}: series {frame[id_col].iloc[k]!r}, {at(path, int(rows[k]))}: "
                    f"timestamp {pd.Timestamp(times[k])} duplicates the one on "
                    f"{at(path, int(rows[first]))} ({int(again.sum())} duplicate (series, "
                    f"time) pair(s))")


def _panel_freq(path, frame, starts, time_col) -> str:
    """The frequency most series are spaced at (a series of two rows or
    fewer says nothing). Each series is a slice of the sorted rows
    (``starts``): grouping by the id hashed ten million of them (300 MB)."""
    times = frame[time_col].to_numpy()
    found = {}
    for begin, end in _series_bounds(starts):
        if end - begin >= 3:
            freq = infer_freq(pd.DatetimeIndex(times[begin:end]))
            if freq is not None:
                found[freq] = found.get(freq, 0) + 1
    if not found:
        raise DataError(f"{path}: no series has regularly spaced timestamps in "
                        f"{time_col!r}, so the panel's frequency is unknown; each series "
                        f"needs at least three rows at one spacing (monthly, daily...)")
    return max(found, key=found.get)


def _check_spacing(path, frame, first, id_col, time_col, freq):
    """Every series (``frame`` sorted by series, then time) spaced ``freq``
    from a first timestamp on ``freq`` (where ``pd.date_range`` from it would
    start). One vectorised pass: each timestamp against the one before it
    plus ``freq`` (a loop over 10,000 series took 84 s)."""
    offset = to_offset(freq)
    times = pd.DatetimeIndex(frame[time_col])
    with warnings.catch_warnings():  # an offset pandas cannot vectorise is applied per row
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        following = times + offset
        starts = times[first]
        on_offset = (starts + offset) - offset == starts
    fits = np.zeros(len(frame), dtype=bool)
    fits[1:] = times[1:] == following[:-1]
    fits[first] = on_offset
    bad = np.flatnonzero(~fits)
    if not len(bad):
        return
    k = int(bad[0])
    key, row = frame[id_col].iloc[k], int(frame["_row"].iloc[k])
    if first[k]:
        raise DataError(
            f"{path}: series {key!r}, {at(path, row)}: its first timestamp {times[k]} is "
            f"not on the panel's spacing {freq!r} (the next one that is: "
            f"{offset.rollforward(times[k])}); every series must be spaced {freq!r}")
    raise DataError(
        f"{path}: series {key!r}, {at(path, row)}: {times[k]} follows "
        f"{times[k - 1]}, but every series must be spaced {freq!r} (the next would be "
        f"{following[k - 1]}); a row is missing, or this series is spaced otherwise")


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def make_panel(n_series: int = 200, seed: int = 0, end: str = "2024-12-01") -> Panel:
    """A generated monthly panel of 200 series of known structure.

    The series differ in length (4 to 12 years, all ending in ``end``), scale (1 to 10,000),
    trends and seasonal shapes (a sine, a single peak, a sawtooth), each
    with multiplicative seasonality and noise of a few percent.

    Args:
        n_series: how many series (at least 2).
        seed: the same seed gives the same panel.
    """
    if not isinstance(n_series, int) or n_series < 2:
        raise DataError(f"panel: n_series must be an int >= 2; received {n_series!r}")
    rng = np.random.default_rng(seed)
    shapes = (
        lambda m: np.sin(2 * np.pi * m / 12),
        lambda m: 2 * np.exp(-((m - 7) ** 2) / 2) - 0.5,
        lambda m: (m / 11) * 2 - 1,
    )
    rows = []
    for i in range(n_series):
        length = int(rng.integers(48, 145))
        times = pd.date_range(end=end, periods=length, freq="MS")
        level = 10 ** rng.uniform(0, 4)
        trend = rng.uniform(-0.3, 0.6) / 120  # relative change per month
        amplitude = rng.uniform(0.1, 0.4)
        shape = shapes[i % len(shapes)]
        t = np.arange(length)
        season = 1 + amplitude * shape(times.month.to_numpy() - 1)
        noise = 1 + rng.uniform(0.02, 0.06) * rng.standard_normal(length)
        y = level * (1 + trend * t) * season * noise
        rows.append(pd.DataFrame({"unique_id": f"S{i:03d}", "ds": times, "y": y}))
    frame = pd.concat(rows, ignore_index=True)
    return Panel(name="panel", frame=frame, id_col="unique_id", time_col="ds", target="y",
                 freq="MS", source=f"generated:panel(n_series={n_series},seed={seed})",
                 season=12)


def release_unused_memory() -> None:
    """Hand back to the system what a big panel's preparation freed.

    pandas keeps text in Arrow arrays, and Arrow's memory pool keeps what
    they free for reuse; the C library's allocator keeps the freed pieces
    of the many mid-sized arrays a panel is cut with. On a ten-million-row
    panel the two come to over 100 MB the process would otherwise hold
    through training for nothing (measured in ``benchmarks.panel_scale``).
    Called once a panel is cut into windows (``prepare_panel``), and after
    a table of more rows than a request may hold is parsed; not on a served
    model's requests, where trimming the heap would cost every one.
    """
    pyarrow.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)


def _libc_malloc_trim():
    """glibc's ``malloc_trim``, or None on a system without it."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_malloc_trim = _libc_malloc_trim()
