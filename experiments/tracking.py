"""MLflow plumbing: where runs go, and runs whose status tells the truth.

- The default store is ``sqlite:///<cwd>/mlflow.db``; ``MLFLOW_TRACKING_URI``
  or ``--tracking-uri`` override it (a ``mlflow server`` URL works the same).
- ``init_store`` creates a SQLite store's tables once, under a file lock:
  MLflow's table creation races when several processes open a fresh file.
- ``tracked_run`` always ends the run it opens: FINISHED on success, FAILED
  on an exception (with the error as a tag), KILLED on Ctrl-C or SIGTERM.
- ``MetricLogger`` sends per-epoch metrics in batches, not one call each.
- ``check_writable`` refuses a read-only or full folder before a run starts,
  rather than after an hour of training when the model cannot be saved.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import tempfile
import urllib.parse
import weakref

DEFAULT_DB = "mlflow.db"


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM.

    A ``BaseException`` like ``KeyboardInterrupt``, so ordinary
    ``except Exception`` blocks (Keras', keras-tuner's) do not swallow it.
    """


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI."""


_SECRET_NAMES = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL")


def redact(value):
    """``value`` with secrets replaced by ``***`` before it reaches MLflow.

    Secrets are the values of environment variables whose names contain
    TOKEN, PASSWORD, SECRET, KEY or CREDENTIAL, and the user:password part of
    URLs. Dicts, lists and tuples are redacted item by item; other types are
    returned unchanged unless their text holds a secret.
    """
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if not isinstance(value, str):
        text = str(value)
        cleaned = redact(text)
        return value if cleaned == text else cleaned
    import re

    for name, secret in os.environ.items():
        if len(secret) >= 4 and any(word in name.upper() for word in _SECRET_NAMES):
            value = value.replace(secret, "***")
    # scheme://user:password@host and scheme://token@host -> scheme://***@host;
    # up to the last "@" before the path, as a password may hold an "@".
    return re.sub(r"(\w[\w+.-]*://)[^/\s?#]*@", r"\1***@", value)


def resolve_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else a SQLite file
    ``mlflow.db`` in the working directory."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = f"sqlite:///{os.path.abspath(DEFAULT_DB)}"
    return uri


def artifact_root(uri: str) -> str | None:
    """For a local SQLite store, keep artifacts in ``mlruns/`` beside the
    database file so ``lstm-zoo ui`` finds them wherever it is started."""
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):]
        return "file://" + os.path.join(os.path.dirname(os.path.abspath(db)),
                                        "mlruns")
    return None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast when an HTTP tracking server is not healthy: MLflow's own
    client would retry for minutes before giving up.

    "Healthy" means its ``/health`` endpoint answers 200 within ``timeout``
    seconds: a port that accepts connections and never answers, or a server
    that answers 503, is not a tracking server that can take a run.
    """
    import base64
    import urllib.error
    import urllib.request

    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    shown = redact(uri)
    # user:password@ in the URI: sent as basic authentication, as MLflow does.
    netloc = parsed.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parsed.port:
        netloc += f":{parsed.port}"
    health = urllib.parse.urlunparse(
        (parsed.scheme, netloc, parsed.path.rstrip("/") + "/health", "", "", ""))
    request = urllib.request.Request(health)
    if parsed.username is not None:
        pair = f"{urllib.parse.unquote(parsed.username)}:" \
               f"{urllib.parse.unquote(parsed.password or '')}"
        request.add_header("Authorization",
                           "Basic " + base64.b64encode(pair.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status = reply.status
    except urllib.error.HTTPError as err:
        status = err.code
    except (OSError, ValueError) as err:  # refused, timed out, no such host
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"MLflow tracking server {shown} is not reachable ({redact(str(reason))}); "
            f"start it, or unset MLFLOW_TRACKING_URI to use the local store") from None
    if status != 200:
        raise TrackingError(
            f"MLflow tracking server {shown} is not healthy (its /health answered "
            f"HTTP {status}); check the server, or unset MLFLOW_TRACKING_URI to use the "
            f"local store")


def check_writable(folder: str, what: str) -> None:
    """Create ``folder`` if needed and write a probe file in it.

    Raises:
        TrackingError: naming ``what`` the folder is for, the folder and the
            system's reason (read-only file system, permission denied, no
            space left on the device, ...).
    """
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lstm-zoo-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise TrackingError(f"cannot write to the {what} {folder} ({err.strerror or err}); "
                            f"free space or fix its permissions, or choose another "
                            f"place") from None


def init_store(uri: str) -> str:
    """Point MLflow at ``uri`` and make sure its store exists.

    Safe to call from many processes at once: a SQLite store is created by
    the first caller while the others wait on a lock file beside it.
    """
    import mlflow

    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):]
        check_writable(os.path.dirname(os.path.abspath(db)), "folder of the MLflow store")
        with open(db + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                # The first query creates and migrates the tables.
                mlflow.MlflowClient(uri).search_experiments(max_results=1)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return uri


# The tag MLflow's UI (3.x) reads to choose an experiment's first page. Without
# it, MLflow 3.17 opens on its GenAI "Overview" (traces, tokens); with
# "custom_model_development" it opens on the runs table, where the trials,
# their nesting and the registered model are.
EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


# MLflow 3.17's UI chooses the GenAI or the model-training side from this URL
# parameter (else the browser's last choice, GenAI at first), whatever the
# experiment's kind; links inside the UI keep it.
UI_TRAINING_VIEW = "workflowType=machine_learning"


def ui_url(base: str, experiment_id: str | None = None) -> str:
    """The UI's address that opens on the runs table of ``experiment_id``
    (or on the experiments list), on its model-training side."""
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"{base.rstrip('/')}/#/{page}?{UI_TRAINING_VIEW}"


def latest_experiment(uri: str) -> str | None:
    """The id of the experiment with the latest change in the store at
    ``uri``, other than MLflow's empty "Default"; ``None`` if there is none
    or the store cannot be read (the UI then opens on the list)."""
    import mlflow

    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        return None  # do not create a store just to look into it
    try:
        found = mlflow.MlflowClient(uri).search_experiments(
            order_by=["last_update_time DESC"], max_results=10)
    except Exception:  # an unreachable server: the UI will say so itself
        return None
    ours = [e for e in found if e.tags.get(EXPERIMENT_KIND) == TRAINING_KIND]
    return ours[0].experiment_id if ours else None


def use_experiment(name: str, uri: str) -> str:
    """Create (once) and activate the experiment ``name``; its id."""
    import mlflow

    name = redact(name)  # a default name comes from the data's file name
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        root = artifact_root(uri)
        try:
            exp_id = client.create_experiment(
                name, artifact_location=f"{root}/{name}" if root else None,
                tags={EXPERIMENT_KIND: TRAINING_KIND})
        except mlflow.exceptions.MlflowException:
            # Another process created it between our lookup and create; if
            # not, the store itself failed (read-only, full): say that.
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            exp_id = found.experiment_id
    else:
        exp_id = found.experiment_id
        if EXPERIMENT_KIND not in found.tags:  # made by an older lstm-zoo, or by hand
            client.set_experiment_tag(exp_id, EXPERIMENT_KIND, TRAINING_KIND)
    location = client.get_experiment(exp_id).artifact_location
    if location.startswith("file:"):  # a local folder: check it before any run
        check_writable(urllib.parse.urlparse(location).path, "MLflow artifact directory")
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


# Signals whose exception may not have reached the code that acts on it:
# Python runs a handler at whatever bytecode the main thread is on, and an
# exception raised inside a finalizer (``__del__``, a weakref callback: the
# garbage collector runs them at arbitrary points) is printed as "Exception
# ignored" and dropped. Training then goes on as if Ctrl-C was never pressed.
# ``raise_if_signalled``, called at every epoch's end, raises it again.
_PENDING: list[int] = []


def _raise_terminated(signum, frame):
    _PENDING.append(signum)
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def _interrupt(signum, frame):
    _PENDING.append(signum)
    raise KeyboardInterrupt


def _raise_for(signum):
    """The exception ``signum`` raises while a run is open."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def raise_if_signalled():
    """Raise again a Ctrl-C or SIGTERM whose exception was swallowed."""
    if _PENDING:
        signum = _PENDING[0]
        _PENDING.clear()
        _raise_for(signum)


@contextlib.contextmanager
def terminate_as_exception():
    """While active, SIGTERM raises ``Terminated`` and Ctrl-C
    ``KeyboardInterrupt`` in the main thread, and both are remembered until
    the run is closed (see ``raise_if_signalled``). A SIGINT the process was
    started ignoring (a background job's) stays ignored."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _PENDING.clear()


@contextlib.contextmanager
def signals_held():
    """While a run is being closed, a second Ctrl-C or SIGTERM waits: it is
    noted, and raised once the run's status is written. Without this a
    second Ctrl-C lands in the middle of the close and leaves the run RUNNING."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def note(signum, frame):
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:  # already on the way out: pass the signal on as it would have been
        _raise_for(received[0])


@contextlib.contextmanager
def tracked_run(**start_run_kwargs):
    """``mlflow.start_run`` whose status is always true when it ends.

    FINISHED on success; FAILED (tags ``error`` and ``error_type``) on an
    exception; KILLED on Ctrl-C or SIGTERM. The process id and host are
    tagged so that runs orphaned by a SIGKILL can be found and closed.
    """
    import mlflow

    tags = redact(dict(start_run_kwargs.pop("tags", None) or {}))
    if start_run_kwargs.get("run_name"):
        start_run_kwargs["run_name"] = redact(start_run_kwargs["run_name"])
    tags.update({"lstm_zoo.pid": str(os.getpid()),
                 "lstm_zoo.host": socket.gethostname()})
    with terminate_as_exception():
        run = mlflow.start_run(tags=tags, **start_run_kwargs)
        try:
            yield run
        except (KeyboardInterrupt, Terminated) as err:
            _PENDING.clear()  # acted on
            _end(run, "KILLED", err)
            raise
        except BaseException as err:
            _end(run, "FAILED", err)
            raise
        else:
            with signals_held():
                mlflow.end_run("FINISHED")


def _end(run, status, err):
    """Close ``run`` with ``status``: first the metrics its loggers still
    hold (a KILLED run keeps the epochs that finished), then the error."""
    import mlflow

    with signals_held():
        try:
            for logger in list(_OPEN_BUFFERS):
                if logger.run_id == run.info.run_id:
                    with contextlib.suppress(Exception):  # the status matters more
                        logger.flush()
            mlflow.MlflowClient().set_tag(run.info.run_id, "error",
                                          redact(f"{type(err).__name__}: {err}")[:5000])
        finally:
            mlflow.end_run(status)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def reap_orphans(uri: str, filter_string: str = "") -> list[str]:
    """Close as KILLED the RUNNING runs whose recorded process is dead.

    Only runs made by lstm-zoo on this host are considered (they carry the
    ``lstm_zoo.pid`` and ``lstm_zoo.host`` tags); a run whose process is
    alive, or that was made elsewhere, is never touched. Returns the ids of
    the runs closed.
    """
    import mlflow

    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    query = "attributes.status = 'RUNNING'" + (f" and {filter_string}" if filter_string else "")
    closed = []
    for run in client.search_runs(ids, query, max_results=5000):
        tags = run.data.tags
        if tags.get("lstm_zoo.host") != socket.gethostname():
            continue
        pid = int(tags.get("lstm_zoo.pid", "0") or 0)
        if pid == os.getpid() or pid_alive(pid):
            continue
        client.set_tag(run.info.run_id, "error",
                       f"process {pid} ended without closing the run (killed)")
        client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed


# Metric buffers alive now (``experiments.curves.MetricLogger``): a run closed
# by an exception first flushes what they hold for it.
_OPEN_BUFFERS = weakref.WeakSet()


def flush_on_close(buffer) -> None:
    """Have ``buffer`` (an object with ``run_id`` and ``flush()``) flushed
    when its run is closed by an error or a signal, so a KILLED run keeps
    the epochs that finished."""
    _OPEN_BUFFERS.add(buffer)


def run_environment() -> dict[str, str]:
    """Tags that say where and with what a run was made."""
    from importlib.metadata import PackageNotFoundError, version

    import keras

    try:
        package = version("lstm-zoo")
    except PackageNotFoundError:
        package = "unknown"
    return {
        "keras_backend": keras.config.backend(),
        "keras_version": keras.__version__,
        "device": device_name(),
        "git_commit": git_commit(),
        "lstm_zoo_version": package,
        "python": sys.version.split()[0],
    }


def device_name() -> str:
    """``"gpu"`` when the Keras backend sees a GPU, else ``"cpu"``."""
    import keras

    backend = keras.config.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
        if backend == "torch":
            import torch

            return "gpu" if torch.cuda.is_available() else "cpu"
        if backend == "jax":
            import jax

            return "gpu" if jax.default_backend() == "gpu" else "cpu"
    except Exception:  # a broken GPU stack should not stop a CPU run
        pass
    return "cpu"


def git_commit() -> str:
    """The commit of the source tree this package runs from, if any.

    Read from ``.git`` directly rather than by running ``git``: a search's
    processes hold gRPC channels, and a fork after gRPC has started can
    abort the process (gRPC's fork handlers).
    """
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = os.path.join(folder, ".git")
    try:
        if os.path.isfile(git):  # a worktree: "gitdir: <path>"
            with open(git) as f:
                git = os.path.join(folder, f.read().split(":", 1)[1].strip())
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head  # a detached HEAD is the commit itself
        ref = head.split(":", 1)[1].strip()
        common = git
        if os.path.isfile(os.path.join(git, "commondir")):
            with open(os.path.join(git, "commondir")) as f:
                common = os.path.join(git, f.read().strip())
        for base in (git, common):
            path = os.path.join(base, ref)
            if os.path.isfile(path):
                with open(path) as f:
                    return f.read().strip()
        with open(os.path.join(common, "packed-refs")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except (OSError, IndexError):
        pass
    return "unknown"


# === MLflow adapters: figures, datasets and models ===

def log_figure(figure, path: str) -> None:
    """Log a matplotlib ``figure`` to the active run, then close it (an open
    figure keeps its memory for the life of the process)."""
    import matplotlib.pyplot as plt
    import mlflow

    try:
        mlflow.log_figure(figure, path)
    finally:
        plt.close(figure)


def dataset_of(series):
    """A series as an ``mlflow.data`` dataset, so its digest is recorded."""
    import os
    import warnings

    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    source = series.source
    if not os.path.exists(source) or redact(source) != source:
        # Bundled or generated data, or a path that holds a secret: record
        # how it was made (redacted) rather than the path itself.
        source = CodeDatasetSource(tags={"source": redact(series.source)})
    with warnings.catch_warnings():
        # "can be interpreted in multiple ways": both readings are a local file.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        return mlflow.data.from_pandas(series.frame.reset_index(), source=source,
                                       name=redact(series.name),
                                       targets=series.targets[0])


def numpy_dataset(name, source, x, y):
    """Arrays as an ``mlflow.data`` dataset (digest recorded)."""
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    return mlflow.data.from_numpy(
        x, targets=y, name=redact(name), source=CodeDatasetSource(tags={"source": redact(source)}))


def model_requirements() -> list[str]:
    """What serving the logged model needs, stated rather than inferred:
    MLflow's inference imports the model in a subprocess (seconds per run)."""
    from importlib.metadata import PackageNotFoundError, version

    import keras

    needs = [f"keras=={keras.__version__}"]
    backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[
        keras.config.backend()]
    try:
        needs.append(f"{backend}=={version(backend)}")
    except PackageNotFoundError:
        needs.append(backend)
    return needs


def log_model(model, task):
    """The model through MLflow's Keras flavor, with signature and input
    example, as a logged model of the active run (``model_id`` set, so the
    run's "Logged models" and the experiment's Models tab show it).

    It takes the task's model-ready inputs (frames keep array input).
    Returns MLflow's ``ModelInfo``.
    """
    from mlflow.models import infer_signature

    from experiments.mlflow_compat import log_keras_model

    example = task.test.x[:2]
    signature = infer_signature(example, model.predict(example, verbose=0))
    return log_keras_model(model, signature, example, model_requirements())
