"""One search across processes: a chief and workers over gRPC, real processes
on 127.0.0.1, every trial a child of the chief's parent run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import cli, tracking
from tests.helpers import all_runs, client_for
from tuning.distributed import free_port

pytestmark = pytest.mark.slow

TINY = ["--data", "sine", "--models", "gru", "--max-trials", "4", "--epochs", "2",
        "--patience", "2", "--window", "12", "--horizon", "3", "--name", "dist",
        "--seed", "3"]


def start(tmp_path, *extra, worker_id=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    if worker_id:
        env["KERASTUNER_TUNER_ID"] = worker_id
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "tune", *TINY, *extra,
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def runs_by_kind(db):
    runs = all_runs(db)
    (parent,) = [r for r in runs if r.data.tags.get("run_kind") == "search"]
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, kids


def test_chief_and_two_workers_survive_a_killed_worker(tmp_path):
    db = tmp_path / "mlflow.db"
    tracking.init_store(f"sqlite:///{db}")
    address = f"127.0.0.1:{free_port()}"
    chief = start(tmp_path, "--role", "chief", "--bind", address, "--worker-timeout", "6")
    # This worker trains its trial for as long as it lives.
    doomed = start(tmp_path, "--role", "worker", "--chief", address, "--worker-timeout",
                   "6", "--epochs", "100000", "--patience", "100000",
                   worker_id="worker-doomed")
    try:
        # Kill the first worker while it trains its first trial (SIGKILL: no cleanup).
        deadline = time.time() + 240
        while time.time() < deadline:
            kids = [r for r in all_runs(db)
                    if r.data.tags.get("worker") == "worker-doomed"]
            if kids and client_for(db).get_metric_history(kids[0].info.run_id, "loss"):
                break
            assert doomed.poll() is None, doomed.communicate()[0][-3000:]
            time.sleep(0.3)
        else:
            pytest.fail("the first worker never started training")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        survivor = start(tmp_path, "--role", "worker", "--chief", address,
                         "--worker-timeout", "6", worker_id="worker-survivor")
        out = survivor.communicate(timeout=400)[0]
        assert survivor.returncode == 0, out[-3000:]
        chief_out = chief.communicate(timeout=120)[0]
    finally:
        for p in (chief, doomed):
            p.kill()
    assert chief.returncode == 0, chief_out[-3000:]
    assert "worker worker-doomed silent for" in chief_out
    assert "trial 0 goes to the next worker" in chief_out
    parent, kids = runs_by_kind(db)
    assert parent.info.status == "FINISHED"
    finished = [k for k in kids if k.info.status == "FINISHED"]
    trial_ids = sorted(k.data.tags["keras_tuner.trial_id"] for k in finished)
    assert trial_ids == ["0", "1", "2", "3"]  # every trial completed exactly once
    assert {k.data.tags["worker"] for k in kids} == {"worker-doomed", "worker-survivor"}
    (killed,) = [k for k in kids if k.data.tags["worker"] == "worker-doomed"]
    assert killed.info.status == "KILLED"  # closed by the chief: its process is dead
    assert "best_score" in parent.data.metrics


def test_workers_flag_runs_chief_and_workers_on_this_machine(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    code = cli.main(["tune", *TINY, "--workers", "2", "--directory", str(tmp_path / "tuner"),
                     "--tracking-uri", f"sqlite:///{db}"])
    assert code == 0
    parent, kids = runs_by_kind(db)
    assert parent.info.status == "FINISHED"
    assert sorted(k.data.tags["keras_tuner.trial_id"] for k in kids) == ["0", "1", "2", "3"]
    assert all(k.info.status == "FINISHED" for k in kids)
    assert {k.data.tags["worker"] for k in kids} <= {"worker0", "worker1"}


def test_worker_without_a_chief_gives_up_within_the_timeout(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    start_at = time.monotonic()
    code = cli.main(["tune", *TINY, "--role", "worker", "--chief", address,
                     "--connect-timeout", "3", "--directory", str(tmp_path / "tuner"),
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    elapsed = time.monotonic() - start_at
    err = capsys.readouterr().err
    assert code == 2
    assert f"the chief at {address} did not answer within 3 s" in err
    assert elapsed < 15
    assert all_runs(tmp_path / "mlflow.db") == []
