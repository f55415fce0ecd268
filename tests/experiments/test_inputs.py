"""Bounded, readable input: every file and generated size has a limit checked
before loading, and errors name the file, line or store instead of a traceback."""

import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from experiments import cli, data, tracking
from tests.helpers import client_for


def refused(capsys, *args):
    code = cli.main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("flag,suffix,write", [
    ("--text", ".txt", lambda p: p.write_text("the time traveller " * 200)),
    ("--npy", ".npy", lambda p: np.save(p, np.random.rand(4, 5, 8, 8))),
    ("--npz", ".npz", lambda p: np.savez(p, x=np.random.rand(40, 5, 2), y=np.arange(40) % 2)),
])
def test_every_input_file_has_the_size_limit(flag, suffix, write, tmp_path, capsys):
    path = tmp_path / f"input{suffix}"
    write(path)
    err = refused(capsys, "train", "--model", "gru", flag, str(path), "--max-file-mb", "0.001",
                  "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert f"{path}: the file is" in err and "over the 0.001 MB limit" in err
    assert not (tmp_path / "mlflow.db").exists()


def test_an_npz_that_unpacks_past_the_limit_is_refused_before_unpacking(tmp_path, capsys):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((100, 100, 200), "float32"), y=np.zeros(100))
    assert path.stat().st_size < 200_000  # 8 MB of zeros, compressed
    err = refused(capsys, "train", "--model", "gru", "--npz", str(path), "--max-file-mb", "1",
                  "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert f"{path}: the archive unpacks to 8.0 MB, over the 1 MB limit" in err


def test_a_keras_file_that_unpacks_past_the_limit_is_refused(tmp_path, capsys):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", "{}")
        z.writestr("metadata.json", "{}")
        z.writestr("model.weights.h5", b"\0" * 5_000_000)
    assert path.stat().st_size < 100_000
    err = refused(capsys, "inspect", str(path), "--max-file-mb", "1")
    assert f"{path}: the file unpacks to 5.0 MB, over the 1 MB limit" in err


@pytest.mark.parametrize("flags,shape", [
    (["--data", "sine", "--data-option", "length=100000000"], "(100000000,)"),
    (["--data", "memory", "--data-option", "count=3000000"], "(3000000, 40, 4)"),
    (["--data", "moving_digits", "--data-option", "count=1000000"], "(1000000, 10, 24, 24)"),
])
def test_generated_sizes_have_a_documented_maximum(flags, shape, tmp_path, capsys):
    err = refused(capsys, "train", "--model", "gru", *flags,
                  "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert shape in err and f"over the limit of {data.MAX_GENERATED_VALUES:,}" in err


def test_csv_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text('month,note,sales\n'
                    '\n'
                    '2020-01,"two\nlines",1\n'
                    '\n'
                    '2020-02,plain,2\n'
                    '2020-03,"three\nlines\nhere",3\n'
                    '2020-04,plain,oops\n')
    with pytest.raises(data.DataError, match=r"column 'sales', line 10: 'oops' is not a number"):
        data.load_csv(path, target="sales", time_col="month")


@pytest.mark.parametrize("labels,first,season", [
    (["1959Q1", "1959Q2", "1959Q3", "1959Q4", "1960Q1", "1960Q2"], "1959-01-01", 4),
    (["1959-Q3", "1959-Q4", "1960-Q1", "1960-Q2", "1960-Q3"], "1959-07-01", 4),
    (["2024-W05", "2024-W06", "2024-W07", "2024-W08", "2024-W09"], "2024-01-29", 52),
    (["2020-W53", "2021-W01", "2021-W02", "2021-W03"], "2020-12-28", 52),
])
def test_quarter_and_iso_week_labels_parse(labels, first, season, tmp_path):
    path = tmp_path / "periods.csv"
    path.write_text("when,value\n" + "".join(f"{t},{i * 3 % 7 + i}\n"
                                             for i, t in enumerate(labels)))
    series = data.load_csv(path, target="value", time_col="when")
    assert str(series.frame.index[0].date()) == first
    assert series.season == season


def test_a_period_column_with_a_stray_label_names_its_line(tmp_path):
    path = tmp_path / "periods.csv"
    path.write_text("when,value\n1959Q1,1\n1959Q2,2\n1959-07,3\n")
    with pytest.raises(data.DataError, match=r"line 4: '1959-07' is not a quarter"):
        data.load_csv(path, target="value", time_col="when")


def as_another_user():
    """A command prefix that runs as an unprivileged user, for whom file
    permissions hold (they do not bind root)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: no way to drop privileges")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.slow
def test_an_unreadable_file_exits_2_naming_it(tmp_path):
    import tempfile

    # A folder the other user can enter (pytest's own is private to root).
    tmp_path = type(tmp_path)(tempfile.mkdtemp(prefix="lstm-zoo-perm-"))
    os.chmod(tmp_path, 0o777)
    path = tmp_path / "private.csv"
    path.write_text("month,sales\n2020-01,1\n2020-02,2\n")
    os.chmod(path, 0o000)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", HOME=str(tmp_path))
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [*as_another_user(), sys.executable, "-m", "experiments.cli", "train", "--model",
         "gru", "--csv", str(path), "--target", "sales", "--time-col", "month"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"error: {path}: permission denied" in done.stderr
    assert "Traceback" not in done.stderr
    shutil.rmtree(tmp_path)


@pytest.mark.slow
def test_a_read_only_store_exits_1_with_one_line_naming_it(tmp_path):
    db = tmp_path / "mlflow.db"
    tracking.init_store(f"sqlite:///{db}")
    if os.geteuid() == 0:  # permissions do not bind root: a read-only bind mount does
        prefix = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                  'mount --bind -o ro "$0" "$0" && exec "$@"', str(db)]
        if not shutil.which("unshare") or subprocess.run(
                [*prefix, "true"], capture_output=True).returncode != 0:
            pytest.skip("running as root where user namespaces are not allowed")
    else:
        os.chmod(db, 0o444)
        prefix = []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "experiments.cli", "train", "--model", "gru",
         "--data", "sine", "--epochs", "1", "--units", "4", "--tracking-uri",
         f"sqlite:///{db}"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"the MLflow store sqlite:///{db} failed" in lines[0]
    assert "readonly" in lines[0] or "read-only" in lines[0]


def test_generate_names_the_real_cause(tmp_path, capsys):
    uri = tracking.init_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = client_for(tmp_path / "mlflow.db")
    run = client.create_run(client.create_experiment("sine"), tags={"task": "forecast"})
    client.set_terminated(run.info.run_id)
    err = refused(capsys, "generate", "--run-id", "0123456789abcdef", "--tracking-uri", uri)
    assert "no run '0123456789abcdef' in" in err
    err = refused(capsys, "generate", "--run-id", run.info.run_id, "--tracking-uri", uri)
    assert "has no language model (it is a forecast run" in err
