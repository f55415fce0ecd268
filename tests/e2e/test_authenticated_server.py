"""`tracking-server --auth` (on beyond loopback): MLflow's own
authentication in front of the team's store. On 127.0.0.1 here: a request
without credentials is refused (401), a worker with them logs its run, and
the admin's password is nowhere in MLflow or the logs."""

import os
import pathlib
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    """`mlflow server --app-name basic-auth` as `tracking-server --auth` starts
    it (on a SQLite store here: the PostgreSQL side is the team server's,
    tested in test_distributed.py and test_faults.py)."""
    from experiments.tracking import auth, server

    here = tmp_path_factory.mktemp("locked")
    port = server.free_port()
    proc = server.start_mlflow(f"sqlite:///{here / 'mlflow.db'}", str(here / "artifacts"),
                               port=port, auth=str(here))
    try:
        yield f"http://127.0.0.1:{port}", here, auth.admin_credentials(str(here)), proc
    finally:
        proc.terminate()
        proc.wait()


def status_of(url, user=None, password=None) -> int:
    import base64

    request = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1")
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def test_only_known_users_get_in_and_the_secret_stays_in_its_file(locked_server, tmp_path):
    import mlflow

    url, folder, credentials, proc = locked_server
    user = credentials["MLFLOW_TRACKING_USERNAME"]
    password = credentials["MLFLOW_TRACKING_PASSWORD"]
    config = pathlib.Path(folder) / "auth.ini"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert status_of(url) == 401
    assert status_of(url, user, "not-the-password") == 401
    assert status_of(url, user, password) == 200
    # A worker authenticates through MLflow's own environment variables.
    env = dict(os.environ, MLFLOW_TRACKING_URI=url, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(REPO), **credentials)
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "train", "--model", "gru",
                           "--data", "sine", "--epochs", "1", "--units", "4",
                           "--experiment", "locked", "--combine", "none"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    os.environ.update(credentials)
    try:
        client = mlflow.MlflowClient(url)
        (run,) = client.search_runs([client.get_experiment_by_name("locked").experiment_id])
        assert run.info.status == "FINISHED"
        recorded = [*run.data.params.values(), *run.data.tags.values(),
                    done.stdout, done.stderr, pathlib.Path(proc.log).read_text(errors="replace")]
        artifacts = pathlib.Path(mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, dst_path=str(tmp_path / "artifacts"), tracking_uri=url))
        recorded += [p.read_bytes().decode(errors="replace")
                     for p in artifacts.rglob("*") if p.is_file()]
    finally:
        for key in credentials:
            os.environ.pop(key, None)
    assert not [text for text in recorded if password in text]
