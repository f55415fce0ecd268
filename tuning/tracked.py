"""MLflow tracking for keras-tuner: a parent run per search, a child per
trial whose status matches the trial's, closed even when interrupted."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import socket
import time
import warnings

import keras

from experiments import model_names, tracking
from experiments.tracking import reap_orphans, redact, signals_held
from experiments.training.curves import MetricLogger
from experiments.training.memory import released_traces
from tuning.distributed import Heartbeat
from tuning.folder import safe_name
from tuning.hypermodel import split_name
from zoo.compat import (
    build_and_fit,
    checkpoint_path,
    copied_callbacks,
    guard_each_trial,
    trial_reporter,
)

CHILD_STATUS = {"COMPLETED": "FINISHED"}  # anything else ends FAILED


def tracked_tuner_class(base):
    """``base`` (RandomSearch, Hyperband, ...) with MLflow child runs.

    The trial's training replaces keras-tuner's ``Tuner.run_trial`` one level
    below ``base`` in the method order, so a tuner's own ``run_trial`` still
    runs first: Hyperband's turns ``tuner/epochs`` and ``tuner/initial_epoch``
    into ``fit`` arguments there, and its ``_build_hypermodel`` starts a
    promoted trial from the earlier trial's best weights.
    """
    import keras_tuner as kt

    class TrackedTrials(kt.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            """keras-tuner's ``Tuner.run_trial`` with the trial's MLflow
            callbacks, and its best epoch's weights kept in memory and
            written once when the trial ends (``BestEpochWeights``) instead
            of at every improving epoch."""
            callbacks = [*kwargs.pop("callbacks", []), keras.callbacks.TerminateOnNaN(),
                         *self._callbacks_for(trial)]
            best = BestEpochWeights(self.oracle.objective, checkpoint_path(self, trial))
            histories = []
            with warnings.catch_warnings():
                # A promoted Hyperband trial loads its earlier round's weights;
                # the optimizer's saved state is not needed to go on training.
                warnings.filterwarnings("ignore", message="Skipping variable loading")
                for _ in range(self.executions_per_trial):
                    each = [*copied_callbacks(self, callbacks),
                            trial_reporter(self, trial), best]
                    histories.append(build_and_fit(self, trial, *args, **kwargs,
                                                   callbacks=each))
            best.write()
            return histories

    class Tracked(guard_each_trial(base, _trial_guard), TrackedTrials):
        def __init__(self, *args, callbacks_for, **kwargs):
            self._callbacks_for = callbacks_for
            super().__init__(*args, **kwargs)

        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            self.tracker.begin_trial(trial)
            if self.tracker.heartbeat:  # a worker: tell the chief we are alive
                self._heartbeat = Heartbeat(self.oracle, trial.trial_id,
                                            self.tracker.heartbeat)

        def on_trial_end(self, trial):
            beat = getattr(self, "_heartbeat", None)
            if beat:
                beat.stop()
            super().on_trial_end(trial)  # the oracle settles the status here
            # get_trial: on a worker the oracle is the chief's, over gRPC.
            self.tracker.end_trial(self.oracle.get_trial(trial.trial_id),
                                   self.oracle)
            # No cleanup here: keras-tuner's _try_build already runs
            # clear_session() and gc.collect() before every build.

    Tracked.__name__ = Tracked.__qualname__ = f"Tracked{base.__name__}"
    return Tracked


@contextlib.contextmanager
def _trial_guard(tuner, trial):
    """Around each whole trial: TensorFlow's traces of its models are
    released afterwards (they would be kept for the whole search), and a
    trial cut short by Ctrl-C, SIGTERM or a fatal error closes its child run."""
    try:
        with released_traces():
            yield
    except BaseException as err:
        tuner.tracker.abort_open_trial(err)
        raise


def hyperband_schedule(hp_values: dict) -> dict:
    """Where a Hyperband trial sits, as params of its run: its bracket and
    round, the epochs it trains (from ``initial_epoch`` up to
    ``tuner_epochs``) and, for a promoted trial, the trial whose weights it
    goes on from. Empty for other tuners."""
    if "tuner/epochs" not in hp_values:
        return {}
    out = {"hyperband_bracket": hp_values["tuner/bracket"],
           "hyperband_round": hp_values["tuner/round"],
           "initial_epoch": hp_values["tuner/initial_epoch"],
           "tuner_epochs": hp_values["tuner/epochs"]}
    if "tuner/trial_id" in hp_values:
        out["continues_trial"] = hp_values["tuner/trial_id"]
    return out


def trial_params(hp_values: dict) -> dict:
    """A trial's hyperparameters under the names a ``train`` run uses."""
    return {split_name(k): v for k, v in hp_values.items()
            if not k.startswith("tuner/")}


