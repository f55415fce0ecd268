"""MLflow plumbing: where runs go, and runs whose status tells the truth.

One job per module, every name re-exported here (``tracking.tracked_run``):

- ``store``: the store (``sqlite:///<cwd>/mlflow.db`` unless
  ``MLFLOW_TRACKING_URI`` or ``--tracking-uri`` say otherwise; a ``mlflow
  server`` URL works the same), its tables created once under a file lock
  (MLflow's table creation races when several processes open a fresh file),
  experiments tagged for model training, the UI's address, and
  ``check_writable``, which refuses a read-only or full folder before a run
  starts rather than after an hour of training;
- ``signals``: Ctrl-C and SIGTERM as exceptions, never lost in a finalizer;
- ``runs``: ``tracked_run`` always ends the run it opens (FINISHED, FAILED
  with the error as a tag, KILLED on a signal), and closes the orphans of a
  killed process;
- ``environment``: the tags that say where and with what a run was made;
- ``artifacts``: figures, datasets and models as MLflow takes them;
- ``redaction``: secrets kept out of all of it.

Per-epoch metrics go through ``experiments.training.curves.MetricLogger``, in batches.
"""

from experiments.tracking.artifacts import (
    dataset_of,
    log_figure,
    log_model,
    model_requirements,
    numpy_dataset,
)
from experiments.tracking.environment import device_name, git_commit, run_environment
from experiments.tracking.redaction import redact
from experiments.tracking.runs import flush_on_close, pid_alive, reap_orphans, tracked_run
from experiments.tracking.signals import (
    _PENDING,
    Terminated,
    raise_if_signalled,
    signals_held,
    terminate_as_exception,
)
from experiments.tracking.store import (
    DEFAULT_DB,
    EXPERIMENT_KIND,
    TRAINING_KIND,
    UI_TRAINING_VIEW,
    TrackingError,
    artifact_root,
    check_reachable,
    check_writable,
    init_store,
    latest_experiment,
    resolve_uri,
    ui_url,
    use_experiment,
)

__all__ = [
    "DEFAULT_DB", "EXPERIMENT_KIND", "TRAINING_KIND", "UI_TRAINING_VIEW", "_PENDING",
    "Terminated", "TrackingError", "artifact_root", "check_reachable", "check_writable",
    "dataset_of", "device_name", "flush_on_close", "git_commit", "init_store",
    "latest_experiment", "log_figure", "log_model", "model_requirements", "numpy_dataset",
    "pid_alive", "raise_if_signalled", "reap_orphans", "redact", "resolve_uri",
    "run_environment", "signals_held", "terminate_as_exception", "tracked_run", "ui_url",
    "use_experiment",
]
