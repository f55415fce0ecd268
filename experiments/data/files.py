"""Files before they are read: existence, size limits, archives, generated
sizes; reading a CSV as text; and naming a row as the user will find it."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments.errors import DataError

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


def at(path, row: int) -> str:
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
