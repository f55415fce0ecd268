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
import time

from experiments.errors import ConfigError
from tuning import folder as folder_mod
from tuning.ensemble import candidates, ensemble, refit_best
from tuning.settings import (
    SearchConfig,
    SearchError,
    SearchResult,
    check_budget,
    clipnorm_space,
    search_name,
)


def _make_tuner(cfg: SearchConfig, hypermodel, project_dir, callbacks_for):
    import keras_tuner as kt

    from tuning.tracked import tracked_tuner_class

    # keras-tuner infers the direction of val_loss, not of val_rmse or val_crps.
    common = dict(objective=kt.Objective(cfg.objective, "min"), seed=cfg.run.seed,
                  directory=os.path.dirname(project_dir),
                  project_name=os.path.basename(project_dir),
                  overwrite=False, max_consecutive_failed_trials=10 ** 6)
    # SearchConfig allows only these (TUNERS).
    base = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization,
            "grid": kt.GridSearch, "hyperband": kt.Hyperband}[cfg.tuner]
    extra = ({"max_epochs": cfg.run.epochs, "factor": 3,
              "hyperband_iterations": cfg.hyperband_iterations}
             if cfg.tuner == "hyperband" else {"max_trials": cfg.max_trials})
    if cfg.data_parallel:
        from experiments.training.strategy import mirrored_strategy

        # keras-tuner builds and trains each trial's model inside the strategy.
        common["distribution_strategy"] = mirrored_strategy()
    cls = tracked_tuner_class(base)
    return cls(hypermodel=hypermodel, callbacks_for=callbacks_for,
               **common, **extra)




def run_search(cfg: SearchConfig) -> SearchResult:
    """Search, evaluate the best configuration on the test split, log and
    register it. Bad data or settings raise before anything is tracked.
    With ``cfg.role``, play that part of a search across processes."""
    from tuning.distributed import role_scope

    with role_scope():
        return _run_search(cfg)


def _run_search(cfg: SearchConfig) -> SearchResult:
    import zoo
    from experiments import data as data_mod
    from experiments import tracking
    from experiments.tasks import load_tasks

    # === Everything that can be wrong with the input, before tracking ===
    if cfg.data_parallel:
        from experiments.training.strategy import check_cluster

        check_cluster(True, "tune")
    if cfg.name is not None:
        folder_mod.check_name(cfg.name)  # first: the name decides what may be deleted
    cfg = check_budget(cfg)
    if cfg.run.folds not in (None, 1) and cfg.objective != "val_loss":
        raise ConfigError("--folds scores trials by their validation loss over the "
                          "folds; leave --objective at val_loss")
    run, tasks = load_tasks(cfg.run, "tune")
    cfg = dataclasses.replace(cfg, run=run)
    task = tasks[-1]
    if cfg.ensemble > 1 and not task.refits:
        raise ConfigError(f"--ensemble averages forecasts; the {task.kind} task serves "
                          f"one model (leave --ensemble out)")
    fitting = task.usable_families()
    families = list(cfg.models) or fitting
    for fam in families:
        try:
            zoo.get(fam)
        except KeyError as err:
            raise ConfigError(err.args[0]) from None
        if fam not in fitting:
            raise ConfigError(f"{fam} cannot serve the {task.kind} task "
                              f"({task.unusable(fam)}); families that can: {fitting}")
    if not len(task.train) or not len(task.val):
        raise data_mod.DataError(f"{task.name}: no training or validation "
                                 f"samples with these settings")

    from tuning.hypermodel import ZooHyperModel
    from tuning.tracked import SearchTracker

    hypermodel = ZooHyperModel(
        families, task.input_shape, task.outputs, head=task.head, loss=task.loss,
        clipnorm=clipnorm_space(cfg.run, task),
        n_train=len(task.train), epochs=cfg.run.epochs, patience=cfg.run.patience,
        builder_arguments={f: task.builder_arguments(f) for f in families},
        folds=[(t.train.x, t.train.y, t.val.x, t.val.y) for t in tasks[:-1]],
        data=tasks if task.searches_data and cfg.objective in ("val_loss", "val_crps")
        else None)
    if hypermodel.objective != "val_loss" and cfg.objective == "val_loss":
        # Searched windows/transforms: losses on different scales; compare
        # trials in the data's units instead.
        cfg = dataclasses.replace(cfg, objective=hypermodel.objective)
    # (cfg.objective is the hypermodel's by now, unless the user named another.)
    if (cfg.objective == "val_crps") != ("loss" in getattr(task, "searchable", ())):
        raise ConfigError("--objective val_crps ranks trials whose head is searched "
                          "(--loss search), and --loss search ranks them by it: give both "
                          "or neither")
    if cfg.objective == "val_rmse" and hypermodel.objective != "val_rmse":
        raise ConfigError("--objective val_rmse ranks trials whose window or transforms "
                          "are searched; with both given (--window, --transform), use "
                          "val_loss")
    name = search_name(cfg, task.name, families)
    project_dir = folder_mod.folder_of(cfg.directory, name)
    dataset = task.dataset()
    fingerprint = {**task.fingerprint(), "data_digest": dataset.digest,
                   "space": hypermodel.space(), "tuner": cfg.tuner,
                   "objective": cfg.objective, "epochs": cfg.run.epochs,
                   "folds": cfg.run.folds,
                   "seed": cfg.run.seed,
                   **({"hyperband_iterations": cfg.hyperband_iterations}
                      if cfg.tuner == "hyperband" else {})}
    fingerprint = json.loads(json.dumps(fingerprint, default=str))
    if cfg.role == "worker":
        return _run_worker(cfg, name, families, task, hypermodel, project_dir)
    if cfg.role == "chief":
        from tuning import distributed

        distributed.configure("chief", cfg.address)
    with folder_mod.search_folder(cfg.directory, name, fresh=cfg.fresh) as project_dir:
        state = folder_mod.read_state(project_dir)
        if state and state["fingerprint"] != fingerprint:
            changed = sorted(k for k in fingerprint
                             if state["fingerprint"].get(k) != fingerprint[k])
            raise ConfigError(
                f"search {name!r} in {project_dir} was started with different "
                f"settings ({', '.join(changed)} changed); its results would "
                f"be stale. Pass --fresh to start it over, or --name to start "
                f"a new search")
        tracking.check_writable(project_dir, "tuner directory")
        uri = tracking.init_store(tracking.resolve_uri(cfg.run.tracking_uri))
        tracking.use_experiment(cfg.run.experiment or task.name, uri)
        tracker = SearchTracker(cfg, name, families, task)
        if cfg.role == "chief":
            from tuning import distributed

            # Bound now, so an address in use fails before any run is opened.
            listener = distributed.Listener(cfg.address, expect_workers=cfg.expect_workers)
        try:
            # keras-tuner reloads its oracle and trials here: a damaged file
            # fails now, before the parent run is reopened.
            tuner = _ready_tuner(cfg, hypermodel, project_dir, tracker)
        except Exception as err:
            if cfg.role == "chief":
                listener.close()
            if state or os.path.exists(os.path.join(project_dir, "oracle.json")):
                raise folder_mod.SearchStateError(
                    f"the saved search in {project_dir} cannot be reloaded "
                    f"({type(err).__name__}: {err}); pass --fresh to start it over "
                    f"(finished runs stay in MLflow)") from None
            raise
        listener = listener if cfg.role == "chief" else None
        try:
            return _run_tracked(cfg, name, task, hypermodel, dataset, fingerprint,
                                state, project_dir, tracker, tuner, listener)
        finally:
            gc.unfreeze()  # _ready_tuner froze everything alive for the search
            if listener is not None:
                listener.close()  # also when the search failed before serving


