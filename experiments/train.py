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
from experiments import windows
from experiments.task import Task


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
    data: str = "airline"              # a named dataset, unless a file is given
    dataset_options: dict = dataclasses.field(default_factory=dict)
    csv: str | None = None             # a series, or sequences with label_col
    npy: str | None = None             # frames (samples, time, rows, cols[, ch])
    npz: str | None = None             # labelled sequences: arrays x and y
    text: str | None = None            # a UTF-8 text for a character model
    label_col: str | None = None
    id_col: str | None = None
    target: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    time_col: str | None = None
    time_format: str | None = None     # strftime format of time_col; None: ISO 8601
    max_file_mb: float | None = None   # refuse bigger CSVs; None: data.MAX_FILE_MB
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
    clipnorm: float | None = None      # gradient clipping (norm); None: off
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
    task: Task


def task_kind(cfg: RunConfig) -> str:
    """Which task the configured data calls for."""
    if cfg.npy:
        return "frames"
    if cfg.text:
        return "language_model"
    if cfg.npz or (cfg.csv and cfg.label_col):
        return "classification"
    if cfg.csv:
        return "forecast"
    return data_mod.dataset_task(cfg.data)


def load_series(cfg: RunConfig) -> data_mod.Series:
    """A series to forecast: a user CSV if ``cfg.csv``, else a named one."""
    if cfg.csv:
        if not cfg.target:
            raise ConfigError("--csv needs --target COL (the column to forecast), "
                              "or --label-col COL for sequence classification")
        return data_mod.load_csv(cfg.csv, target=list(cfg.target),
                                 features=cfg.features, time_col=cfg.time_col,
                                 time_format=cfg.time_format, max_file_mb=cfg.max_file_mb,
                                 fill_missing=cfg.fill_missing, sort=cfg.sort)
    return data_mod.load_dataset(cfg.data, **cfg.dataset_options)


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


def build_tasks(cfg: RunConfig) -> list[Task]:
    """The run's task, one per rolling-origin fold (forecasting only)."""
    kind = task_kind(cfg)
    if kind != "forecast":
        if cfg.folds != 1:
            raise ConfigError("--folds (rolling origin) applies to forecasting only")
        if kind == "frames":
            from experiments import frames
            return [frames.make_task(cfg)]
        if kind == "language_model":
            from experiments import text
            return [text.make_task(cfg)]
        from experiments import classify
        return [classify.make_task(cfg)]
    from experiments.forecast import ForecastTask

    series = load_series(cfg)
    settings = data_settings(cfg, series)
    n_test = windows.resolve_part(settings["test_size"], len(series),
                                  series.frame.index, "test")
    return [ForecastTask(windows.prepare(s, **settings), series.repairs)
            for s in fold_series(series, cfg.folds, n_test)]


def resolve_hyperparameters(model: str, given: dict, task: Task) -> dict:
    """The family's hyperparameters with defaults filled in (and the task's
    head); a family that cannot serve the task, or a setting it does not
    take, is an error naming what would work."""
    import zoo

    try:
        info = zoo.get(model)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    if task.head not in info.heads:
        raise ConfigError(
            f"{model} cannot serve the {task.kind} task on {task.name} (it needs "
            f"the {task.head!r} head; {model} takes input shaped "
            f"({', '.join(info.input_axes)}) and has heads {list(info.heads)}); "
            f"families that can: {zoo.list_models(head=task.head)}")
    resolved = info.defaults
    unknown = sorted(set(given) - set(resolved))
    if unknown:
        raise ConfigError(f"{model} has no hyperparameter {unknown[0]!r}; it "
                          f"takes {sorted(resolved)}")
    resolved.update(given)
    resolved["head"] = task.head
    return resolved


# Measured with make bench / the airline and sine data on a 2-core CPU: XLA
# pays for its compile time (about 1.5 s per model) only when epochs have
# many batches: 89 batches/epoch trained 2.3x faster with XLA and
# steps_per_execution; 2 batches/epoch (airline) trained 20% slower.
XLA_MIN_STEPS_PER_EPOCH = 16
# ...and only when the training is long: XLA saves at most about 0.5 ms per
# batch on these models, so 1.5 s of compiling needs some 3,000 batches to
# pay back. Short fits (a tuner's trials of a few epochs) are faster without
# it, and every XLA-compiled model stays in TensorFlow's XLA cache, which
# is never emptied (tensorflow/tensorflow#64170): a long search of XLA trials
# would grow by about 17 MB per trial.
XLA_MIN_STEPS = 2000
STEPS_PER_EXECUTION = 16


