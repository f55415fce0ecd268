"""One training run, from a configuration to a FINISHED MLflow run.

Data flows one way: ``load_series`` -> ``windows.prepare`` -> ``build`` ->
``fit`` -> ``metrics.evaluate_forecasts`` -> MLflow. Everything that can be
wrong with the input is checked before a run is opened, so a bad file or
setting leaves nothing behind in MLflow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from experiments import data as data_mod
from experiments import metrics, windows


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and why."""


class TrainingError(RuntimeError):
    """Training itself went wrong (e.g. the loss became NaN)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; flattened into MLflow params.

    ``None`` means "the dataset's default" (see ``Series.defaults``).
    """

    model: str = "stacked_lstm"
    data: str = "airline"              # a named dataset, or ignored with csv
    csv: str | None = None
    target: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    time_col: str | None = None
    fill_missing: bool = False
    sort: bool = False
    window: int | None = None
    horizon: int | None = None
    val_size: Any = None
    test_size: Any = None
    season: int | None = None
    transforms: tuple[str, ...] | None = None
    folds: int = 1
    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 20
    seed: int = 42
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    experiment: str | None = None
    run_name: str | None = None
    tracking_uri: str | None = None
    verbose: int = 0


@dataclasses.dataclass
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    history: dict[str, list[float]]
    model: Any
    prepared: windows.Prepared


def load_series(cfg: RunConfig) -> data_mod.Series:
    """The run's data: a user CSV if ``cfg.csv``, else the named dataset."""
    if cfg.csv:
        if not cfg.target:
            raise ConfigError("--csv needs --target COL (the column to forecast)")
        return data_mod.load_csv(cfg.csv, target=list(cfg.target),
                                 features=cfg.features, time_col=cfg.time_col,
                                 fill_missing=cfg.fill_missing, sort=cfg.sort)
    return data_mod.load_dataset(cfg.data)


def data_settings(cfg: RunConfig, series) -> dict[str, Any]:
    """Window, horizon, split sizes, transforms and season, resolved
    against the dataset's defaults."""
    d = series.defaults
    return {
        "window": cfg.window or d.get("window", 24),
        "horizon": cfg.horizon or d.get("horizon", 1),
        "val_size": cfg.val_size if cfg.val_size is not None else d.get("val_size", 0.15),
        "test_size": cfg.test_size if cfg.test_size is not None else d.get("test_size", 0.15),
        "transforms": tuple(cfg.transforms if cfg.transforms is not None
                            else d.get("transforms", ())),
        "season": cfg.season or series.season,
    }


def fold_series(series, folds: int, n_test: int):
    """Rolling origin: fold k keeps the first ``n - (folds-1-k)*n_test``
    rows, so each fold's test block follows the previous one and every
    training part contains the last fold's."""
    if folds < 1:
        raise ConfigError(f"--folds must be >= 1; received {folds}")
    n = len(series)
    return [dataclasses.replace(series, frame=series.frame.iloc[
        : n - (folds - 1 - k) * n_test]) for k in range(folds)]


def resolve_hyperparameters(model: str, given: dict) -> dict:
    """The family's hyperparameters with defaults filled in; a setting the
    family does not take is an error naming the ones it does."""
    import zoo

    try:
        info = zoo.get(model)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    if "regression" not in info.heads:
        raise ConfigError(
            f"{model} cannot forecast a series: it takes input shaped "
            f"({', '.join(info.input_axes)}); families that can: "
            f"{zoo.list_models(head='regression')}")
    resolved = info.defaults
    unknown = sorted(set(given) - set(resolved))
    if unknown:
        raise ConfigError(f"{model} has no hyperparameter {unknown[0]!r}; it "
                          f"takes {sorted(resolved)}")
    resolved.update(given)
    return resolved