class SearchTracker:
    """Owns the parent run of one search and the child run of each trial."""

    def __init__(self, cfg, name, families, task):
        # Everything that reaches MLflow is redacted: a default search name or
        # dataset name comes from the data's file name, which may hold a token.
        self.cfg, self.name, self.families = cfg, redact(name), families
        self.task = task
        self.dataset_name = redact(task.name)
        self.parent_id = None
        self.children = {}        # trial_id -> run id of the open child
        self.loggers = {}         # trial_id -> its MetricLogger
        self.begun = {}           # trial_id -> monotonic start
        self.started = time.monotonic()
        self.done = 0
        self.heartbeat = 0.0      # seconds between a worker's heartbeats; 0: not a worker
        self.worker = os.environ.get("KERASTUNER_TUNER_ID", "main")
        self.environment = tracking.run_environment()  # once: it runs git
        self._dataset_input = None
        self.child_runs = {}      # trial_id -> run id, of the trials that ended
        self.total_trials = cfg.max_trials  # Hyperband's own count is set by the search

    # === Parent ===
    @contextlib.contextmanager
    def parent_run(self, existing_id=None):
        tags = {"search": self.name, "tuner": self.cfg.tuner,
                "dataset": self.dataset_name, "task": self.task.kind,
                # "family" is set to the best trial's family when the search
                # ends: a list in it would be a group of its own in the UI.
                "families": ",".join(self.families), "run_kind": "search",
                **self.environment}
        kwargs = {"run_id": existing_id} if existing_id else {"run_name": self.name}
        self.resumed = existing_id is not None
        with tracking.tracked_run(tags=tags, **kwargs) as run:
            self.parent_id = run.info.run_id
            yield run

    def log_search_settings(self, hypermodel, dataset, fingerprint):
        import mlflow

        if self.resumed:
            return  # params are immutable; they were logged the first time
        run = self.cfg.run
        mlflow.log_params(redact({
            "search": self.name, "tuner": self.cfg.tuner,
            "max_trials": self.total_trials, "objective": self.cfg.objective,
            **({"hyperband_iterations": self.cfg.hyperband_iterations}
               if self.cfg.tuner == "hyperband" else {}),
            "models": ",".join(self.families), "dataset": self.dataset_name,
            "task": self.task.kind, **self.task.params(), "epochs": run.epochs,
            "patience": run.patience, "seed": run.seed,
            "data_parallel": self.cfg.data_parallel, "role": self.cfg.role or "single",
            "data_digest": fingerprint["data_digest"],
        }))
        mlflow.log_dict(hypermodel.space(), "search_space.json")
        mlflow.log_input(dataset, context="training")
        if self.task.adjustments:  # a short series' settings, shrunk to fit
            mlflow.set_tag("adjustments", "; ".join(self.task.adjustments))

    def reap_stale_children(self):
        """Close children left RUNNING by a process that no longer exists
        (a search killed with SIGKILL), so they are not mistaken for live."""
        import mlflow

        reap_orphans(mlflow.get_tracking_uri(),
                     f"tags.mlflow.parentRunId = '{self.parent_id}'")

    # === Children ===
    def begin_trial(self, trial):
        import mlflow

        client = mlflow.MlflowClient()
        exp = client.get_run(self.parent_id).info.experiment_id
        params = trial_params(trial.hyperparameters.values)
        family = params.pop("family", self.families[0])
        params = {**self.task.builder_arguments(family), **params}
        if "loss" in params:  # a searched head, named as a train run names it
            params["loss_function"] = params.pop("loss")
        child = client.create_run(exp, run_name=f"trial-{trial.trial_id}", tags={
            "mlflow.parentRunId": self.parent_id, "search": self.name,
            "keras_tuner.trial_id": trial.trial_id, "family": family,
            "dataset": self.dataset_name, "task": self.task.kind, "run_kind": "trial",
            "lstm_zoo.pid": str(os.getpid()), "lstm_zoo.host": socket.gethostname(),
            "worker": self.worker, **self.environment,
        })
        run_id = child.info.run_id
        from mlflow.entities import Param

        import zoo

        # Every searched family's names, so that the UI compares all trials.
        params = zoo.comparable(params, self.families)
        client.log_batch(run_id, params=[Param(k, redact(str(v))) for k, v in {
            # The trial's own settings (a searched window...) over the task's.
            "model": family, **self.task.params(), **params,
            "epochs": self.cfg.run.epochs, "patience": self.cfg.run.patience,
            "seed": self.cfg.run.seed}.items()])
        schedule = hyperband_schedule(trial.hyperparameters.values)
        if schedule:
            client.log_batch(run_id, params=[Param(k, str(v)) for k, v in schedule.items()])
        client.log_inputs(run_id, datasets=[self.dataset_input()])
        self.children[trial.trial_id] = run_id
        self.begun[trial.trial_id] = time.monotonic()

    def dataset_input(self):
        """The data as an MLflow dataset input (made once: it hashes the data)."""
        if self._dataset_input is None:
            from experiments.mlflow_compat import dataset_input

            self._dataset_input = dataset_input(self.task.dataset())
        return self._dataset_input

    def callbacks_for(self, trial):
        run_id = self.children[trial.trial_id]
        logger = MetricLogger(run_id)
        self.loggers[trial.trial_id] = logger
        return [logger, _CudnnTag(run_id)]

    def flush_logger(self, trial_id):
        logger = self.loggers.pop(trial_id, None)
        if logger is not None:
            logger.flush()

    def end_trial(self, trial, oracle):
        import mlflow
        from mlflow.entities import Metric

        run_id = self.children.pop(trial.trial_id, None)
        self.loggers.pop(trial.trial_id, None)
        if run_id is None:
            return
        seconds = time.monotonic() - self.begun.pop(trial.trial_id)
        client = mlflow.MlflowClient()
        status = trial.status
        now = int(time.time() * 1000)
        epochs = len(client.get_metric_history(run_id, "loss"))
        # Not "epochs" (a param: the most allowed) nor "val_loss" (the curve):
        # the objective at the epoch the trial kept, and which epoch that was.
        metrics = [Metric("seconds", seconds, now, 0),
                   Metric("epochs_trained", float(epochs), now, 0)]
        score = trial.score
        if status == "COMPLETED" and score is not None and math.isfinite(score):
            metrics += [Metric(f"best_{self.cfg.objective}", float(score), now, 0),
                        Metric("best_epoch", float(trial.best_step or 0), now, 0)]
        else:
            reason = (trial.message or f"trial ended {status}").strip()
            client.set_tag(run_id, "error", redact(reason.splitlines()[-1])[:5000])
            if status == "COMPLETED":
                status = "FAILED"
        client.log_batch(run_id, metrics=metrics)
        client.set_tag(run_id, "keras_tuner.status", trial.status)
        client.set_terminated(run_id, CHILD_STATUS.get(status, "FAILED"))
        self.done += 1
        self._progress(trial, oracle, seconds)

    def abort_open_trial(self, err):
        import mlflow

        client = mlflow.MlflowClient()
        with signals_held():  # a second Ctrl-C must not leave the child RUNNING
            for trial_id, run_id in list(self.children.items()):
                with contextlib.suppress(Exception):  # the status matters more
                    self.flush_logger(trial_id)  # the epochs that finished stay logged
                client.set_tag(run_id, "error",
                               redact(f"{type(err).__name__}: {err}")[:5000])
                status = "FAILED" if isinstance(err, Exception) else "KILLED"
                client.set_terminated(run_id, status)
                self.children.pop(trial_id)

    def _progress(self, trial, oracle, seconds):
        if getattr(oracle, "trials", None) is None:  # a worker: the chief has the tally
            print(f"{self.worker}: trial {trial.trial_id} {trial.status} "
                  f"{self.cfg.objective}={trial.score}  {seconds:.1f}s", flush=True)
            return
        done = sum(t.status in ("COMPLETED", "FAILED", "INVALID")
                   for t in oracle.trials.values())
        total = self.total_trials
        hp = trial_params(trial.hyperparameters.values)
        shown = " ".join(f"{k}={_short(v)}" for k, v in hp.items())
        schedule = hyperband_schedule(trial.hyperparameters.values)
        if schedule:
            shown += (f"  bracket {schedule['hyperband_bracket']} round "
                      f"{schedule['hyperband_round']}, epochs "
                      f"{schedule['initial_epoch']}-{schedule['tuner_epochs']}")
        scores = [t.score for t in oracle.trials.values()
                  if t.status == "COMPLETED" and t.score is not None
                  and math.isfinite(t.score)]
        score = (f"{self.cfg.objective}={trial.score:.4g}"
                 if trial.status == "COMPLETED" and trial.score is not None
                 and math.isfinite(trial.score) else f"{trial.status}")
        best = f"best={min(scores):.4g}" if scores else "best=-"
        print(f"trial {done}/{total}  {shown}  {score}  {best}  "
              f"{seconds:.1f}s (elapsed {time.monotonic() - self.started:.0f}s)",
              flush=True)

    # === After the search ===
    def trials_table(self, tuner) -> list[dict]:
        """One row per trial: status, score, epochs, seconds and the
        hyperparameters it used. Epochs and seconds come from the trial's
        child run, so trials finished before a resume are included."""
        import mlflow

        client = mlflow.MlflowClient()
        exp = client.get_run(self.parent_id).info.experiment_id
        timing = {}
        for child in client.search_runs(
                [exp], f"tags.mlflow.parentRunId = '{self.parent_id}'"):
            if child.info.status in ("FINISHED", "FAILED"):
                trial_id = child.data.tags.get("keras_tuner.trial_id")
                timing[trial_id] = child.data.metrics
                self.child_runs[trial_id] = child.info.run_id
        rows = []
        for trial_id, trial in sorted(tuner.oracle.trials.items()):
            hp = trial_params(trial.hyperparameters.values)
            m = timing.get(trial_id, {})
            rows.append({"trial": trial_id, "status": trial.status,
                         "score": trial.score,
                         "epochs": int(m["epochs_trained"]) if "epochs_trained" in m
                         else None,
                         "best_epoch": int(m["best_epoch"]) if "best_epoch" in m else None,
                         "seconds": round(m["seconds"], 2) if "seconds" in m else None,
                         **hp})
        return rows

    def log_trials(self, rows):
        import mlflow
        import pandas as pd

        from experiments import plots  # matplotlib: only when a search ends

        frame = pd.DataFrame(rows)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        mlflow.log_text(redact(buffer.getvalue()), "trials.csv")
        scores = [r["score"] if r["status"] == "COMPLETED" else None for r in rows]
        # Numbered as the trials' runs are named (trial-00 is 0).
        numbers = [int(r["trial"]) for r in rows]
        tracking.log_figure(plots.search_plot(scores, self.cfg.objective, self.name,
                                              numbers), "plots/search.png")
        mlflow.log_metrics({
            "trials_completed": sum(r["status"] == "COMPLETED" for r in rows),
            "trials_failed": sum(r["status"] != "COMPLETED" for r in rows),
            "trials_at_epoch_cap": len(at_epoch_cap(rows, self.cfg.run.epochs))})

    def log_best(self, trial, model) -> dict:
        """The best trial's model on the test split, marked on its child run
        and named on the parent (the metrics are of this model, trained on
        the training split only)."""
        import mlflow

        hp = trial_params(trial.hyperparameters.values)
        family = hp.get("family", self.families[0])
        mlflow.log_params(redact({f"best_{k}": v for k, v in hp.items()}))
        scores = self.task.evaluate(model)
        scores[f"best_trial_{self.cfg.objective}"] = float(trial.score)
        mlflow.log_metrics(scores)
        mlflow.log_text(json.dumps(hp, indent=2, default=str),
                        "best_hyperparameters.json")
        self.task.log_artifacts(model, scores)
        child = self.child_runs.get(trial.trial_id)
        mlflow.set_tags({"family": family, "best_trial": trial.trial_id,
                         **({"best_trial_run_id": child} if child else {})})
        if child:
            mlflow.MlflowClient().set_tag(child, "best_trial", "true")
        return scores

    def choose_name(self, digest) -> model_names.Choice:
        """The registered model's name (``--model-name``, or
        ``lstm-zoo-<dataset>-<target>`` unless that holds other data);
        decided once, before the model card names it."""
        import mlflow

        self.identity = model_names.identity(self.task, digest)
        default = model_names.default_name(safe_name(self.dataset_name),
                                           self.task.params().get("targets"))
        self.name_choice = model_names.choose(mlflow.MlflowClient(), default,
                                              self.cfg.run.model_name, self.identity)
        return self.name_choice

    def register(self, model_info, card) -> tuple[str, str]:
        """Register the served model as a new version of the chosen name, with
        what it was trained on and a model card (``card``: description and
        tags), and the alias ``best``."""
        name = self.name_choice.name
        uri = model_info.model_uri if model_info else f"runs:/{self.parent_id}/model"
        description, tags = redact(card) if card else ("", {})
        version = model_names.register(uri, name, {
            "search": self.name, "run_id": self.parent_id, **self.identity, **tags},
            description)
        return name, version