def _run_tracked(cfg, name, task, hypermodel, dataset, fingerprint, state, project_dir,
                 tracker, tuner, listener) -> SearchResult:
    """The search inside its parent run, then the best model's evaluation."""
    with tracker.parent_run(state.get("parent_run_id")) as parent:
        state.update(parent_run_id=parent.info.run_id, fingerprint=fingerprint)
        folder_mod.write_state(project_dir, state)
        tracker.log_search_settings(hypermodel, dataset, fingerprint)
        tracker.reap_stale_children()
        if listener is not None:
            _serve_workers(cfg, tuner, tracker, listener)
        else:
            _search_here(cfg, tuner, task)
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
            try:
                model = tuner.load_model(best_trial)
            except (OSError, ValueError) as err:
                if cfg.role != "chief":
                    raise
                raise SearchError(
                    f"the best trial's checkpoint is not readable on the chief ({err}); "
                    f"chief and workers need a shared --directory") from None
        # The task as the best trial saw it (its window and transforms).
        task = tracker.task = (hypermodel.tasks_for(best_trial.hyperparameters)[-1]
                               if hypermodel.data else task)
        test_metrics = tracker.log_best(best_trial, model)
        served, refit = refit_best(cfg, hypermodel, best_trial, task, model)
        calibrated, card_metrics, family = model, test_metrics, None
        if cfg.ensemble > 1 and task.refits:
            served, calibrated, card_metrics, family = ensemble(
                cfg, tuner, hypermodel, candidates(hypermodel, best, task)[:cfg.ensemble],
                task, model, served, refit)
        model_info = task.log_served(served, calibrated_on=calibrated)
        registered = None
        if cfg.register:
            choice = tracker.choose_name(dataset.digest)
            if choice.reason:
                print(f"note: {choice.reason}", flush=True)
            card = None
            if task.kind in ("forecast", "panel"):  # a model card says what it forecasts
                from experiments.serving.card import model_card, panel_card
                from tuning.tracked import trial_params

                hp = trial_params(best_trial.hyperparameters.values)
                common = dict(name=choice.name,
                              family=family or hp.get("family", hypermodel.families[0]),
                              hyperparameters=hp, task=task, scores=card_metrics,
                              refit=refit, run_id=parent.info.run_id)
                card = (panel_card(**common) if task.kind == "panel" else model_card(
                    **common, members=task.member_preprocessing(calibrated)))
            registered = tracker.register(model_info, card)
        return SearchResult(parent.info.run_id, dict(best_trial.hyperparameters.values),
                            float(best_trial.score), test_metrics, trials,
                            registered, task, refit,
                            card_metrics if card_metrics is not test_metrics else {},
                            cfg.objective, cfg.run.epochs)