def compile_model(model, learning_rate: float):
    import keras

    model.compile(keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def fit(model, prepared, cfg: RunConfig, callbacks=()):
    """Train on the training windows with early stopping on validation loss.

    Raises ``TrainingError`` when the loss becomes NaN or infinite.
    """
    import keras

    stop = keras.callbacks.EarlyStopping(
        patience=cfg.patience, restore_best_weights=True)
    history = model.fit(
        prepared.train.x, prepared.train.y,
        validation_data=(prepared.val.x, prepared.val.y),
        epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
        callbacks=[stop, keras.callbacks.TerminateOnNaN(), *callbacks],
        verbose=cfg.verbose,
    ).history
    losses = history.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)),
                   len(losses))
        raise TrainingError(f"training loss became {losses[bad] if losses else 'undefined'} "
                            f"at epoch {bad + 1}; try a lower learning rate")
    return history


def forecast(model, prepared, part) -> np.ndarray:
    """The model's forecasts for ``part`` in original units."""
    pred = model.predict(part.x, verbose=0, batch_size=1024)
    return prepared.to_original(pred, part.origins)


def prepare_run(cfg: RunConfig):
    """Load, validate and window the data and resolve the model's settings.

    Everything here may raise ``DataError``/``ConfigError``/``ValueError``;
    no MLflow run exists yet.
    """
    import keras

    import zoo

    series = load_series(cfg)
    settings = data_settings(cfg, series)
    hp = resolve_hyperparameters(cfg.model, cfg.hyperparameters)
    n_test = windows.resolve_part(settings["test_size"], len(series),
                                  series.frame.index, "test")
    folds = [windows.prepare(s, **settings) for s in
             fold_series(series, cfg.folds, n_test)]
    for name, value in (("epochs", cfg.epochs), ("batch_size", cfg.batch_size),
                        ("patience", cfg.patience)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be an int >= 1;"
                              f" received {value!r}")
    if not cfg.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be > 0; received "
                          f"{cfg.learning_rate!r}")
    # Build once now so a bad hyperparameter fails before a run is opened.
    zoo.build_model(cfg.model, folds[-1].input_shape, folds[-1].outputs, **hp)
    keras.backend.clear_session()
    return series, settings, hp, folds


def params_of(cfg: RunConfig, series, settings, hp) -> dict[str, Any]:
    """Flat MLflow params: identical names for every family."""
    params = {
        "model": cfg.model, "dataset": series.name,
        "targets": ",".join(series.targets),
        "features": ",".join(series.features),
        "window": settings["window"], "horizon": settings["horizon"],
        "val_size": settings["val_size"], "test_size": settings["test_size"],
        "transforms": ",".join(settings["transforms"]) or "none",
        "season": settings["season"], "folds": cfg.folds,
        "fill_missing": cfg.fill_missing, "sort": cfg.sort,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate, "patience": cfg.patience,
        "seed": cfg.seed,
    }
    params.update(hp)
    return params


def run_training(cfg: RunConfig) -> TrainResult:
    """Train ``cfg.model`` on ``cfg``'s data and record it as an MLflow run.

    Returns the run id, test metrics (model, baselines, skill), history,
    the trained model and the prepared windows of the last fold.
    """
    series, settings, hp, folds = prepare_run(cfg)
    from experiments import tracking

    uri = tracking.init_store(tracking.resolve_uri(cfg.tracking_uri))
    tracking.use_experiment(cfg.experiment or series.name, uri)
    return _train_tracked(cfg, series, settings, hp, folds)


