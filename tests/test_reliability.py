"""Faults to survive: orphaned runs, a down server, parallel processes."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from experiments import cli, tracking
from tests.helpers import all_runs, client_for, wait_for_training


def orphan(client, exp_id, pid):
    run = client.create_run(exp_id, tags={"lstm_zoo.pid": str(pid),
                                          "lstm_zoo.host": socket.gethostname()})
    return run.info.run_id


def test_runs_reap_closes_only_runs_whose_process_is_dead(tmp_path, capsys):
    uri = tracking.init_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = client_for(tmp_path / "mlflow.db")
    exp = client.create_experiment("reap")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_run = orphan(client, exp, gone.pid)
        live_run = orphan(client, exp, alive.pid)
        other_host = client.create_run(exp, tags={"lstm_zoo.pid": str(gone.pid),
                                                  "lstm_zoo.host": "elsewhere"})
        assert cli.main(["runs", "reap", "--tracking-uri", uri]) == 0
        assert "1 orphaned run(s) closed" in capsys.readouterr().out
        assert client.get_run(dead_run).info.status == "KILLED"
        assert client.get_run(dead_run).info.end_time is not None
        assert client.get_run(live_run).info.status == "RUNNING"
        assert client.get_run(other_host.info.run_id).info.status == "RUNNING"
    finally:
        alive.kill()


def test_down_tracking_server_fails_fast_and_trains_nothing(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is released
    uri = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    code = cli.main(["train", "--model", "gru", "--data", "sine", "--epochs", "1",
                     "--units", "4", "--tracking-uri", uri])
    elapsed = time.monotonic() - start
    out = capsys.readouterr()
    assert code == 2
    assert f"MLflow tracking server {uri} is not reachable" in out.err
    assert elapsed < 10
    assert "Epoch" not in out.out


@pytest.mark.slow
def test_four_processes_on_a_fresh_store_all_succeed(tmp_path):
    db = tmp_path / "mlflow.db"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "train", "--model", "gru", "--data",
         "sine", "--epochs", "3", "--patience", "3", "--units", "4", "--seed", str(i),
         "--tracking-uri", f"sqlite:///{db}"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True) for i in range(4)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0, err[-3000:]
    runs = all_runs(db)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    client = client_for(db)
    for run in runs:
        epochs = int(run.data.metrics["epochs_trained"])
        for key in ("loss", "val_loss", "learning_rate"):
            assert len(client.get_metric_history(run.info.run_id, key)) == epochs


def test_secrets_from_the_environment_never_reach_mlflow(tmp_path, monkeypatch, capsys):
    secret = "s3cr3t-T0KEN-value"
    monkeypatch.setenv("MY_SERVICE_TOKEN", secret)
    monkeypatch.setenv("DB_PASSWORD", "hunter2-password")
    folder = tmp_path / secret  # the secret in the data's path
    folder.mkdir()
    rows = ["day,value"] + [f"2024-01-{d:02d},{10 + (d % 7) * 1.5 + d * 0.1:.2f}"
                            for d in range(1, 32)]
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    db = tmp_path / "mlflow.db"
    assert cli.main(["train", "--model", "gru", "--csv", str(folder / "data.csv"),
                     "--target", "value", "--time-col", "day", "--window", "5",
                     "--horizon", "2", "--test-size", "6", "--val-size", "6",
                     "--epochs", "1", "--units", "4",
                     "--tracking-uri", f"sqlite:///{db}"]) == 0
    (run,) = all_runs(db)
    client = client_for(db)
    seen = [str(run.data.params), str(run.data.tags), str(run.inputs)]
    config = client.download_artifacts(run.info.run_id, "run_config.json")
    with open(config) as f:
        seen.append(f.read())
    for text in seen:
        assert secret not in text and "hunter2-password" not in text
    assert "***" in seen[-1]


def test_nan_loss_in_train_ends_failed_with_the_epoch(flaky_family, tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    code = cli.main(["train", "--model", "flaky_test", "--param", "mode=nan",
                     "--data", "sine", "--epochs", "5",
                     "--tracking-uri", f"sqlite:///{db}"])
    assert code == 1
    assert "training loss became nan at epoch 1" in capsys.readouterr().err
    (run,) = all_runs(db)
    assert run.info.status == "FAILED"
    assert "training loss became nan at epoch 1" in run.data.tags["error"]


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_during_tune_ends_parent_and_trial_killed(signum, code, tmp_path):
    db = tmp_path / "mlflow.db"
    tracking.init_store(f"sqlite:///{db}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "tune", "--data", "sine", "--models",
         "gru", "--max-trials", "3", "--epochs", "100000", "--patience", "100000",
         "--name", "stopme", "--tracking-uri", f"sqlite:///{db}"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        wait_for_training(db, proc, run_kind="trial")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-2000:]
    runs = all_runs(db)
    (parent,) = [r for r in runs if r.data.tags.get("run_kind") == "search"]
    (child,) = [r for r in runs if r.data.tags.get("run_kind") == "trial"]
    for run in (parent, child):
        assert run.info.status == "KILLED" and run.info.end_time is not None
    # The tuner's state on disk is readable: the same command resumes.
    import json
    state = json.loads((tmp_path / "tuner" / "stopme" / "lstm_zoo_search.json").read_text())
    assert state["parent_run_id"] == parent.info.run_id