def _ready_tuner(cfg: SearchConfig, hypermodel, project_dir, tracker):
    """The tracked tuner, seeded, with the process' memory set up for a search."""
    import keras

    tuner = _make_tuner(cfg, hypermodel, project_dir, tracker.callbacks_for)
    tuner.tracker = tracker
    if cfg.tuner == "hyperband":
        from zoo.compat import hyperband_trials

        tracker.total_trials = hyperband_trials(tuner.oracle)
    keras.utils.set_random_seed(cfg.run.seed)
    # Everything alive now (TensorFlow, Keras, MLflow, the data) lives
    # for the whole search: freeze it so the collection keras-tuner runs
    # before every trial scans only what trials create (0.45 s -> ms).
    gc.collect()
    gc.freeze()
    tracker.started = time.monotonic()
    return tuner


def _search_here(cfg: SearchConfig, tuner, task) -> None:
    from experiments.training.fit_parts import early_stopping

    # The training part itself, not its arrays: a panel's windows are drawn
    # by index (ZooHyperModel.fit_once).
    tuner.search(
        task.train, None,
        validation_data=(task.val.x, task.val.y),
        epochs=cfg.run.epochs, shuffle=True, verbose=0,
        callbacks=[early_stopping(cfg.run.patience, cfg.objective)],
    )


def _serve_workers(cfg: SearchConfig, tuner, tracker, listener) -> None:
    """The chief's part: serve the oracle until every trial is done, then
    make sure each one is accounted for."""
    from tuning import distributed

    host, port = cfg.address
    tuner.oracle.verbose = 0  # keras-tuner's trial tables; the workers report instead
    # keras-tuner reloads a tuner (and its oracle) only if the tuner's own file
    # exists, and a chief never runs `search`, which is what writes it: without
    # this a restarted chief would start the search over.
    tuner.save()
    watch = distributed.WorkerWatch(tuner.oracle, cfg.worker_timeout)
    print(f"chief of search {tracker.name!r} listening on {host}:{port}; start workers "
          f"with the same arguments and --role worker --chief {host}:{port}", flush=True)
    try:
        listener.serve(tuner.oracle, watch, start_timeout=cfg.connect_timeout)
    finally:
        # Children left RUNNING by workers that died, also when the chief
        # itself is stopped (SIGTERM from the --workers launcher).
        tracker.reap_stale_children()
    unfinished = sorted(t.trial_id for t in tuner.oracle.trials.values()
                        if t.status == "RUNNING")
    if unfinished:
        raise SearchError(f"trial(s) {', '.join(unfinished)} never finished (their "
                          f"workers stopped); run the chief and workers again to finish "
                          f"them")


def _run_worker(cfg: SearchConfig, name, families, task, hypermodel,
                project_dir) -> SearchResult:
    """A worker's part: find the chief and its parent run, then train the
    trials the chief hands out, each a child run of the chief's parent."""
    import mlflow

    from experiments import tracking
    from tuning import distributed
    from tuning.tracked import SearchTracker

    folder_mod.check_usable(project_dir)  # workers share the chief's folder: no lock
    worker = distributed.configure("worker", cfg.address)
    distributed.wait_for_chief(cfg.address, cfg.connect_timeout)
    tracking.check_writable(project_dir, "tuner directory")
    uri = tracking.init_store(tracking.resolve_uri(cfg.run.tracking_uri))
    tracking.use_experiment(cfg.run.experiment or task.name, uri)
    tracker = SearchTracker(cfg, name, families, task)
    tracker.parent_id = distributed.find_parent(mlflow.MlflowClient(uri), tracker.name,
                                                cfg.connect_timeout)
    tracker.heartbeat = min(distributed.HEARTBEAT, cfg.worker_timeout / 4)
    tuner = _ready_tuner(cfg, hypermodel, project_dir, tracker)
    import grpc

    try:
        with tracking.terminate_as_exception():  # SIGTERM closes the open trial KILLED
            _search_here(cfg, tuner, task)
    except grpc.RpcError as err:
        host, port = cfg.address
        raise SearchError(
            f"the chief at {host}:{port} stopped answering ({err.code().name}); restart "
            f"it with the same command (it resumes from {project_dir}), then the "
            f"workers") from None
    finally:
        gc.unfreeze()
    print(f"{worker}: no trials left; {tracker.done} trial(s) run here", flush=True)
    return SearchResult(tracker.parent_id, {}, float("nan"), {}, [], None, task)
