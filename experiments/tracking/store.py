"""Where runs go: the store's URI, its tables, its experiments, the UI's address."""

from __future__ import annotations

import fcntl
import os
import tempfile
import urllib.parse

from experiments.tracking.redaction import redact

DEFAULT_DB = "mlflow.db"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI."""

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
