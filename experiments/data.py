"""Datasets: bundled, generated and user CSVs, validated before any training.

Every problem with a user's file raises ``DataError`` naming the file, the
column, the line (as a text editor numbers it: the header is line 1) and the
raw value, so it can be fixed without guessing. Nothing is coerced silently;
the two repairs that exist (``fill_missing``, ``sort``) must be asked for and
are recorded in ``Series.repairs``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os

import numpy as np
import pandas as pd

from experiments.errors import DataError  # noqa: F401  (raised by every loader here)


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


# === Named datasets ===

def load_airline() -> Series:
    """Box & Jenkins monthly international airline passengers (thousands),
    1949-01 to 1960-12, 144 rows, shipped inside the package."""
    ref = importlib.resources.files("experiments") / "data" / "airline-passengers.csv"
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


# === User CSVs ===

_FREQ_SEASONS = {"h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "Q": 4, "Y": 1,
                 "A": 1, "min": 60}


def load_csv(path, *, target, features=(), time_col=None, time_format=None,
             fill_missing=False, sort=False, max_file_mb=None) -> Series:
    """Read and validate a CSV with pandas.

    Args:
        path: the CSV file.
        target: column name, or list of names, to forecast.
        features: extra input columns (the targets are always inputs too).
        time_col: column of timestamps; it becomes the index, must parse,
            be unique and increase.
        time_format: how ``time_col`` is written, as a ``strftime`` format
            (``"%d/%m/%Y"``); without it only ISO 8601 is accepted
            (``2024-01-31``, ``1949-01``, ``2024-01-31 12:00``), because
            guessing turns "1-02" into the 2nd of January and "01/02" into
            whichever of January or February the guesser prefers.
        fill_missing: fill empty cells in targets and features by linear
            interpolation (edges by the nearest value) instead of failing.
        sort: sort rows by ``time_col`` instead of failing when unsorted.
        max_file_mb: refuse files larger than this many megabytes
            (default ``MAX_FILE_MB``).

    Raises:
        DataError: naming the file, column, line and raw value.
    """
    path = os.fspath(path)
    targets, features = _columns(path, target, features)
    raw = load_table(path, targets + features + ([time_col] if time_col else []),
                     max_file_mb=max_file_mb)
    return _series(path, raw, targets, features, time_col, time_format, fill_missing, sort,
                   name=os.path.splitext(os.path.basename(path))[0],
                   source=os.path.abspath(path))


def frame_series(frame: pd.DataFrame, *, target, features=(), time_col=None,
                 time_format=None, fill_missing=False, sort=False,
                 name="data") -> Series:
    """A series from a DataFrame laid out as a CSV would be (a time column,
    the target and feature columns), checked as ``load_csv`` checks a file;
    messages name the ``name`` and the row's position.

    Raises:
        DataError: naming the column, row and value.
    """
    label = InMemory(f"DataFrame {name!r}")
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{label}: expected a pandas DataFrame; received "
                        f"{type(frame).__name__}")
    targets, features = _columns(label, target, features)
    wanted = targets + features + ([time_col] if time_col else [])
    columns = [str(c) for c in frame.columns]
    for col in wanted:
        if col not in columns:
            raise DataError(f"{label}: no column {col!r}; the columns are {columns}")
    if frame.empty:
        raise DataError(f"{label}: no rows")
    # As text, as a CSV's cells are read: one validation for files and frames.
    raw = pd.DataFrame({col: [("" if pd.isna(v) else str(v)) for v in frame[col]]
                        for col in wanted}, dtype=object)
    return _series(label, raw, targets, features, time_col, time_format, fill_missing, sort,
                   name=name, source=str(label))


def _columns(path, target, features) -> tuple[list, list]:
    targets = [target] if isinstance(target, str) else list(target)
    if not targets:
        raise DataError(f"{path}: no target column given (--target COL)")
    return targets, [f for f in features if f not in targets]


def _series(path, raw, targets, features, time_col, time_format, fill_missing, sort, *,
            name, source) -> Series:
    """Validate the text cells of ``raw`` into a ``Series``."""
    repairs = []
    frame = pd.DataFrame(
        {col: numeric_column(path, raw[col], col, allow_missing=fill_missing)
         for col in targets + features})
    if time_col:
        index = pd.DatetimeIndex(parse_times(path, raw[time_col], time_col, time_format),
                                 name=time_col)
        frame.index = index
        reordered = sort and not index.is_monotonic_increasing
        if reordered:
            frame = frame.sort_index(kind="stable")
            repairs.append(f"sorted rows by {time_col!r}")
        _check_time_order(path, frame.index, time_col, reordered=reordered)
    if fill_missing:
        holes = int(frame.isna().sum().sum())
        if holes:
            frame = frame.interpolate(limit_direction="both")
            repairs.append(f"filled {holes} missing cell(s) by interpolation")
    for col in frame.columns:
        if frame[col].nunique(dropna=True) <= 1:
            raise DataError(
                f"{path}: column {col!r} is constant "
                f"({frame[col].iloc[0]!r} on every row); it carries no "
                f"information and cannot be scaled")
    season = _infer_season(frame.index)
    return Series(
        name=name, frame=frame, targets=tuple(targets), features=tuple(targets + features),
        source=source, season=season, repairs=tuple(repairs),
    )


# Reading a CSV as text takes several times its size in memory; past this the
# user must say they mean it (--max-file-mb) rather than find the machine swapping.
MAX_FILE_MB = 100


def megabytes(size: float) -> str:
    """``size`` megabytes as a message shows them: 200, 8.0, 0.0036."""
    return f"{size:,.0f}" if size >= 10 else f"{size:.1f}" if size >= 0.1 else f"{size:.2g}"


# The most numbers a generated dataset (--data-option count=..., length=...)
# may hold: 50 million, 200 MB as float32.
MAX_GENERATED_VALUES = 50_000_000


def check_input_file(path, max_file_mb=None, what="CSV") -> str:
    """Check a user's input file before anything reads it: it exists, this
    process may read it, and it is within the size limit.

    Args:
        path: the file.
        max_file_mb: the limit in megabytes (default ``MAX_FILE_MB``).
        what: the kind of file, for the message (``"CSV"``, ``".npz"``...).

    Returns:
        The path as a string.

    Raises:
        DataError: naming the file and the problem.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise DataError(f"{path}: permission denied; this user cannot read the file or "
                        f"enter a folder on its path (fix the permissions, or copy it "
                        f"somewhere readable)") from None
    except OSError:
        pass  # missing, or a folder: said just below
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    limit = MAX_FILE_MB if max_file_mb is None else max_file_mb
    size_mb = os.path.getsize(path) / 1e6
    if size_mb > limit:
        raise DataError(
            f"{path}: the file is {megabytes(size_mb)} MB, over the {limit:,g} MB limit "
            f"for {what} input (loaded, it needs several times that in memory); "
            f"pass --max-file-mb {int(size_mb * 1.1) + 1} if this machine has the "
            f"memory, or cut the file to what you need")
    return path


