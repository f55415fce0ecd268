"""Faults that must end cleanly: unhealthy servers, signals while a run
closes, secrets that must never reach MLflow, servers bound to loopback."""

import contextlib
import http.server
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile

import mlflow
import pytest

from experiments import cli
from tests.helpers import all_runs, client_for, listening_addresses, popen_from_a_terminal

pytestmark = pytest.mark.slow


# === Tracking servers that are there but not healthy ===

@contextlib.contextmanager
def silent_server():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        sock.close()


@contextlib.contextmanager
def unavailable_server():
    """Answers every request with 503 Service Unavailable."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(503)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def no_server():
    """A port where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is released
    yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("kind", ["refused", "silent", "503"])
def test_an_unhealthy_tracking_server_exits_2_fast_with_no_run(kind, tmp_path, capsys):
    serving = {"refused": no_server, "silent": silent_server,
               "503": unavailable_server}[kind]()
    with serving as uri:
        start = time.monotonic()
        code = cli.main(["train", "--model", "gru", "--data", "sine", "--epochs", "1",
                         "--units", "4", "--tracking-uri", uri])
        elapsed = time.monotonic() - start
    out = capsys.readouterr()
    assert code == 2
    assert f"MLflow tracking server {uri} is not" in out.err
    assert ("not healthy (its /health answered HTTP 503)" in out.err) == (kind == "503")
    assert elapsed < 12
    assert "Epoch" not in out.out


# === Signals ===

