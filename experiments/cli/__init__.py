"""The ``lstm-zoo`` command line.

Thin by design: each subcommand turns its flags into a config and calls one
plain function from ``zoo``, ``experiments`` or ``tuning``. Heavy imports
(TensorFlow, Keras, MLflow) happen inside the handlers, so
``lstm-zoo --help`` stays instant. One module per command group
(``catalogue``, ``training``, ``serving``, ``store``; ``tune`` is
``tuning.commands``), with the flags (``flags``), what commands print
(``output``) and the parser (``parser``) apart; ``main`` here.

Exit codes: 0 success, 1 a run failed, 2 bad input or settings (nothing was
trained and no MLflow run was created), 130/143 interrupted.
"""

from __future__ import annotations

import os
import sys

from experiments.cli.flags import add_run_flags, hyperparameter_flags, run_config
from experiments.cli.output import metrics_table, skill_lines, table
from experiments.cli.parser import build_parser, command_groups

__all__ = ["add_run_flags", "build_parser", "command_groups", "hyperparameter_flags", "main",
           "metrics_table", "run_config", "skill_lines", "table"]


def _store_error(err) -> str | None:
    """One line naming the MLflow store and its error, if ``err`` is one
    (a read-only SQLite file, a full disk, a database that went away)."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return None
    import sqlalchemy.exc

    if not isinstance(err, (mlflow.exceptions.MlflowException, sqlalchemy.exc.SQLAlchemyError)):
        return None
    from experiments.tracking import redact

    text = " ".join(str(getattr(err, "message", err)).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return (f"the MLflow store {redact(mlflow.get_tracking_uri())} failed: "
            f"{redact(text)}")


def main(argv=None) -> int:
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow logs a store error with its whole traceback before raising it;
    # the one line main() prints names the store and the cause instead.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(with_hyperparameters=bool(argv) and argv[0] in ("train", "compare")
                        ).parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the run is marked KILLED", file=sys.stderr)
        return 130
    except BaseException as err:
        from experiments.data import DataError
        from experiments.errors import TrainingError
        from experiments.tracking import Terminated, TrackingError

        if isinstance(err, TrainingError):
            # The run or search is recorded FAILED with this cause.
            print(f"error: {err}", file=sys.stderr)
            return 1
        if isinstance(err, Terminated):
            print(f"\n{err}; the run is marked KILLED", file=sys.stderr)
            return 143
        if isinstance(err, (DataError, ValueError, TrackingError)):
            print(f"error: {err}", file=sys.stderr)
            return 2
        if isinstance(err, OSError):
            # A disk that filled up or a folder that went away mid-run: the
            # run is already recorded FAILED with this error.
            print(f"error: {err}", file=sys.stderr)
            return 1
        store = _store_error(err)
        if store:
            print(f"error: {store}", file=sys.stderr)
            return 1
        raise