def check_archive(path, max_file_mb=None) -> None:
    """Refuse a zip archive (``.npz``) whose members would decompress to more
    than the limit, before any member is decompressed (a "zip bomb")."""
    from zoo.saving import unpacked_size

    limit = MAX_FILE_MB if max_file_mb is None else max_file_mb
    size = unpacked_size(path)
    if size is not None and size / 1e6 > limit:
        raise DataError(
            f"{path}: the archive unpacks to {megabytes(size / 1e6)} MB, over the {limit:,g} "
            f"MB limit; pass --max-file-mb {int(size / 1e6 * 1.1) + 1} if this machine "
            f"has the memory")


def check_generated(name: str, shape) -> None:
    """Refuse generated-dataset options that would make more than
    ``MAX_GENERATED_VALUES`` numbers."""
    values = int(np.prod([int(d) for d in shape], dtype=object))
    if values > MAX_GENERATED_VALUES:
        raise DataError(
            f"{name}: these --data-option values make {values:,} numbers "
            f"{tuple(int(d) for d in shape)}, over the limit of "
            f"{MAX_GENERATED_VALUES:,} for a generated dataset; choose smaller ones")


def load_table(path, wanted, *, all_columns=False, max_file_mb=None) -> pd.DataFrame:
    """Read a CSV as text, checking the file, its size and that ``wanted``
    columns exist. Only the ``wanted`` columns are read unless ``all_columns``."""
    path = check_input_file(path, max_file_mb, "CSV")
    read = dict(dtype=str, keep_default_na=False, skipinitialspace=True,
                encoding="utf-8-sig")
    try:
        # Everything as text first: pandas would otherwise turn a column with
        # one "?" into strings, or coerce it to NaN, without a word.
        header = pd.read_csv(path, nrows=0, **read)
        columns = [str(c).strip() for c in header.columns]
        for col in wanted:
            if col not in columns:
                raise DataError(f"{path}: no column {col!r}; the columns are {columns}")
        if len(set(wanted)) != len(wanted):
            raise DataError(f"{path}: a column is named twice among {wanted}")
        keep = None if all_columns else [header.columns[columns.index(c)] for c in wanted]
        raw = pd.read_csv(path, usecols=keep, **read)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if keep is not None:
        raw = raw[list(wanted)]
    if raw.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    return raw


class InMemory(str):
    """The name a table passed as a DataFrame goes by in messages, where a
    file's path would; its rows are named by position, not by line."""


def _at(path, row: int) -> str:
    """Where data row ``row`` (from 0) is, for a message: the line of a
    CSV file, or the row of a DataFrame."""
    if isinstance(path, InMemory):
        return f"row {row}"
    return f"line {_line(path, row)}"


