"""A user's table (a CSV file or a DataFrame laid out as one) into a ``Series``:
columns, cells, timestamps and the asked-for repairs, checked in that order."""

from __future__ import annotations

import os

import pandas as pd

from experiments.data.cells import check_time_order, numeric_column, parse_times
from experiments.data.files import InMemory, load_table
from experiments.data.series import Series, infer_season
from experiments.errors import DataError


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
        check_time_order(path, frame.index, time_col, reordered=reordered)
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
    season = infer_season(frame.index)
    return Series(
        name=name, frame=frame, targets=tuple(targets), features=tuple(targets + features),
        source=source, season=season, repairs=tuple(repairs),
    )
