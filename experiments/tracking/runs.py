"""Runs whose status tells the truth, and the orphans a killed process left."""

from __future__ import annotations

import contextlib
import os
import socket
import weakref

from experiments.tracking.redaction import redact
from experiments.tracking.signals import (
    _PENDING,
    Terminated,
    signals_held,
    terminate_as_exception,
)


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


# Metric buffers alive now (``experiments.training.curves.MetricLogger``): a run closed
# by an exception first flushes what they hold for it.
_OPEN_BUFFERS = weakref.WeakSet()


def flush_on_close(buffer) -> None:
    """Have ``buffer`` (an object with ``run_id`` and ``flush()``) flushed
    when its run is closed by an error or a signal, so a KILLED run keeps
    the epochs that finished."""
    _OPEN_BUFFERS.add(buffer)
