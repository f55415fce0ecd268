"""Datasets: bundled, generated and user CSVs, validated before any training.

Every problem with a user's file raises ``DataError`` naming the file, the
column, the line (as a text editor numbers it: the header is line 1) and the
raw value, so it can be fixed without guessing. Nothing is coerced silently;
the two repairs that exist (``fill_missing``, ``sort``) must be asked for and
are recorded in ``Series.repairs``.

- ``series``: the ``Series`` every later stage reads, its frequency and season;
- ``tables``: a user's CSV or DataFrame into a ``Series`` (``load_csv``,
  ``frame_series``);
- ``files``: files before they are read (size limits, archives) and where a
  row is in them; ``cells``: text cells into numbers and timestamps;
- ``panel``: many series in one long table (``load_panel_csv``,
  ``frame_panel``) and a generated panel (``make_panel``);
- ``bundled``: airline (shipped here, ``airline-passengers.csv``) and the
  generated sine.
"""

from experiments.data.bundled import load_airline, make_sine
from experiments.data.cells import numeric_column, parse_times
from experiments.data.files import (
    MAX_FILE_MB,
    MAX_GENERATED_VALUES,
    InMemory,
    check_archive,
    check_generated,
    check_input_file,
    load_table,
    megabytes,
)
from experiments.data.panel import Panel, frame_panel, load_panel_csv, make_panel
from experiments.data.series import Series, infer_freq
from experiments.data.tables import frame_series, load_csv
from experiments.errors import DataError

__all__ = ["MAX_FILE_MB", "MAX_GENERATED_VALUES", "DataError", "InMemory", "Panel", "Series",
           "check_archive", "check_generated", "check_input_file", "frame_series",
           "frame_panel", "infer_freq", "load_airline", "load_csv", "load_panel_csv",
           "load_table", "make_panel", "make_sine", "megabytes", "numeric_column",
           "parse_times"]
