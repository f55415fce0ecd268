"""Faults to survive: orphaned runs, a down server, parallel processes."""

import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from experiments import cli, tracking
from tests.helpers import all_runs, client_for, popen_from_a_terminal, read_only, wait_for_training


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


@pytest.mark.slow
def test_four_processes_on_a_fresh_store_all_succeed(tmp_path):
    db = tmp_path / "mlflow.db"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "train", "--model", "gru", "--data",
         "sine", "--epochs", "2", "--patience", "2", "--units", "4", "--seed", str(i),
         "--combine", "none", "--tracking-uri", f"sqlite:///{db}"],
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
        for key in ("loss", "val_loss"):
            assert len(client.get_metric_history(run.info.run_id, key)) == epochs


# One writer: the product's own logging path (tracked_run + MetricLogger),
# flushing every epoch so that the eight writers contend as hard as they can.
WRITER = """
import pathlib, sys, time
import keras, mlflow
from experiments import tracking
from experiments.training import curves
uri, start_at, i = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
tracking.init_store(uri)
tracking.use_experiment("warm", uri)
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
# All writers start together: once every one is ready (at start_at at the latest).
pathlib.Path(f"ready{i}").touch()
while len(list(pathlib.Path().glob("ready*"))) < WRITERS and time.time() < start_at:
    time.sleep(0.02)
with tracking.tracked_run(run_name=f"writer{i}") as run:
    mlflow.log_params({f"p{k}": k * i for k in range(20)})
    logger = curves.MetricLogger(run.info.run_id, flush_seconds=0)
    logger.set_model(model)
    for epoch in range(EPOCHS):
        logger.on_epoch_end(epoch, {"loss": i + epoch / 1000, "val_loss": -epoch})
    logger.on_train_end()
"""


@pytest.mark.slow
def test_eight_processes_logging_to_a_warm_store_lose_nothing(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = tracking.init_store(f"sqlite:///{db}")
    tracking.use_experiment("warm", uri)
    client = client_for(db)
    client.create_run(client.get_experiment_by_name("warm").experiment_id)  # warm: in use
    epochs = 40
    script = WRITER.replace("EPOCHS", str(epochs)).replace("WRITERS", "8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start_at = time.time() + 60  # at the latest; at once when all have imported
    procs = [subprocess.Popen([sys.executable, "-c", script, uri, str(start_at), str(i)],
                              cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0, err[-3000:]
    writers = [r for r in all_runs(db) if r.info.run_name.startswith("writer")]
    assert len(writers) == 8
    for run in writers:
        i = int(run.info.run_name[len("writer"):])
        assert run.info.status == "FINISHED"
        assert run.data.params == {f"p{k}": str(k * i) for k in range(20)}
        for key in ("loss", "val_loss"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(epochs)), key
        losses = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
        assert losses[epochs - 1] == pytest.approx(i + (epochs - 1) / 1000)


SINE_TRAIN = ["train", "--model", "gru", "--data", "sine", "--epochs", "1", "--units", "4"]


@pytest.mark.slow
def test_read_only_artifact_or_tuner_directory_is_refused_before_any_run(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = tracking.init_store(f"sqlite:///{db}")
    tracking.use_experiment("sine", uri)  # artifacts go to mlruns/sine
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    cli_cmd = [sys.executable, "-m", "experiments.cli"]

    artifacts = tmp_path / "mlruns"
    done = subprocess.run([*read_only(artifacts), *cli_cmd, *SINE_TRAIN,
                           "--tracking-uri", uri], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert (f"cannot write to the MLflow artifact directory {artifacts / 'sine'}"
            in done.stderr), done.stderr[-2000:]
    assert all_runs(db) == []

    tuner = tmp_path / "tuner"
    done = subprocess.run([*read_only(tuner), *cli_cmd, "tune", "--data", "sine",
                           "--models", "gru", "--max-trials", "1", "--epochs", "1",
                           "--name", "ro", "--directory", str(tuner),
                           "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot write to the tuner directory {tuner / 'ro'}" in done.stderr
    assert all_runs(tmp_path / "other.db") == []


def test_disk_full_while_saving_ends_the_run_failed(tmp_path, monkeypatch, capsys):
    import errno

    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    def full(self, local, artifact_path=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(local))

    # The folder passed the check at the start; the disk fills up during the run.
    monkeypatch.setattr(LocalArtifactRepository, "log_artifact", full)
    monkeypatch.setattr(LocalArtifactRepository, "log_artifacts", full)
    db = tmp_path / "mlflow.db"
    code = cli.main([*SINE_TRAIN, "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: [Errno 28] No space left on device" in err
    (run,) = all_runs(db)
    assert run.info.status == "FAILED" and run.info.end_time is not None
    assert "No space left on device" in run.data.tags["error"]


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


def test_nan_loss_mid_training_ends_failed_with_that_epoch(flaky_family, tmp_path,
                                                          capsys):
    db = tmp_path / "mlflow.db"
    # sine: 400 rows, about 8 batches of 32 per epoch; NaN from step 21 on.
    code = cli.main(["train", "--model", "flaky_test", "--param", "mode=nan_later",
                     "--param", "nan_after=20", "--data", "sine", "--epochs", "10",
                     "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 1, err
    (run,) = all_runs(db)
    assert run.info.status == "FAILED"
    epoch = int(re.search(r"training loss became nan at epoch (\d+)",
                          run.data.tags["error"]).group(1))
    assert epoch >= 2
    history = client_for(db).get_metric_history(run.info.run_id, "loss")
    finite = [m for m in history if math.isfinite(m.value)]
    assert len(finite) == epoch - 1  # the epochs before the NaN, all logged


@pytest.mark.slow
def test_nan_mid_trial_fails_that_trial_and_the_search_goes_on(flaky_family, tmp_path):
    flaky_family("nan_later", "ok")
    db = tmp_path / "mlflow.db"
    code = cli.main(["tune", "--data", "sine", "--models", "flaky_test",
                     "--tuner", "grid", "--max-trials", "2", "--epochs", "6",
                     "--patience", "6", "--directory", str(tmp_path / "tuner"),
                     "--tracking-uri", f"sqlite:///{db}"])
    assert code == 0
    runs = all_runs(db)
    (parent,) = [r for r in runs if r.data.tags.get("run_kind") == "search"]
    kids = {r.data.params["mode"]: r for r in runs if r.data.tags.get("run_kind") == "trial"}
    assert parent.info.status == "FINISHED"
    assert kids["ok"].info.status == "FINISHED"
    failed = kids["nan_later"]
    assert failed.info.status == "FAILED"
    epoch = int(re.search(r"loss became nan at epoch (\d+)",
                          failed.data.tags["error"]).group(1))
    assert epoch >= 2
    history = client_for(db).get_metric_history(failed.info.run_id, "loss")
    assert len([m for m in history if math.isfinite(m.value)]) == epoch - 1


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_during_tune_ends_parent_and_trial_killed(signum, code, tmp_path):
    db = tmp_path / "mlflow.db"
    tracking.init_store(f"sqlite:///{db}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = popen_from_a_terminal(
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
