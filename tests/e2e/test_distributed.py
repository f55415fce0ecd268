"""One search across processes: a chief and workers over gRPC as real
processes on 127.0.0.1, logging to a real `mlflow server` on a real PostgreSQL
(started here from the system's packages; `.ci/run` installs them). Every
trial is a child of the chief's parent run."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from experiments import cli
from tuning.distributed import free_port

pytestmark = pytest.mark.slow

TINY = ["--data", "sine", "--models", "gru", "--max-trials", "3", "--epochs", "2",
        "--patience", "2", "--window", "12", "--horizon", "3", "--seed", "3"]


def start(tmp_path, uri, name, *extra, worker_id=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    if worker_id:
        env["KERASTUNER_TUNER_ID"] = worker_id
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "tune", *TINY, "--name", name,
         "--experiment", name, *extra, "--tracking-uri", uri],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_launcher(tmp_path, uri, name, *extra):
    """`tune --workers 2` in a session of its own, with trials that never end."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "tune", *TINY, "--name", name,
         "--experiment", name, "--epochs", "100000", "--patience", "100000",
         "--workers", "2", *extra, "--tracking-uri", uri],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def search_runs(uri, name):
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    parents = [r for r in runs if r.data.tags.get("run_kind") == "search"]
    kids = [r for r in runs if r.data.tags.get("run_kind") == "trial"]
    return parents, kids


def test_chief_and_two_workers_survive_a_killed_worker(tmp_path, team_server):
    uri, name = team_server, "killed"
    client = mlflow.MlflowClient(uri)
    address = f"127.0.0.1:{free_port()}"
    chief = start(tmp_path, uri, name, "--role", "chief", "--bind", address,
                  "--worker-timeout", "10")
    # This worker trains its trial for as long as it lives.
    doomed = start(tmp_path, uri, name, "--role", "worker", "--chief", address,
                   "--worker-timeout",
                   "6", "--epochs", "100000", "--patience", "100000",
                   worker_id="worker-doomed")
    try:
        # Kill the first worker while it trains its first trial (SIGKILL: no cleanup).
        deadline = time.time() + 240
        while time.time() < deadline:
            kids = [r for r in search_runs(uri, name)[1]
                    if r.data.tags.get("worker") == "worker-doomed"]
            if kids and client.get_metric_history(kids[0].info.run_id, "loss"):
                break
            assert doomed.poll() is None, doomed.communicate()[0][-3000:]
            time.sleep(0.3)
        else:
            pytest.fail("the first worker never started training")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        survivor = start(tmp_path, uri, name, "--role", "worker", "--chief", address,
                         "--worker-timeout", "10", worker_id="worker-survivor")
        out = survivor.communicate(timeout=400)[0]
        assert survivor.returncode == 0, out[-3000:]
        chief_out = chief.communicate(timeout=120)[0]
    finally:
        for p in (chief, doomed):
            p.kill()
    assert chief.returncode == 0, chief_out[-3000:]
    assert "worker worker-doomed silent for" in chief_out
    assert "trial 0 goes to the next worker" in chief_out
    (parent,), kids = search_runs(uri, name)
    assert parent.info.status == "FINISHED"
    assert all(k.data.tags["mlflow.parentRunId"] == parent.info.run_id for k in kids)
    finished = [k for k in kids if k.info.status == "FINISHED"]
    trial_ids = sorted(k.data.tags["keras_tuner.trial_id"] for k in finished)
    assert trial_ids == ["0", "1", "2"]  # every trial completed exactly once
    assert {k.data.tags["worker"] for k in kids} == {"worker-doomed", "worker-survivor"}
    (killed,) = [k for k in kids if k.data.tags["worker"] == "worker-doomed"]
    assert killed.info.status == "KILLED"  # closed by the chief: its process is dead
    # The transforms were searched (not pinned): trials ranked in the data's units.
    assert "best_trial_val_rmse" in parent.data.metrics


