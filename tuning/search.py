"""Hyperparameter search over the zoo, every trial a run in MLflow.

``run_search(SearchConfig(...))`` is the notebook entry point; ``lstm-zoo
tune`` calls it. One parent MLflow run per search, one nested child per
trial whose status matches keras-tuner's. The tuner's project directory is
kept per search name, so running the same search again after an
interruption continues it; a search whose data or space changed is refused.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import shutil
import time
from typing import Any

from experiments.train import ConfigError, RunConfig

TUNERS = ("random", "bayesian", "hyperband", "grid")


class SearchError(RuntimeError):
    """The search could not produce a model (e.g. every trial failed)."""


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """A search: the data and training settings of a ``train`` run, plus the
    families, tuner and budget."""

    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    models: tuple[str, ...] = ()          # empty: every family that fits
    tuner: str = "random"
    max_trials: int = 10
    objective: str = "val_loss"
    name: str | None = None               # default: dataset-tuner-models
    directory: str = "tuner"
    fresh: bool = False
    register: bool = True


@dataclasses.dataclass
class SearchResult:
    parent_run_id: str
    best_hyperparameters: dict
    best_score: float
    test_metrics: dict
    trials: list[dict]
    registered: tuple[str, str] | None     # (model name, version)
    task: Any = None


def search_name(cfg: SearchConfig, dataset: str, families) -> str:
    if cfg.name:
        return cfg.name
    models = "all" if not cfg.models else "-".join(families)
    return f"{dataset}-{cfg.tuner}-{models}"


def _make_tuner(cfg: SearchConfig, hypermodel, project_dir, callbacks_for):
    import keras_tuner as kt

    from tuning.tracked import tracked_tuner_class

    common = dict(objective=cfg.objective, seed=cfg.run.seed,
                  directory=os.path.dirname(project_dir),
                  project_name=os.path.basename(project_dir),
                  overwrite=False, max_consecutive_failed_trials=10 ** 6)
    if cfg.tuner == "random":
        base, extra = kt.RandomSearch, {"max_trials": cfg.max_trials}
    elif cfg.tuner == "bayesian":
        base, extra = kt.BayesianOptimization, {"max_trials": cfg.max_trials}
    elif cfg.tuner == "grid":
        base, extra = kt.GridSearch, {"max_trials": cfg.max_trials}
    elif cfg.tuner == "hyperband":
        base, extra = kt.Hyperband, {"max_epochs": cfg.run.epochs, "factor": 3}
    else:
        raise ConfigError(f"--tuner must be one of {list(TUNERS)}; received "
                          f"{cfg.tuner!r}")
    cls = tracked_tuner_class(base)
    return cls(hypermodel=hypermodel, callbacks_for=callbacks_for,
               **common, **extra)


def run_search(cfg: SearchConfig) -> SearchResult:
    """Search, evaluate the best configuration on the test split, log and
    register it. Bad data or settings raise before anything is tracked."""
    import zoo
    from experiments import data as data_mod
    from experiments import tracking, train

    # === Everything that can be wrong with the input, before tracking ===
    for name, value in (("max_trials", cfg.max_trials), ("epochs", cfg.run.epochs)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be an int >= 1; "
                              f"received {value!r}")
    if cfg.tuner not in TUNERS:
        raise ConfigError(f"--tuner must be one of {list(TUNERS)}; received "
                          f"{cfg.tuner!r}")
    if cfg.objective not in ("val_loss", "loss"):
        raise ConfigError(f"--objective must be val_loss (or loss); received "
                          f"{cfg.objective!r}; the test split is never used "
                          f"for selection")
    task = train.build_tasks(dataclasses.replace(cfg.run, folds=1))[-1]
    fitting = zoo.list_models(head=task.head)
    families = list(cfg.models) or fitting
    for fam in families:
        try:
            zoo.get(fam)
        except KeyError as err:
            raise ConfigError(err.args[0]) from None
        if fam not in fitting:
            raise ConfigError(f"{fam} cannot serve the {task.kind} task (no "
                              f"{task.head!r} head); families that can: {fitting}")
    if not len(task.train) or not len(task.val):
        raise data_mod.DataError(f"{task.name}: no training or validation "
                                 f"samples with these settings")

    from tuning.hypermodel import CLIPNORM, ZooHyperModel
    from tuning.tracked import SearchTracker

    hypermodel = ZooHyperModel(
        families, task.input_shape, task.outputs, head=task.head, loss=task.loss,
        clipnorm=CLIPNORM if task.kind == "language_model" else None,
        n_train=len(task.train))
    name = search_name(cfg, task.name, families)
    project_dir = os.path.abspath(os.path.join(cfg.directory, name))
    dataset = task.dataset()
    fingerprint = {**task.fingerprint(), "data_digest": dataset.digest,
                   "space": hypermodel.space(), "tuner": cfg.tuner,
                   "objective": cfg.objective, "epochs": cfg.run.epochs,
                   "seed": cfg.run.seed}
    fingerprint = json.loads(json.dumps(fingerprint, default=str))
    state_file = os.path.join(project_dir, "lstm_zoo_search.json")
    if cfg.fresh and os.path.isdir(project_dir):
        shutil.rmtree(project_dir)
    state = {}
    if os.path.exists(state_file):
        with open(state_file) as f:
            state = json.load(f)
        if state.get("fingerprint") != fingerprint:
            changed = sorted(k for k in fingerprint
                             if state.get("fingerprint", {}).get(k) != fingerprint[k])
            raise ConfigError(
                f"search {name!r} in {project_dir} was started with different "
                f"settings ({', '.join(changed)} changed); its results would "
                f"be stale. Pass --fresh to start it over, or --name to start "
                f"a new search")

    tracking.check_writable(project_dir, "tuner directory")
    uri = tracking.init_store(tracking.resolve_uri(cfg.run.tracking_uri))
    tracking.use_experiment(cfg.run.experiment or task.name, uri)
    tracker = SearchTracker(cfg, name, families, task)

    with tracker.parent_run(state.get("parent_run_id")) as parent:
        os.makedirs(project_dir, exist_ok=True)
        state.update(parent_run_id=parent.info.run_id, fingerprint=fingerprint)
        with open(state_file, "w") as f:
            json.dump(state, f, indent=2)
        tracker.log_search_settings(hypermodel, dataset, fingerprint)
        tracker.reap_stale_children()

        tuner = _make_tuner(cfg, hypermodel, project_dir, tracker.callbacks_for)
        tuner.tracker = tracker
        import keras

        keras.utils.set_random_seed(cfg.run.seed)
        # Everything alive now (TensorFlow, Keras, MLflow, the data) lives
        # for the whole search: freeze it so the collection keras-tuner runs
        # before every trial scans only what trials create (0.45 s -> ms).
        gc.collect()
        gc.freeze()
        tracker.started = time.monotonic()
        tuner.search(
            task.train.x, task.train.y,
            validation_data=(task.val.x, task.val.y),
            epochs=cfg.run.epochs, shuffle=True, verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(
                patience=cfg.run.patience, restore_best_weights=True)],
        )
        trials = tracker.trials_table(tuner)
        tracker.log_trials(trials)
        best = [t for t in tuner.oracle.get_best_trials(len(tuner.oracle.trials))
                if t.status == "COMPLETED" and t.score is not None
                and math.isfinite(t.score)]
        if not best:
            causes = sorted({(t.message or "").strip().splitlines()[-1]
                             for t in tuner.oracle.trials.values()
                             if t.message} or {"no trial completed"})
            raise SearchError(f"all {len(trials)} trials failed; no best model. "
                              f"Causes: {'; '.join(causes)[:2000]}")
        best_trial = best[0]
        import warnings

        with warnings.catch_warnings():
            # The checkpoint's optimizer state is not needed to predict.
            warnings.filterwarnings("ignore", message="Skipping variable loading")
            model = tuner.load_model(best_trial)
        test_metrics = tracker.log_best(best_trial, model)
        registered = tracker.register(name) if cfg.register else None
        gc.unfreeze()
        return SearchResult(parent.info.run_id, dict(best_trial.hyperparameters.values),
                            float(best_trial.score), test_metrics, trials,
                            registered, task)