def steps_per_execution(steps_per_epoch: int | None) -> int:
    """Batches per call into the compiled train function: up to
    ``STEPS_PER_EXECUTION``, and the whole epoch or the largest divisor of it
    from half that up. A call runs its batches even past the end of an epoch
    when the input does not end there, so only a divisor lets the feed keep
    one pipeline through all epochs; with none (a prime number of batches,
    say) the feed hands ``fit`` the arrays, as plain Keras does."""
    if not steps_per_epoch:
        return STEPS_PER_EXECUTION
    if steps_per_epoch <= STEPS_PER_EXECUTION:
        return steps_per_epoch
    for size in range(STEPS_PER_EXECUTION, STEPS_PER_EXECUTION // 2 - 1, -1):
        if steps_per_epoch % size == 0:
            return size
    return STEPS_PER_EXECUTION


def compile_options(steps_per_epoch: int | None = None, model=None,
                    epochs: int | None = None) -> dict[str, Any]:
    """How ``train`` and ``tune`` compile, chosen for speed (see ``make bench``).

    - ``steps_per_execution``: several batches per call into the compiled
      function, removing per-batch Python overhead. Callbacks still see
      every epoch. A divisor of ``steps_per_epoch`` where there is a good
      one, so that ``experiments.feed`` can keep one input pipeline
      through all epochs (see ``steps_per_execution``).
    - XLA (``jit_compile=True``) on a CPU-only TensorFlow when an epoch has
      at least ``XLA_MIN_STEPS_PER_EPOCH`` batches and the whole training
      (up to ``epochs``; unknown counts as long) at least ``XLA_MIN_STEPS``:
      Keras' "auto" turns it off on CPUs, yet it fuses the recurrent loop's
      small ops. On a GPU
      "auto" stays, and Keras skips XLA for layers on cuDNN, so the fused
      kernels are kept. Never for ConvLSTM, which XLA made 16x slower.
    """
    import keras

    options = {"steps_per_execution": steps_per_execution(steps_per_epoch)}
    many_steps = ((steps_per_epoch or 0) >= XLA_MIN_STEPS_PER_EPOCH
                  and (epochs is None or epochs * steps_per_epoch >= XLA_MIN_STEPS))
    if model is not None and any(isinstance(layer, keras.layers.ConvLSTM2D)
                                 for layer in model._flatten_layers()):
        many_steps = False
    if keras.config.backend() == "tensorflow" and many_steps:
        from experiments.tracking import device_name

        if device_name() == "cpu":
            options["jit_compile"] = True
    return options


def compile_fast(model, optimizer, loss, steps_per_epoch=None, epochs=None,
                 **compile_kwargs):
    """Compile ``model`` the way ``train`` and ``tune`` run it: ConvLSTM gates
    fused into one convolution per step (``zoo.fused``; weights and saved
    files unchanged) and ``compile_options`` for this many batches per epoch
    and at most this many epochs."""
    from zoo.fused import fuse_conv_lstm

    fuse_conv_lstm(model)
    model.compile(optimizer, loss=loss,
                  **compile_options(steps_per_epoch, model, epochs), **compile_kwargs)
    return model


def compile_model(model, task: Task, learning_rate: float, clipnorm=None,
                  batch_size: int = 32, epochs: int | None = None):
    import keras

    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    steps = math.ceil(len(task.train) / batch_size)
    return compile_fast(model, optimizer, task.loss, steps, epochs,
                        **task.compile_kwargs())


def fit(model, task: Task, cfg: RunConfig, callbacks=()):
    """Train on the training part with early stopping on validation loss.

    Raises ``TrainingError`` when the loss becomes NaN or infinite.
    """
    import keras

    from experiments.feed import fit_arguments

    stop = keras.callbacks.EarlyStopping(
        patience=cfg.patience, restore_best_weights=True)
    history = model.fit(
        **fit_arguments(task.train.x, task.train.y, cfg.batch_size,
                        validation=(task.val.x, task.val.y),
                        steps_per_execution=model.steps_per_execution),
        epochs=cfg.epochs,
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


def check_training_settings(cfg: RunConfig):
    for name, value in (("epochs", cfg.epochs), ("batch_size", cfg.batch_size),
                        ("patience", cfg.patience)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be an int >= 1;"
                              f" received {value!r}")
    if not cfg.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be > 0; received "
                          f"{cfg.learning_rate!r}")
    if cfg.clipnorm is not None and not cfg.clipnorm > 0:
        raise ConfigError(f"--clipnorm must be > 0; received {cfg.clipnorm!r}")


def prepare_run(cfg: RunConfig):
    """Load, validate and window the data and resolve the model's settings.

    Everything here may raise ``DataError``/``ConfigError``/``ValueError``;
    no MLflow run exists yet.
    """
    import keras

    import zoo

    check_training_settings(cfg)
    tasks = build_tasks(cfg)
    hp = resolve_hyperparameters(cfg.model, cfg.hyperparameters, tasks[-1])
    # Build once now so a bad hyperparameter fails before a run is opened.
    zoo.build_model(cfg.model, tasks[-1].input_shape, tasks[-1].outputs, **hp)
    keras.backend.clear_session()
    return tasks, hp


def params_of(cfg: RunConfig, task: Task, hp) -> dict[str, Any]:
    """Flat MLflow params: identical names for every family."""
    params = {"model": cfg.model, "dataset": task.name, "task": task.kind,
              **task.params(), "folds": cfg.folds,
              "epochs": cfg.epochs, "batch_size": cfg.batch_size,
              "learning_rate": cfg.learning_rate, "clipnorm": cfg.clipnorm,
              "patience": cfg.patience, "seed": cfg.seed}
    if task.kind == "forecast" and cfg.csv:
        params.update(fill_missing=cfg.fill_missing, sort=cfg.sort)
    params.update(hp)
    return params


def run_training(cfg: RunConfig) -> TrainResult:
    """Train ``cfg.model`` on ``cfg``'s data and record it as an MLflow run.

    Returns the run id, test metrics (model, baselines), history, the
    trained model and the task (of the last fold).
    """
    tasks, hp = prepare_run(cfg)
    from experiments import tracking

    uri = tracking.init_store(tracking.resolve_uri(cfg.tracking_uri))
    tracking.use_experiment(cfg.experiment or tasks[-1].name, uri)
    return _train_tracked(cfg, tasks, hp)


def _train_tracked(cfg, tasks, hp) -> TrainResult:
    import keras
    import mlflow

    import zoo
    from experiments import plots, tracking

    task = tasks[-1]
    tags = {"family": cfg.model, "dataset": tracking.redact(task.name), "task": task.kind,
            "seed": str(cfg.seed), **tracking.run_environment()}
    with tracking.tracked_run(run_name=cfg.run_name or cfg.model,
                              tags=tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(tracking.redact(params_of(cfg, task, hp)))
        repairs = getattr(task, "repairs", ())
        if repairs:
            mlflow.set_tag("repairs", tracking.redact("; ".join(repairs)))
        mlflow.log_input(task.dataset(), context="training")

        per_fold = []
        for k, fold in enumerate(tasks):
            prefix = f"fold{k + 1}_" if len(tasks) > 1 else ""
            keras.backend.clear_session()
            keras.utils.set_random_seed(cfg.seed)
            model = zoo.build_model(cfg.model, fold.input_shape, fold.outputs, **hp)
            compile_model(model, fold, cfg.learning_rate, cfg.clipnorm,
                          cfg.batch_size, cfg.epochs)
            history = fit(model, fold, cfg, [tracking.MetricLogger(run_id, prefix)])
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
        mlflow.log_figure(plots.learning_curves(history, cfg.model),
                          "plots/learning_curves.png")
        config = dataclasses.asdict(cfg) | {
            "task": task.kind,
            "resolved": {**task.params(), "hyperparameters": hp,
                         "tracking_uri": mlflow.get_tracking_uri()},
            **task.config(),
        }
        mlflow.log_text(tracking.redact(json.dumps(config, indent=2, default=str)),
                        "run_config.json")
        log_model(model, task)
        return TrainResult(run_id, final, history, model, task)


def dataset_of(series):
    """A series as an ``mlflow.data`` dataset, so its digest is recorded."""
    import os
    import warnings

    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    from experiments.tracking import redact

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

    from experiments.tracking import redact

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


def log_model(model, task: Task):
    """The model through MLflow's Keras flavor, with signature and example.

    It takes the task's model-ready inputs; ``run_config.json`` holds what
    maps raw data to them and back (scaler, transforms, vocabulary).
    """
    import os
    import tempfile

    import mlflow
    from mlflow.models import infer_signature

    example = task.test.x[:2]
    signature = infer_signature(example, model.predict(example, verbose=0))
    # mlflow.keras.log_model (3.17) writes the input example before it
    # creates the model folder and crashes; saving into a folder that exists
    # avoids that, and the run gets the same MLmodel folder at "model/".
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model")
        os.makedirs(path)
        mlflow.keras.save_model(model, path, signature=signature,
                                input_example=example,
                                pip_requirements=model_requirements())
        mlflow.log_artifacts(path, "model")