def at_epoch_cap(rows, epochs) -> list[dict]:
    """The completed trials whose best epoch was their last of ``epochs``:
    still improving when the budget ran out."""
    return [r for r in rows if r["status"] == "COMPLETED" and r.get("epochs") == epochs
            and r.get("best_epoch") == epochs - 1]


class BestEpochWeights(keras.callbacks.Callback):
    """keras-tuner's ``SaveBestEpoch`` with the best weights held in memory:
    that callback writes an HDF5 file at every epoch that improves the
    objective, which on a short series (3 batches an epoch) took 40% of a
    search's time. ``write`` saves the best epoch's weights, once, where
    the tuner reloads them from (``Tuner.load_model``)."""

    def __init__(self, objective, filepath):
        super().__init__()
        self.objective, self.filepath = objective, filepath
        self.best_value = float("-inf") if objective.direction == "max" else float("inf")
        self.best_weights = None
        self.owner = None

    def on_epoch_end(self, epoch, logs=None):
        # No objective in the logs: keep the latest epoch, as SaveBestEpoch does.
        if self.objective.has_value(logs):
            value = self.objective.get_value(logs)
            if not self.objective.better_than(value, self.best_value):
                return
            self.best_value = value
        self.best_weights, self.owner = self.model.get_weights(), self.model

    def write(self):
        if self.owner is None:
            return
        model, latest = self.owner, self.owner.get_weights()
        model.set_weights(self.best_weights)
        model.save_weights(self.filepath)
        model.set_weights(latest)


class _CudnnTag(keras.callbacks.Callback):
    """Tags the trial's run with whether its model can use the fused cuDNN
    kernels (as ``train`` runs are tagged)."""

    def __init__(self, run_id):
        super().__init__()
        self.run_id = run_id

    def on_train_begin(self, logs=None):
        import mlflow

        import zoo

        eligible = all(r.eligible for r in zoo.cudnn_report(self.model)
                       if r.has_fused_kernel)
        mlflow.MlflowClient().set_tag(self.run_id, "cudnn_eligible", str(eligible))


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value