def _line(path, row: int) -> int:
    """The line a text editor shows for data row ``row`` (from 0) of the CSV:
    blank lines are skipped and a quoted cell may span lines, as pandas
    reads them, so the row number alone is not the line."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            end, index = 0, -2  # the first record is the header
            for record in reader:
                start, end = end + 1, reader.line_num
                if not record:  # a blank line: pandas skips it
                    continue
                index += 1
                if index == row:
                    return start
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return row + 2  # the header is line 1; rows count from 0


def numeric_column(path, text: pd.Series, col, *, allow_missing) -> pd.Series:
    stripped = text.str.strip()
    values = pd.to_numeric(stripped, errors="coerce")
    empty = stripped.isin(["", "NA", "NaN", "nan", "N/A", "null", "NULL"])
    bad = values.isna() & ~empty
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: column {col!r}, {_at(path, row)}: {text.iloc[row]!r} is "
            f"not a number ({int(bad.sum())} such cell(s) in the column)")
    if empty.any() and not allow_missing:
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(
            f"{path}: column {col!r}, {_at(path, row)}: missing value "
            f"{text.iloc[row]!r} ({int(empty.sum())} in the column); fix the "
            f"file or pass --fill-missing to interpolate")
    if not np.isfinite(values.dropna().to_numpy(dtype=float)).all():
        row = int(np.flatnonzero(np.isinf(values.to_numpy(dtype=float)))[0])
        raise DataError(f"{path}: column {col!r}, {_at(path, row)}: "
                        f"{text.iloc[row]!r} is not a finite number")
    return values.astype("float64")


def parse_times(path, text: pd.Series, col, time_format=None) -> pd.Series:
    """Parse a column of timestamps: ISO 8601, or ``time_format`` if given.

    Raises:
        DataError: naming the line and raw value of the first that does not parse.
    """
    stripped = text.str.strip()
    empty = stripped == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{path}: column {col!r}, {_at(path, row)}: "
                        f"missing timestamp")
    if time_format is None:
        periods = _parse_periods(path, text, stripped, col)
        if periods is not None:
            return periods
    try:
        parsed = pd.to_datetime(stripped, errors="coerce",
                                format=time_format or "ISO8601")
    except ValueError as err:  # a format pandas cannot use at all
        raise DataError(f"--time-format {time_format!r} is not usable: {err}") from None
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        if time_format:
            hint = f"does not match --time-format {time_format!r}"
        else:
            hint = ("is not an ISO 8601 date or time (such as 2024-01-31, 1949-01 or "
                    "2024-01-31 12:00); give the column's format with --time-format "
                    "(e.g. '%d/%m/%Y'), or leave out --time-col to use row order "
                    "(then give --season)")
        raise DataError(f"{path}: column {col!r}, {_at(path, row)}: "
                        f"{text.iloc[row]!r} {hint}")
    return parsed


# Labels that name a period rather than an instant, which strptime cannot
# express: quarters (1959Q1, 1959-Q1) and ISO weeks (2024-W05, 2024-W05-3).
_PERIODS = (
    ("quarter", r"(?i)(\d{4})[ -]?Q([1-4])", "1959Q1",
     lambda m: pd.Timestamp(int(m[0]), 3 * int(m[1]) - 2, 1)),
    ("ISO week", r"(\d{4})-?W(\d{2})(?:-?([1-7]))?", "2024-W05",
     lambda m: pd.Timestamp.fromisocalendar(int(m[0]), int(m[1]), int(m[2] or 1))),
)


def _parse_periods(path, text, stripped, col):
    """Quarter or ISO-week labels as the timestamps of their first day, or
    ``None`` when the column holds neither."""
    for what, pattern, example, start in _PERIODS:
        found = stripped.str.fullmatch(pattern)
        if not found.iloc[0]:
            continue
        if not found.all():
            row = int(np.flatnonzero(~found.to_numpy())[0])
            raise DataError(f"{path}: column {col!r}, {_at(path, row)}: "
                            f"{text.iloc[row]!r} is not a {what} like the rows above it "
                            f"({example})")
        parts = stripped.str.extract(pattern)
        stamps = []
        for row, values in enumerate(parts.itertuples(index=False)):
            try:
                stamps.append(start([v if isinstance(v, str) else None for v in values]))
            except ValueError:  # week 53 of a year that has 52
                raise DataError(f"{path}: column {col!r}, {_at(path, row)}: "
                                f"{text.iloc[row]!r} is not a valid {what}") from None
        return pd.Series(pd.DatetimeIndex(stamps), index=text.index)
    return None


def _check_time_order(path, index: pd.DatetimeIndex, col, *, reordered):
    dup = index.duplicated(keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(index == index[row])[0])
        if reordered:  # positions no longer match the file's lines
            raise DataError(f"{path}: column {col!r}: timestamp {index[row]} "
                            f"appears more than once")
        raise DataError(
            f"{path}: column {col!r}, {_at(path, row)}: timestamp "
            f"{index[row]} duplicates the one on {_at(path, first)}")
    if not index.is_monotonic_increasing:
        back = np.flatnonzero(np.diff(index.asi8) < 0)
        row = int(back[0]) + 1
        raise DataError(
            f"{path}: column {col!r}, {_at(path, row)}: timestamp "
            f"{index[row]} comes before the previous row's {index[row - 1]}; "
            f"sort the file or pass --sort")


def _infer_season(index) -> int | None:
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