def start_training(tmp_path, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    return popen_from_a_terminal(
        [sys.executable, "-u", "-m", "experiments.cli", "train", "--model", "gru", "--data",
         "sine", "--units", "4", "--window", "12", "--horizon", "3", "--epochs", "100000",
         "--patience", "100000", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def train_until_logged(tmp_path):
    """Start a long `train` and return once MetricLogger has flushed once
    (training well under way, as the other signal tests wait for):
    ``(process, epochs printed so far (a list that keeps growing), flushed)``."""
    from experiments import tracking

    db = tmp_path / "mlflow.db"
    # The store exists before this test polls it: two processes creating a
    # fresh SQLite store at once race on its tables.
    tracking.init_store(f"sqlite:///{db}")
    proc = start_training(tmp_path)
    printed = []

    def count():  # also drains the pipe, so the process never blocks on it
        for line in proc.stdout:
            if " - loss:" in line:
                printed.append(line)

    threading.Thread(target=count, daemon=True).start()
    deadline = time.time() + 240
    while True:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("training never logged")
        runs = all_runs(db)
        if runs:
            flushed = len(client_for(db).get_metric_history(runs[0].info.run_id, "loss"))
            if flushed:
                return proc, printed, flushed
        time.sleep(0.2)


def test_a_killed_run_keeps_the_metrics_of_the_epochs_that_finished(tmp_path):
    db = tmp_path / "mlflow.db"
    proc, printed, flushed = train_until_logged(tmp_path)
    try:
        time.sleep(1.0)  # more epochs, all in the buffer (it flushes every 5 s)
        seen = len(printed)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143
    (run,) = all_runs(db)
    assert run.info.status == "KILLED"
    history = client_for(db).get_metric_history(run.info.run_id, "loss")
    assert seen > flushed + 1  # epochs were waiting in the buffer when the signal came
    # Every epoch reported before the signal is kept (less one: Keras prints an
    # epoch just before the logger's own end-of-epoch call, so a signal can fall
    # between the two).
    assert len(history) >= seen - 1


def test_a_second_ctrl_c_while_the_run_closes_still_closes_it(tmp_path):
    proc, _, _ = train_until_logged(tmp_path)
    try:
        # Ctrl-C held down: a burst of SIGINTs, many while the run is closing.
        for _ in range(60):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGINT)
            time.sleep(0.01)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    (run,) = all_runs(tmp_path / "mlflow.db")
    assert run.info.status == "KILLED"



@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_lost_in_a_finalizer_still_stops_training(tmp_path):
    """Python runs a signal handler wherever the main thread is, and the
    KeyboardInterrupt it raises inside a ``__del__`` is printed and dropped.
    The run must still stop at the end of that epoch, and end KILLED."""
    import keras
    import numpy as np

    from experiments import tracking
    from experiments.training.curves import MetricLogger

    class Finalized:
        def __del__(self):  # Ctrl-C arrives while the garbage collector runs this
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    class CollectGarbage(keras.callbacks.Callback):
        begun = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.begun += 1

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                Finalized()  # dropped at once: its __del__ runs here

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 1), "float32")
    # Its own store and experiment: an earlier test's active experiment
    # (fluent MLflow state is per process) does not exist in this store.
    tracking.use_experiment("ctrl-c", tracking.init_store(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    # Ctrl-C as from a terminal: a suite started as a background job (nohup,
    # `&` without job control) inherits SIGINT ignored, which the product
    # rightly leaves ignored (see popen_from_a_terminal).
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with tracking.tracked_run() as run:
                garbage = CollectGarbage()
                model.fit(x, y, epochs=50, verbose=0, callbacks=[
                    garbage, MetricLogger(run.info.run_id, flush_seconds=0)])
        assert garbage.begun == 3  # stopped at the end of epoch 3, not 50
        (ended,) = all_runs(tmp_path / "mlflow.db")
        assert ended.info.status == "KILLED"
        assert tracking._PENDING == []
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, started_with)

# === Secrets ===

SECRET_PW = "p@ss-S3CRET-pw"
SECRET_TOKEN = "tok-S3CRET-env"


@pytest.fixture
def leaky_family(monkeypatch):
    """A test family whose 'leak' mode fails with the token in its message."""
    import keras

    import zoo
    from tuning import hypermodel
    from zoo.space import Choice

    def build(input_shape, outputs, *, head="forecast", mode="ok", units=4,
              name="leaky"):
        """Test family: fits, or fails naming a secret."""
        if mode == "leak":
            raise ValueError(f"cannot reach https://{SECRET_TOKEN}@data.example/x "
                             f"(token {SECRET_TOKEN})")
        inputs = keras.Input(input_shape)
        x = keras.layers.GRU(units)(inputs)
        return keras.Model(inputs, keras.layers.Dense(outputs)(x), name=name)

    monkeypatch.setattr(hypermodel, "LEARNING_RATE", Choice((1e-3,), default=1e-3))
    monkeypatch.setattr(hypermodel, "BATCH_SIZE", Choice((16,), default=16))
    # One value each, so that a grid search's few trials vary the test's own setting.
    monkeypatch.setattr(hypermodel, "LR_SCHEDULE", Choice(("constant",), default="constant"))
    monkeypatch.setattr(hypermodel, "WEIGHT_DECAY", Choice((0.0,), default=0.0))
    with zoo.registered("leaky_test", build,
                        space={"mode": Choice(("ok", "leak"), default="ok")}):
        yield


def texts_of_artifacts(client, run_id, path=""):
    """Every artifact's bytes, and the members of zip files (a .keras model)."""
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            yield from texts_of_artifacts(client, run_id, item.path)
            continue
        local = client.download_artifacts(run_id, item.path)
        with open(local, "rb") as f:
            body = f.read()
        yield item.path, body
        if zipfile.is_zipfile(io.BytesIO(body)):
            with zipfile.ZipFile(io.BytesIO(body)) as z:
                for member in z.namelist():
                    yield f"{item.path}:{member}", z.read(member)


def test_tune_logs_no_secret_anywhere(leaky_family, tmp_path, team_server, monkeypatch,
                                      capsys):
    host = team_server.removeprefix("http://")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{SECRET_PW}@{host}")
    monkeypatch.setenv("LSTM_ZOO_TEST_TOKEN", SECRET_TOKEN)
    csv = tmp_path / f"sales-{SECRET_TOKEN}.csv"
    csv.write_text("step,value\n" + "".join(f"{i},{(i * 7) % 11 + i / 10}\n"
                                             for i in range(120)))
    code = cli.main(["tune", "--csv", str(csv), "--target", "value", "--models", "leaky_test",
                     "--tuner", "grid", "--max-trials", "2", "--epochs", "1", "--patience",
                     "1", "--window", "8", "--horizon", "2", "--season", "4", "--transform", "none",
                     "--directory", str(tmp_path / "tuner")])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    client = mlflow.MlflowClient(team_server)
    exps = [e for e in client.search_experiments() if "sales" in e.name]
    assert exps, [e.name for e in client.search_experiments()]
    runs = client.search_runs([e.experiment_id for e in exps])
    assert {r.data.tags.get("run_kind") for r in runs} == {"search", "trial"}
    statuses = sorted(r.info.status for r in runs if r.data.tags["run_kind"] == "trial")
    assert statuses == ["FAILED", "FINISHED"]  # the 'leak' trial failed with the token
    seen = []
    for exp in exps:
        seen.append(("experiment", exp.name))
    for run in runs:
        seen += [("run name", run.info.run_name)]
        seen += [(f"param {k}", f"{k}={v}") for k, v in run.data.params.items()]
        seen += [(f"tag {k}", f"{k}={v}") for k, v in run.data.tags.items()]
        for ds in run.inputs.dataset_inputs:
            d = ds.dataset
            seen += [("dataset", f"{d.name} {d.source} {d.source_type} {d.schema}")]
        for path, body in texts_of_artifacts(client, run.info.run_id):
            seen.append((f"artifact {path}", body.decode("utf-8", "replace")))
    for model in client.search_registered_models():
        seen.append(("registered model", f"{model.name} {model.tags}"))
        for version in client.search_model_versions(f"name = '{model.name}'"):
            seen.append(("model version", f"{version.tags} {version.source}"))
    leaks = [(where, text[:200]) for where, text in seen if "S3CRET" in text]
    assert not leaks
    assert any("***" in text for where, text in seen if where == "tag error")


# === Servers bound to this machine only ===

def test_tracking_server_listens_on_loopback_with_a_password_and_a_log(team_server_parts):
    import psycopg2

    uri, folder, proc = team_server_parts
    port = int(uri.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"127.0.0.1"}
    pg = os.path.join(folder, "postgres")
    with open(os.path.join(pg, "data", "postmaster.pid")) as f:
        pg_port = int(f.read().splitlines()[3])
    assert listening_addresses(pg_port) == {"127.0.0.1"}
    # The database refuses a local user without the password...
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=pg_port, user="lstm_zoo", dbname="mlflow",
                         passfile=os.devnull, connect_timeout=5)
    with open(os.path.join(pg, "pgpass")) as f:
        password = f.read().strip().rsplit(":", 1)[1]
    assert oct(os.stat(os.path.join(pg, "pgpass")).st_mode & 0o777) == "0o600"
    psycopg2.connect(host="127.0.0.1", port=pg_port, user="lstm_zoo", dbname="mlflow",
                     password=password, connect_timeout=5).close()
    # ...and the password is on no command line and in no log.
    with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
        assert password.encode() not in f.read()
    log = os.path.join(folder, "mlflow-server.log")
    # The server writes to a file, not to a pipe that nobody reads.
    assert os.readlink(f"/proc/{proc.pid}/fd/1") == log
    assert os.readlink(f"/proc/{proc.pid}/fd/2") == log
    with open(log) as f:
        assert password not in f.read()
    with open(os.path.join(pg, "postgres.log")) as f:
        assert password not in f.read()


@pytest.mark.parametrize("host, locked", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_tracking_server_beyond_loopback_requires_sign_in(tmp_path, monkeypatch, capsys,
                                                          host, locked):
    """Beyond loopback the server starts with MLflow's authentication
    (tests/e2e/test_authenticated_server.py runs one); on it, without."""
    from experiments.tracking import TrackingError, server

    seen = {}

    def start_mlflow(*args, **kwargs):
        seen.update(kwargs)
        raise TrackingError("stopped here by the test")

    monkeypatch.setattr(server, "start_postgres", lambda folder: ("postgresql://db", 5432))
    monkeypatch.setattr(server, "start_mlflow", start_mlflow)
    code = cli.main(["tracking-server", "--host", host, "--dir", str(tmp_path)])
    assert code == 2 and "stopped here by the test" in capsys.readouterr().err
    assert seen["auth"] == (str(tmp_path) if locked else None)