def test_workers_flag_runs_chief_and_workers_on_this_machine(tmp_path, team_server):
    name = "flag"
    # Four trials for two workers: both get some, whichever starts first.
    code = cli.main(["tune", *TINY, "--max-trials", "4", "--name", name, "--experiment", name,
                     "--workers", "2",
                     "--directory", str(tmp_path / "tuner"), "--tracking-uri", team_server])
    assert code == 0
    (parent,), kids = search_runs(team_server, name)
    assert parent.info.status == "FINISHED"
    assert sorted(k.data.tags["keras_tuner.trial_id"] for k in kids) == ["0", "1", "2", "3"]
    assert all(k.info.status == "FINISHED" for k in kids)
    assert {k.data.tags["worker"] for k in kids} == {"worker0", "worker1"}
    client = mlflow.MlflowClient(team_server)
    version = client.get_model_version_by_alias("lstm-zoo-sine-value", "best")
    assert version.tags["search"] == name


def test_worker_without_a_chief_gives_up_within_the_timeout(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    start_at = time.monotonic()
    code = cli.main(["tune", *TINY, "--name", "lonely", "--role", "worker", "--chief", address,
                     "--connect-timeout", "3", "--directory", str(tmp_path / "tuner"),
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    elapsed = time.monotonic() - start_at
    err = capsys.readouterr().err
    assert code == 2
    assert f"the chief at {address} did not answer within 3 s" in err
    assert elapsed < 15
    assert not (tmp_path / "mlflow.db").exists()


def test_killed_chief_restarts_and_the_search_resumes(tmp_path, team_server):
    uri, name = team_server, "chief-restart"
    client = mlflow.MlflowClient(uri)
    address = f"127.0.0.1:{free_port()}"
    chief = start(tmp_path, uri, name, "--role", "chief", "--bind", address,
                  "--worker-timeout", "10")
    worker = start(tmp_path, uri, name, "--role", "worker", "--chief", address,
                   "--worker-timeout", "10", "--connect-timeout", "10", worker_id="worker-a")
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # the first trial finished: state worth keeping
            done = [r for r in search_runs(uri, name)[1] if r.info.status == "FINISHED"]
            if done:
                break
            assert chief.poll() is None, chief.communicate()[0][-3000:]
            time.sleep(0.3)
        else:
            pytest.fail("no trial finished")
        chief.send_signal(signal.SIGKILL)
        chief.wait()
        out = worker.communicate(timeout=120)[0]
        assert worker.returncode != 0
        assert f"the chief at {address}" in out, out[-3000:]
        # Same commands again: the chief resumes, a worker finishes the search.
        chief = start(tmp_path, uri, name, "--role", "chief", "--bind", address,
                      "--worker-timeout", "10")
        worker = start(tmp_path, uri, name, "--role", "worker", "--chief", address,
                       "--worker-timeout", "10", worker_id="worker-b")
        out = worker.communicate(timeout=400)[0]
        assert worker.returncode == 0, out[-3000:]
        chief_out = chief.communicate(timeout=120)[0]
        assert chief.returncode == 0, chief_out[-3000:]
    finally:
        for p in (chief, worker):
            p.kill()
    (parent,), kids = search_runs(uri, name)  # one parent, resumed
    assert parent.info.status == "FINISHED"
    finished = sorted(k.data.tags["keras_tuner.trial_id"] for k in kids
                      if k.info.status == "FINISHED")
    assert finished == ["0", "1", "2"]
    assert not [k for k in kids if k.info.status == "RUNNING"]
    assert client.get_run(parent.info.run_id).data.metrics["best_trial_val_rmse"] > 0


def fake_launch(monkeypatch, workers):
    """``launch`` with Popen recorded instead of run: [(command, env)]."""
    from tuning import distributed

    started = []

    class FakeProcess:
        def __init__(self, cmd, env=None, preexec_fn=None):
            started.append((cmd, env))
            self.pid, self.returncode = 1000 + len(started), 0

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(distributed.subprocess, "Popen", FakeProcess)
    assert distributed.launch(["--data", "airline"], workers=workers) == 0
    return started


def test_workers_on_a_cpu_split_the_cores_between_them(monkeypatch):
    """workers x threads = cores: each worker's TensorFlow and OpenMP thread
    counts are cores / N (at least 1), and a count the user set is kept."""
    from tuning import distributed

    monkeypatch.setattr(distributed, "visible_gpus", lambda: [])
    monkeypatch.setattr(distributed.os, "cpu_count", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    _, *workers = fake_launch(monkeypatch, 2)
    for _, env in workers:
        assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == "4"
        assert env["OMP_NUM_THREADS"] == "3"
    _, *workers = fake_launch(monkeypatch, 16)
    assert {env["TF_NUM_INTRAOP_THREADS"] for _, env in workers} == {"1"}


def test_workers_flag_gives_each_worker_its_own_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    chief, *workers = fake_launch(monkeypatch, 3)
    assert "--role" in chief[0] and chief[0][chief[0].index("--role") + 1] == "chief"
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in workers] == ["2", "3", "2"]
    assert [env["KERASTUNER_TUNER_ID"] for _, env in workers] == ["worker0", "worker1",
                                                                   "worker2"]
    bind = chief[0][chief[0].index("--bind") + 1]
    assert bind.startswith("127.0.0.1:")
    assert all(cmd[cmd.index("--chief") + 1] == bind for cmd, _ in workers)


def test_sigterm_to_the_launcher_stops_chief_and_workers(tmp_path, team_server):
    uri, name = team_server, "stopped"
    launcher = start_launcher(tmp_path, uri, name)
    client = mlflow.MlflowClient(uri)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            kids = search_runs(uri, name)[1]
            if kids and client.get_metric_history(kids[0].info.run_id, "loss"):
                break
            assert launcher.poll() is None, launcher.communicate()[0][-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("no trial started")
        launcher.send_signal(signal.SIGTERM)
        out = launcher.communicate(timeout=120)[0]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)  # the launcher's chief and workers too
    assert launcher.returncode != 0, out[-2000:]
    # Nothing of the search is left running: no process, no RUNNING run.
    left = subprocess.run(["pgrep", "-s", str(launcher.pid)], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    (parent,), kids = search_runs(uri, name)
    assert parent.info.status == "KILLED"
    assert kids and all(k.info.status in ("KILLED", "FAILED") for k in kids), [
        (k.info.status, k.data.tags.get("worker"), k.data.tags.get("error")) for k in kids]


def test_a_second_chief_on_an_address_in_use_is_refused(tmp_path, team_server):
    uri, address = team_server, f"127.0.0.1:{free_port()}"
    first = start(tmp_path, uri, "chief-one", "--role", "chief", "--bind", address)
    try:
        deadline = time.time() + 120
        lines = []
        while not any("listening on" in line for line in lines):
            assert first.poll() is None and time.time() < deadline, "".join(lines)[-3000:]
            lines.append(first.stdout.readline())
        second = start(tmp_path, uri, "chief-two", "--role", "chief", "--bind", address)
        out = second.communicate(timeout=120)[0]
        assert second.returncode == 2, out[-3000:]
        assert f"the chief cannot listen on {address}" in out
        assert first.poll() is None  # the first chief still serves
    finally:
        first.kill()
        first.wait()
    assert search_runs(uri, "chief-two") == ([], [])  # refused before any run


def test_launcher_whose_workers_all_die_ends_and_leaves_nothing(tmp_path, team_server):
    uri, name = team_server, "orphaned"
    launcher = start_launcher(tmp_path, uri, name, "--worker-timeout", "10")
    client = mlflow.MlflowClient(uri)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            kids = search_runs(uri, name)[1]
            if len(kids) == 2 and all(client.get_metric_history(k.info.run_id, "loss")
                                      for k in kids):
                break
            assert launcher.poll() is None, launcher.communicate()[0][-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("the two workers never both trained")
        workers = subprocess.run(["pgrep", "-s", str(launcher.pid), "-f", "role worker"],
                                 capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        killed_at = time.monotonic()
        for pid in workers:
            os.kill(int(pid), signal.SIGKILL)
        out = launcher.communicate(timeout=120)[0]
        took = time.monotonic() - killed_at
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)  # the launcher's chief and workers too
    assert launcher.returncode == 1, out[-3000:]
    assert took < 10 + 30, took  # the worker timeout plus a margin
    assert "every worker has stopped (worker0 was killed by SIGKILL" in out
    left = subprocess.run(["pgrep", "-s", str(launcher.pid)], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    (parent,), kids = search_runs(uri, name)
    assert parent.info.status in ("KILLED", "FAILED")
    assert kids and all(k.info.status in ("KILLED", "FAILED") for k in kids)


def test_a_failed_heartbeat_does_not_stop_the_next_ones():
    from tuning.distributed import Heartbeat

    class FlakyChief:
        """The chief as a worker sees it: its second answer is lost."""

        def __init__(self):
            self.calls = 0

        def get_trial(self, trial_id):
            self.calls += 1
            if self.calls == 2:
                raise ConnectionError("a dropped connection")

    chief = FlakyChief()
    beat = Heartbeat(chief, "0", interval=0.05)
    deadline = time.monotonic() + 10
    while chief.calls < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    beat.stop()
    assert chief.calls >= 5
    assert beat.failed == 1 and beat.sent >= 4


def test_the_launchers_processes_end_when_it_is_killed_outright(tmp_path):
    """A chief or worker gets SIGTERM (and closes its runs) when the launcher
    dies, even by SIGKILL."""
    script = (
        "import subprocess, sys\n"
        "from tuning.distributed import _die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " preexec_fn=_die_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, cwd=os.getcwd())
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, os.WNOHANG)
        time.sleep(0.1)
    state = open(f"/proc/{child}/stat").read().split()[2] if os.path.exists(
        f"/proc/{child}") else "gone"
    assert state in ("gone", "Z"), state  # ended (a zombie until init reaps it)


@pytest.mark.parametrize("first_worker", ["falls silent", "finishes"])
def test_a_worker_told_to_stop_waits_while_another_holds_a_trial(tmp_path, first_worker):
    """Every trial handed out, the last worker standing asks for more: it
    waits while another worker holds a trial, and takes that trial if its
    worker falls silent (else the trial would never finish), or stops when
    it ends."""
    import threading

    import keras_tuner as kt

    from tuning.distributed import WorkerWatch

    hp = kt.HyperParameters()
    hp.Choice("units", [4, 8])
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "min"),
                                           max_trials=1, hyperparameters=hp, seed=0)
    oracle._set_project_dir(str(tmp_path), "search")
    watch = WorkerWatch(oracle, timeout=0.5)
    first = oracle.create_trial("first")
    assert first.status == "RUNNING"
    answer = []
    asking = threading.Thread(target=lambda: answer.append(oracle.create_trial("last")))
    asking.start()
    time.sleep(1.0)
    assert not answer, "the last worker was sent away while a trial was out"
    if first_worker == "falls silent":
        watch.expire()  # silent for over 0.5 s: its trial goes back to the queue
        asking.join(timeout=5)
        (trial,) = answer
        assert (trial.trial_id, trial.status) == (first.trial_id, "RUNNING")
        assert oracle.ongoing_trials["last"].trial_id == first.trial_id
    else:
        oracle.update_trial(first.trial_id, {"score": 1.0})
        first.status = "COMPLETED"
        oracle.end_trial(first)
        asking.join(timeout=5)
        (trial,) = answer
        assert trial.status == "STOPPED"