def _train_tracked(cfg, series, settings, hp, folds) -> TrainResult:
    import keras
    import mlflow

    import zoo
    from experiments import plots, tracking

    tags = {"family": cfg.model, "dataset": series.name, "task": "forecast",
            "seed": str(cfg.seed), **tracking.run_environment()}
    with tracking.tracked_run(run_name=cfg.run_name or cfg.model,
                              tags=tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(params_of(cfg, series, settings, hp))
        if series.repairs:
            mlflow.set_tag("repairs", "; ".join(series.repairs))
        mlflow.log_input(dataset_of(series), context="training")

        per_fold = []
        for k, prepared in enumerate(folds):
            prefix = f"fold{k + 1}_" if len(folds) > 1 else ""
            keras.backend.clear_session()
            keras.utils.set_random_seed(cfg.seed)
            model = zoo.build_model(cfg.model, prepared.input_shape,
                                    prepared.outputs, **hp)
            compile_model(model, cfg.learning_rate)
            history = fit(model, prepared, cfg,
                          [tracking.MetricLogger(run_id, prefix)])
            pred = forecast(model, prepared, prepared.test)
            scores = {f"test_{k}": v for k, v in metrics.evaluate_forecasts(
                prepared, pred, prepared.test).items()}
            val_pred = forecast(model, prepared, prepared.val)
            scores.update({f"val_{k}": v for k, v in metrics.forecast_metrics(
                prepared.truth(prepared.val), val_pred,
                metrics.scale_for(prepared)).items()})
            scores["epochs_trained"] = len(history["loss"])
            per_fold.append(scores)
            if len(folds) > 1:
                mlflow.log_metrics({prefix + k: v for k, v in scores.items()})

        # With folds, the headline metrics are the fold averages.
        final = {k: float(np.mean([f[k] for f in per_fold])) for k in per_fold[0]}
        mlflow.log_metrics(final)
        mlflow.set_tag("cudnn_eligible", str(all(
            r.eligible for r in zoo.cudnn_report(model) if r.has_fused_kernel)))
        mlflow.set_tag("beats_seasonal_naive",
                       str(final["test_skill_vs_seasonal_naive"] > 0))

        baseline = metrics.seasonal_naive(
            series.frame[list(series.targets)].to_numpy(),
            prepared.test.origins, prepared.horizon, prepared.season)
        title = f"{cfg.model} on {series.name}: test RMSE {final['test_rmse']:.4g}"
        mlflow.log_figure(plots.forecast_plot(prepared, pred, baseline,
                                              prepared.test, title),
                          "plots/forecast.png")
        mlflow.log_figure(plots.learning_curves(history, cfg.model),
                          "plots/learning_curves.png")
        config = dataclasses.asdict(cfg) | {
            "resolved": {**settings, "hyperparameters": hp,
                         "tracking_uri": mlflow.get_tracking_uri()},
            "scaler": {"mean": prepared.mean.to_dict(),
                       "std": prepared.std.to_dict()},
        }
        mlflow.log_text(json.dumps(config, indent=2, default=str),
                        "run_config.json")
        log_model(model, prepared)
        return TrainResult(run_id, final, history, model, prepared)


def dataset_of(series):
    """The series as an ``mlflow.data`` dataset, so its digest is recorded."""
    import os
    import warnings

    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    source = series.source
    if not os.path.exists(source):  # bundled or generated: say how it was made
        source = CodeDatasetSource(tags={"source": series.source})
    with warnings.catch_warnings():
        # "can be interpreted in multiple ways": both readings are a local file.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        return mlflow.data.from_pandas(series.frame.reset_index(), source=source,
                                       name=series.name,
                                       targets=series.targets[0])


def log_model(model, prepared):
    """The model through MLflow's Keras flavor, with signature and example.

    It takes scaled, transformed windows; ``run_config.json`` holds the
    scaler statistics and transforms to map its outputs back.
    """
    import os
    import tempfile

    import mlflow
    from mlflow.models import infer_signature

    example = prepared.test.x[:2]
    signature = infer_signature(example, model.predict(example, verbose=0))
    # mlflow.keras.log_model (3.17) writes the input example before it
    # creates the model folder and crashes; saving into a folder that exists
    # avoids that, and the run gets the same MLmodel folder at "model/".
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model")
        os.makedirs(path)
        mlflow.keras.save_model(model, path, signature=signature,
                                input_example=example)
        mlflow.log_artifacts(path, "model")
