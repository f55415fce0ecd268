"""Input validation: every bad file is refused with a message that names the
file, column, line and value, exit code 2, and no MLflow run."""

import pandas as pd
import pytest

from experiments import cli, data

GOOD = "month,sales,price\n" + "".join(
    f"2020-{m:02d},{100 + m * 3 + (m % 4) * 7},{5 + (m % 3)}\n" for m in range(1, 13)
) + "".join(f"2021-{m:02d},{140 + m * 3 + (m % 4) * 7},{6 + (m % 3)}\n"
            for m in range(1, 13))


def write(tmp_path, text, name="sales.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def replace_line(text, line_no, new):
    lines = text.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


BAD_CASES = {
    "missing file": (None, ["--target", "sales"], r"nope\.csv: file not found"),
    "unknown column": (GOOD, ["--target", "sale"],
                       r"no column 'sale'; the columns are \['month', 'sales', 'price'\]"),
    "question mark": (replace_line(GOOD, 5, "2020-04,?,6"), ["--target", "sales"],
                      r"column 'sales', line 5: '\?' is not a number"),
    "thousands separator": (replace_line(GOOD, 6, '2020-05,"1,234",6'),
                            ["--target", "sales"],
                            r"column 'sales', line 6: '1,234' is not a number"),
    "text feature": (replace_line(GOOD, 3, "2020-02,120,cheap"),
                     ["--target", "sales", "--features", "price"],
                     r"column 'price', line 3: 'cheap' is not a number"),
    "empty target cell": (replace_line(GOOD, 4, "2020-03,,6"), ["--target", "sales"],
                          r"column 'sales', line 4: missing value ''.*--fill-missing"),
    "NA target cell": (replace_line(GOOD, 4, "2020-03,NA,6"), ["--target", "sales"],
                       r"column 'sales', line 4: missing value 'NA'"),
    "bad timestamp": (replace_line(GOOD, 7, "2020-13-45,130,6"),
                      ["--target", "sales", "--time-col", "month"],
                      r"column 'month', line 7: '2020-13-45' is not an ISO 8601 date"),
    # Year 1, month 01 (the shampoo-sales convention); a guessing parser reads
    # it as the 1st of January, year 1, and "1-02" as the 2nd.
    "year-month without century": (
        "month,sales\n" + "".join(f"{y}-{m:02d},{100 + y * 12 + m}\n"
                                   for y in (1, 2) for m in range(1, 13)),
        ["--target", "sales", "--time-col", "month"],
        r"column 'month', line 2: '1-01' is not an ISO 8601 date.*--time-format"),
    "wrong time format": (GOOD, ["--target", "sales", "--time-col", "month",
                                 "--time-format", "%d/%m/%Y"],
                          r"line 2: '2020-01' does not match --time-format '%d/%m/%Y'"),
    "duplicated timestamp": (replace_line(GOOD, 4, "2020-02,130,6"),
                             ["--target", "sales", "--time-col", "month"],
                             r"line 4: timestamp 2020-02-01 00:00:00 duplicates "
                             r"the one on line 3"),
    "unsorted timestamps": (
        replace_line(replace_line(GOOD, 4, "2020-04,130,6"), 5, "2020-03,131,6"),
        ["--target", "sales", "--time-col", "month"],
        r"line 5: timestamp 2020-03-01 00:00:00 comes before.*--sort"),
    "constant column": ("month,sales,price\n" + "".join(line.rsplit(",", 1)[0] + ",5\n"
                                for line in GOOD.splitlines()[1:]),
                        ["--target", "sales", "--features", "price"],
                        r"column 'price' is constant"),
    "too short": (GOOD, ["--target", "sales", "--window", "12", "--horizon", "6",
                         "--val-size", "6", "--test-size", "6"],
                  r"too short: 24 rows.*at least \d+ rows in all"),
    "below the minimum": (GOOD, ["--target", "sales", "--time-col", "month",
                                 "--horizon", "18"],
                          r"24 rows are too few to forecast 18 steps; lstm-zoo needs at "
                          r"least 42 rows \(two seasons of 12 plus the horizon"),
    "empty file": ("", ["--target", "sales"], r"the file is empty"),
    "header only": ("month,sales\n", ["--target", "sales"], r"header but no rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_csv_exits_2_with_message_and_no_run(case, tmp_path, capsys):
    text, flags, message = BAD_CASES[case]
    path = tmp_path / "nope.csv" if text is None else write(tmp_path, text)
    db = tmp_path / "store.db"
    code = cli.main(["train", "--model", "gru", "--csv", str(path), *flags,
                     "--epochs", "1", "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ")
    assert str(path) in err
    import re
    assert re.search(message, err), err
    assert not db.exists(), "a bad input must not create a store or a run"


def test_unknown_model_and_wrong_family_exit_2(tmp_path, capsys):
    db = tmp_path / "store.db"
    uri = f"sqlite:///{db}"
    assert cli.main(["train", "--model", "grux", "--tracking-uri", uri]) == 2
    assert "did you mean 'gru'" in capsys.readouterr().err
    assert cli.main(["train", "--model", "conv_lstm", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "conv_lstm cannot serve the forecast task on airline" in err and "'gru'" in err
    assert cli.main(["train", "--model", "gru", "--units", "0",
                     "--tracking-uri", uri]) == 2
    assert "`units` must be an int >= 1; received units=0" in capsys.readouterr().err
    assert cli.main(["train", "--model", "vanilla_lstm", "--num-layers", "2",
                     "--tracking-uri", uri]) == 2
    assert "vanilla_lstm has no hyperparameter 'num_layers'" in capsys.readouterr().err
    assert not db.exists()


def test_fill_missing_and_sort_repair_and_are_recorded(tmp_path):
    text = replace_line(GOOD, 4, "2020-03,,6")
    text = replace_line(replace_line(text, 8, "2020-08,150,6"), 9, "2020-07,140,6")
    path = write(tmp_path, text)
    series = data.load_csv(path, target="sales", time_col="month",
                           fill_missing=True, sort=True)
    assert series.frame.index.is_monotonic_increasing
    # 2020-03 is interpolated between 2020-02 (120) and 2020-04 (112).
    assert series.frame.loc["2020-03-01", "sales"] == pytest.approx((120 + 112) / 2)
    assert any("sorted" in r for r in series.repairs)
    assert any("filled 1 missing" in r for r in series.repairs)
    assert series.season == 12


def test_bom_quoted_headers_and_crlf_are_read(tmp_path):
    text = '\ufeff"month","sales"\r\n' + "".join(
        f"2020-{m:02d},{100 + m}\r\n" for m in range(1, 13))
    path = tmp_path / "bom.csv"
    path.write_bytes(text.encode("utf-8"))
    series = data.load_csv(path, target="sales", time_col="month")
    assert list(series.frame["sales"]) == [100.0 + m for m in range(1, 13)]


def test_time_format_reads_day_first_dates(tmp_path):
    text = "day,sales\n" + "".join(f"{d:02d}/01/2024,{100 + d}\n" for d in range(1, 32))
    path = write(tmp_path, text)
    series = data.load_csv(path, target="sales", time_col="day", time_format="%d/%m/%Y")
    assert series.frame.index[0] == pd.Timestamp("2024-01-01")
    assert series.frame.index[12] == pd.Timestamp("2024-01-13")
    assert series.season == 7


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path, capsys):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:  # 200 MB, sparse: costs no disk and no time
        f.write(b"month,sales\n")
        f.truncate(200_000_000)
    db = tmp_path / "store.db"
    import time

    start = time.monotonic()
    code = cli.main(["train", "--model", "gru", "--csv", str(path), "--target", "sales",
                     "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{path}: the file is 200 MB, over the 100 MB limit" in err
    assert "--max-file-mb 221" in err
    assert time.monotonic() - start < 5 and not db.exists()


def test_only_the_needed_columns_are_read(tmp_path):
    wide = ",".join(f"junk{i}" for i in range(50))
    text = f"month,sales,{wide}\n" + "".join(
        f"2020-{m:02d},{100 + m}," + ",".join(["x" * 20] * 50) + "\n" for m in range(1, 13))
    path = write(tmp_path, text)
    raw = data.load_table(path, ["sales", "month"])
    assert list(raw.columns) == ["sales", "month"]
    series = data.load_csv(path, target="sales", time_col="month", max_file_mb=1)
    assert list(series.frame.columns) == ["sales"]


def test_airline_is_bundled_and_matches_the_reference():
    import hashlib
    import importlib.resources

    from tests.conftest import SHARED_DATA

    series = data.load_airline()
    assert len(series) == 144 and series.season == 12
    values = series.frame["Passengers"]
    assert (values.iloc[0], values.iloc[-1], values.sum()) == (112, 432, 40363)
    # Box & Jenkins' series as published (the digest of the reference copy).
    bundled = (importlib.resources.files("experiments") / "data" /
               "airline-passengers.csv").read_bytes()
    assert hashlib.sha256(bundled).hexdigest() == (
        "29a86cac504338c7c5607e721396e4bda240ca61785ffcac9ed1af4088199d42")
    reference = SHARED_DATA / "airline-passengers.csv"
    if reference.exists():  # optional: the team's copy, where it sits beside the checkout
        assert list(values) == list(pd.read_csv(reference)["Passengers"].astype(float))


def test_sine_is_deterministic_for_a_seed():
    a, b, c = data.make_sine(seed=1), data.make_sine(seed=1), data.make_sine(seed=2)
    assert a.frame.equals(b.frame)
    assert not a.frame.equals(c.frame)


def test_arrow_parses_clean_cells_as_pandas_does_and_leaves_the_rest_to_it():
    """Clean text columns (the usual file) are parsed by Arrow, at a third
    of pandas' memory on big files; they must come out as pandas would have
    read them, and any other column goes through pandas' checks."""
    import numpy as np

    from experiments.data import cells

    numbers = pd.Series([" 1", "2.5 ", "-3e2", "+4", "0.1"], dtype="str")
    np.testing.assert_array_equal(cells.numeric_column("f", numbers, "y", allow_missing=False),
                                  pd.to_numeric(numbers.str.strip()))
    dates = pd.Series(["2016-02-29", " 2024-12-31 ", "0099-01-01"], dtype="str")
    parsed = cells.parse_times("f", dates, "t")
    assert parsed.dtype == pd.to_datetime(dates.str.strip(), format="ISO8601").dtype
    assert parsed.tolist() == pd.to_datetime(dates.str.strip(), format="ISO8601").tolist()
    assert cells._arrow_dates(dates.str.strip()) is not None  # Arrow read them
    for column in (["1", "", "2"], ["1", "nan"], ["1", "inf"], ["1", "1,5"]):
        assert cells._arrow_numbers(pd.Series(column, dtype="str")) is None, column
    # Not plain dates, or a day that does not exist: pandas reads or refuses them.
    for column in (["2024-01", "2024-02"], ["2024-01-31 12:00"], ["2023-02-30"]):
        assert cells._arrow_dates(pd.Series(column, dtype="str")) is None, column
    with pytest.raises(data.DataError, match=r"'2023-02-30' is not an ISO 8601 date"):
        cells.parse_times("f", pd.Series(["2023-02-28", "2023-02-30"], dtype="str"), "t")
