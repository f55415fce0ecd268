"""Cells of a user's table, as text, into numbers and timestamps; each bad
one named by column, line (or row) and raw value."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from experiments.data.files import at
from experiments.errors import DataError


def numeric_column(path, text: pd.Series, col, *, allow_missing) -> pd.Series:
    """A column of text cells as float64; a cell that is no number, a
    missing one (unless ``allow_missing``) or an infinite one is named by
    its line and raw value."""
    clean = _arrow_numbers(text)
    if clean is not None:
        return clean
    stripped = text.str.strip()
    values = pd.to_numeric(stripped, errors="coerce")
    empty = stripped.isin(["", "NA", "NaN", "nan", "N/A", "null", "NULL"])
    bad = values.isna() & ~empty
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: column {col!r}, {at(path, row)}: {text.iloc[row]!r} is "
            f"not a number ({int(bad.sum())} such cell(s) in the column)")
    if empty.any() and not allow_missing:
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(
            f"{path}: column {col!r}, {at(path, row)}: missing value "
            f"{text.iloc[row]!r} ({int(empty.sum())} in the column); fix the "
            f"file or pass --fill-missing to interpolate")
    if not np.isfinite(values.dropna().to_numpy(dtype=float)).all():
        row = int(np.flatnonzero(np.isinf(values.to_numpy(dtype=float)))[0])
        raise DataError(f"{path}: column {col!r}, {at(path, row)}: "
                        f"{text.iloc[row]!r} is not a finite number")
    return values.astype("float64")


def _arrow_text(column: pd.Series) -> pa.Array | None:
    """The Arrow array under a column of pandas' Arrow text (no copy), or
    ``None`` for a column of any other kind."""
    if not isinstance(column.dtype, pd.StringDtype) or column.dtype.storage != "pyarrow":
        return None
    return pa.array(column.array)


def _arrow_numbers(text: pd.Series) -> pd.Series | None:
    """The column as float64 when Arrow parses every cell to a finite number
    (the usual file): about a fifth of ``pd.to_numeric``'s time and a third
    of its memory on ten million cells. ``None`` for anything else (a blank,
    a word, ``nan``, an infinity, cells that are not Arrow text), which the
    checks of ``numeric_column`` then name."""
    cells = _arrow_text(text)
    if cells is None:
        return None
    try:
        parsed = pc.cast(pc.utf8_trim_whitespace(cells), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    values = parsed.to_numpy()
    if not np.isfinite(values).all():
        return None
    return pd.Series(values, index=text.index, name=text.name)


def parse_times(path, text: pd.Series, col, time_format=None) -> pd.Series:
    """Parse a column of timestamps: ISO 8601, or ``time_format`` if given.

    Raises:
        DataError: naming the line and raw value of the first that does not parse.
    """
    stripped = text.str.strip()
    empty = stripped == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{path}: column {col!r}, {at(path, row)}: "
                        f"missing timestamp")
    if time_format is None:
        periods = _parse_periods(path, text, stripped, col)
        if periods is not None:
            return periods
        dates = _arrow_dates(stripped)
        if dates is not None:
            return dates
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
        raise DataError(f"{path}: column {col!r}, {at(path, row)}: "
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


def _arrow_dates(stripped: pd.Series) -> pd.Series | None:
    """Plain dates (2024-01-31) in every cell, parsed by Arrow as
    ``pd.to_datetime`` would (microseconds): on ten million cells it took
    730 MB more than the column at its peak, Arrow none. ``None`` for any
    other column, which ``pd.to_datetime`` then reads."""
    cells = _arrow_text(stripped)
    if cells is None:
        return None
    if not pc.all(pc.match_substring_regex(cells, r"^\d{4}-\d{2}-\d{2}$")).as_py():
        return None
    try:
        parsed = pc.strptime(cells, format="%Y-%m-%d", unit="us")
    except pa.ArrowInvalid:
        return None
    # A day that does not exist (2023-02-30) would roll over into the next month.
    if not pc.all(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), cells)).as_py():
        return None
    return pd.Series(parsed.to_numpy(), index=stripped.index)


def _parse_periods(path, text, stripped, col):
    """Quarter or ISO-week labels as the timestamps of their first day, or
    ``None`` when the column holds neither."""
    for what, pattern, example, start in _PERIODS:
        # The first cell decides (a pass over every cell costs seconds on
        # millions of rows).
        if not re.fullmatch(pattern, stripped.iloc[0]):
            continue
        found = stripped.str.fullmatch(pattern)
        if not found.all():
            row = int(np.flatnonzero(~found.to_numpy())[0])
            raise DataError(f"{path}: column {col!r}, {at(path, row)}: "
                            f"{text.iloc[row]!r} is not a {what} like the rows above it "
                            f"({example})")
        parts = stripped.str.extract(pattern)
        stamps = []
        for row, values in enumerate(parts.itertuples(index=False)):
            try:
                stamps.append(start([v if isinstance(v, str) else None for v in values]))
            except ValueError:  # week 53 of a year that has 52
                raise DataError(f"{path}: column {col!r}, {at(path, row)}: "
                                f"{text.iloc[row]!r} is not a valid {what}") from None
        return pd.Series(pd.DatetimeIndex(stamps), index=text.index)
    return None


def check_time_order(path, index: pd.DatetimeIndex, col, *, reordered):
    dup = index.duplicated(keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(index == index[row])[0])
        if reordered:  # positions no longer match the file's lines
            raise DataError(f"{path}: column {col!r}: timestamp {index[row]} "
                            f"appears more than once")
        raise DataError(
            f"{path}: column {col!r}, {at(path, row)}: timestamp "
            f"{index[row]} duplicates the one on {at(path, first)}")
    if not index.is_monotonic_increasing:
        back = np.flatnonzero(np.diff(index.asi8) < 0)
        row = int(back[0]) + 1
        raise DataError(
            f"{path}: column {col!r}, {at(path, row)}: timestamp "
            f"{index[row]} comes before the previous row's {index[row - 1]}; "
            f"sort the file or pass --sort")
