"""One training run, from a configuration to a FINISHED MLflow run.

The stages, in order (each a plain function you can call from a notebook):

1. ``tasks.load_tasks``: check the settings against the task, load and
   validate the data, preprocess and window it (one task per fold);
2. ``fitting.resolve_hyperparameters``: the family's settings for the task;
3. ``zoo.build_model`` and ``fitting.compile_model`` / ``fitting.fit``;
4. ``task.evaluate``: test metrics next to the baselines, in the data's units;
5. ``tracking``: params, curves, plots and the model in one MLflow run.

Everything that can be wrong with the input is checked before a run is
opened, so a bad file or setting leaves nothing behind in MLflow.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from experiments import tracking
from experiments.config import RunConfig
from experiments.errors import ConfigError, TrainingError  # noqa: F401  (re-exported)
from experiments.tasks import Task, load_tasks
from experiments.training import fitting


@dataclasses.dataclass
class TrainResult:
    run_id: str | None  # None in a cluster's non-chief process, which logs nothing
    metrics: dict[str, float]
    history: dict[str, list[float]]
    model: Any      # the model served: refit on all the data with --refit
    task: Task
    trained: Any = None  # the model trained on the training split (its metrics)
    registered: tuple | None = None  # with --model-name: (name, version, note)


# Test samples whose attention weights ``train`` plots.
ATTENTION_SAMPLES = 4


def prepare_run(cfg: RunConfig):
    """Resolve the settings, prepare the data and the model's settings; no
    MLflow run exists yet. Returns ``(resolved config, tasks, hyperparameters)``.

    Raises:
        DataError, ConfigError, ValueError: bad data or settings.
    """
    import keras

    import zoo

    cfg, tasks = load_tasks(cfg, "train")
    hp = fitting.resolve_hyperparameters(cfg.model, cfg.hyperparameters, tasks[-1])
    # Build once now so a bad hyperparameter fails before a run is opened.
    zoo.build_model(cfg.model, tasks[-1].input_shape, tasks[-1].outputs, **hp)
    keras.backend.clear_session()
    return cfg, tasks, hp


def params_of(cfg: RunConfig, task: Task, hp) -> dict[str, Any]:
    """Flat MLflow params: identical names for every family."""
    params = {"model": cfg.model, "dataset": task.name, "task": task.kind,
              **task.params(), "folds": cfg.folds, "refit": bool(cfg.refit),
              "epochs": cfg.epochs, "batch_size": cfg.batch_size,
              "learning_rate": cfg.learning_rate, "clipnorm": cfg.clipnorm,
              "patience": cfg.patience, "seed": cfg.seed}
    if cfg.data_parallel:  # the copies of the model that trained, one per device
        from experiments.training import strategy

        params.update(data_parallel=True, replicas=strategy.replicas())
        if strategy.cluster() is not None:
            params.update(processes=len(strategy.cluster().addresses))
    if cfg.csv and cfg.label_col is None:  # the repairs a series from a CSV may ask for
        params.update(fill_missing=cfg.fill_missing, sort=cfg.sort)
    import zoo

    # Every family's hyperparameter names, so runs of different families compare.
    # (The quantiles, a head's setting the task fixes, are among the task's params.)
    hp = {k: v for k, v in hp.items() if k != "quantiles"}
    params.update(zoo.comparable(hp, zoo.list_models(head=task.head)))
    return params


def run_training(cfg: RunConfig) -> TrainResult:
    """Train ``cfg.model`` on ``cfg``'s data and record it as an MLflow run.

    Returns the run id, test metrics (model, baselines), history, the
    trained model and the task (of the last fold).

    In a cluster (``TF_CONFIG``, with ``--data-parallel``) every process runs
    this; only the chief opens a run, the others train alongside it
    (``train_alongside``) and return a result without a run id.
    """
    from experiments.training import strategy

    team = strategy.check_cluster(cfg.data_parallel)
    if team is not None:  # before TensorFlow runs anything, as it requires
        strategy.multi_worker_strategy()
    cfg, tasks, hp = prepare_run(cfg)
    if team is not None and not team.is_chief:
        return train_alongside(cfg, tasks, hp)
    uri = tracking.init_store(tracking.resolve_uri(cfg.tracking_uri))
    tracking.use_experiment(cfg.experiment or tasks[-1].name, uri)
    return _train_tracked(cfg, tasks, hp)


def train_alongside(cfg, tasks, hp) -> TrainResult:
    """A non-chief process' part of a training across processes: the same
    fits, in the same order, as the chief's ``_train_tracked`` (each step
    waits for every process), and nothing written anywhere."""
    for fold in tasks:
        _, history = fitting.train_network(cfg, fold, hp)
    if cfg.refit:
        fitting.refit(cfg.model, tasks[-1], hp, cfg, fitting.best_epochs(history))
    return TrainResult(None, {}, history, None, tasks[-1])


def _train_tracked(cfg, tasks, hp) -> TrainResult:
    import mlflow

    import zoo
    from experiments import plots
    from experiments.training.curves import MetricLogger

    task = tasks[-1]
    tags = {"family": cfg.model, "dataset": tracking.redact(task.name), "task": task.kind,
            "seed": str(cfg.seed), **tracking.run_environment()}
    with tracking.tracked_run(run_name=cfg.run_name or cfg.model, tags=tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(tracking.redact(params_of(cfg, task, hp)))
        repairs = task.repairs
        if repairs:
            mlflow.set_tag("repairs", tracking.redact("; ".join(repairs)))
        if task.adjustments:
            mlflow.set_tag("adjustments", "; ".join(task.adjustments))
        mlflow.log_input(task.dataset(), context="training")

        per_fold = []
        for k, fold in enumerate(tasks):
            prefix = f"fold{k + 1}_" if len(tasks) > 1 else ""
            model, history = fitting.train_network(cfg, fold, hp,
                                                   [MetricLogger(run_id, prefix)])
            scores = fold.evaluate(model)
            scores["epochs_trained"] = len(history["loss"])
            per_fold.append(scores)
            if len(tasks) > 1:
                mlflow.log_metrics({prefix + k: v for k, v in scores.items()})

        # With folds, the headline metrics are the fold averages.
        final = {k: float(np.mean([f[k] for f in per_fold])) for k in per_fold[0]}
        mlflow.log_metrics(final)
        mlflow.set_tag("cudnn_eligible", str(all(
            r.eligible for r in zoo.cudnn_report(model) if r.has_fused_kernel)))
        task.log_artifacts(model, final)
        tracking.log_figure(plots.learning_curves(history, cfg.model),
                            "plots/learning_curves.png")
        if any(layer.name == "attention" for layer in model.layers):  # attention_lstm
            weights = zoo.attention_weights(model, task.test.x[:ATTENTION_SAMPLES])
            tracking.log_figure(plots.attention_heatmap(weights, f"{cfg.model}: attention"),
                                "plots/attention.png")
        config = dataclasses.asdict(cfg) | {
            "task": task.kind,
            "resolved": {**task.params(), "hyperparameters": hp,
                         "tracking_uri": mlflow.get_tracking_uri()},
            **task.config(),
        }
        mlflow.log_text(tracking.redact(json.dumps(config, indent=2, default=str)),
                        "run_config.json")
        served = model
        if cfg.refit:
            epochs = fitting.best_epochs(history)
            served = fitting.refit(cfg.model, task, hp, cfg, epochs)
            mlflow.log_metric("refit_epochs", epochs)
        mlflow.set_tags({"refit": str(bool(cfg.refit)).lower(), "test_metrics_of": (
            "the model trained on the training split; the served model is its refit "
            "on all the data" if cfg.refit else "the served model")})
        model_info = task.log_served(served, calibrated_on=model)
        registered = _register(cfg, task, model_info, run_id) if cfg.model_name else None
        return TrainResult(run_id, final, history, served, task, model, registered)


def _register(cfg, task, model_info, run_id) -> tuple[str, str, str | None]:
    """``--model-name``: the served model as a new version of that name.
    Returns ``(name, version, a note when the name holds models of other
    data)``."""
    import mlflow

    from experiments import model_names

    identity = model_names.identity(task, task.dataset().digest)
    differ = model_names.differences(mlflow.MlflowClient(), cfg.model_name, identity)
    note = (f"{cfg.model_name} also holds models of other data ({differ[0]}); "
            f"added a version as asked" if differ else None)
    version = model_names.register(model_info.model_uri, cfg.model_name,
                                   {"run_id": run_id, "family": cfg.model, **identity})
    return cfg.model_name, version, note
