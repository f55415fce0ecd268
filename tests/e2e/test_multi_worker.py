"""`train --data-parallel` across two processes on 127.0.0.1, each with its
own TF_CONFIG (tf.distribute.MultiWorkerMirroredStrategy): one model, one
MLflow run written by the chief alone; a dead process ends the other with a
clear error and a FAILED run."""

import json
import os
import subprocess
import sys
import time

import mlflow
import pandas as pd
import pytest

from tests.e2e.test_panel_e2e import PANEL, panel_csv
from tests.helpers import all_runs, client_for, free_ports

pytestmark = pytest.mark.slow


def start_cluster(folder, *args, epochs):
    """Both processes of a two-process cluster, started as a user would on
    two machines: the same command, each with its own TF_CONFIG."""
    ports = free_ports(2)
    path = panel_csv(folder / "stores.csv")
    command = [sys.executable, "-m", "experiments.cli", "train", "--model", "gru",
               "--csv", str(path), *PANEL, "--window", "12", "--horizon", "6",
               "--epochs", str(epochs), "--units", "16", "--batch-size", "32",
               "--learning-rate", "0.01", "--data-parallel",
               "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", *args]
    workers = [f"127.0.0.1:{port}" for port in ports]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        env.pop("MLFLOW_TRACKING_URI", None)
        out = open(folder / f"worker{index}.out", "w")
        processes.append(subprocess.Popen(command, cwd=folder, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, text=True))
    return processes, path


def read(folder, index):
    return (folder / f"worker{index}.out").read_text()


def test_two_processes_train_one_model_and_the_chief_alone_records_it(tmp_path):
    processes, path = start_cluster(tmp_path, "--refit", "--model-name", "two-workers",
                                    epochs=6)
    codes = [p.wait(timeout=400) for p in processes]
    assert codes == [0, 0], read(tmp_path, 0)[-3000:] + read(tmp_path, 1)[-2000:]
    assert "records the run in MLflow" in read(tmp_path, 1)
    (run,) = all_runs(tmp_path / "mlflow.db")
    assert run.info.status == "FINISHED"
    assert run.data.params["processes"] == "2" and run.data.params["replicas"] == "2"
    losses = [m.value for m in client_for(tmp_path / "mlflow.db")
              .get_metric_history(run.info.run_id, "loss")]
    assert len(losses) == 6 and losses[-1] < losses[0]
    # Both processes took the same steps: the worker's log shows the chief's losses.
    assert f"loss: {losses[-1]:.4f}" in read(tmp_path, 1)
    assert run.data.metrics["refit_epochs"] >= 1
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/two-workers@best")
    table = model.predict(pd.read_csv(path))
    assert table["store"].nunique() == 9 and table["sales"].notna().any()


def test_killing_one_process_ends_the_other_with_a_clear_error(tmp_path):
    processes, _ = start_cluster(tmp_path, epochs=400)
    chief, worker = processes
    deadline = time.time() + 240
    while "Epoch 3/" not in read(tmp_path, 0):
        assert time.time() < deadline and chief.poll() is None, read(tmp_path, 0)[-3000:]
        time.sleep(0.2)
    worker.kill()
    worker.wait(timeout=30)
    try:
        code = chief.wait(timeout=120)
    finally:
        chief.kill()
    output = read(tmp_path, 0)
    assert code == 1, output[-3000:]
    assert "training across 2 processes stopped" in output and "stopped answering" in output
    (run,) = all_runs(tmp_path / "mlflow.db")
    assert run.info.status == "FAILED"
    assert "stopped answering" in run.data.tags["error"]
