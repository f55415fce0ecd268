"""The learning tasks: one module each, and the one table that maps a task
kind to its module.

Every task module declares:

- ``KIND``: the task's name (its ``Task.kind``, the run's ``task`` tag);
- ``DATASETS``: its named datasets, ``{name: loader}``;
- ``TAKES``: the data settings of ``RunConfig`` it uses (any other data
  setting given is refused, naming it);
- ``DEFAULTS``: its defaults for those settings, in one place;
- ``claims(cfg)``: whether the user's files call for this task;
- ``make_tasks(cfg)``: its ``Task`` objects (one per rolling-origin fold).

A new task is one new module plus one entry in ``TASKS``.
"""

from __future__ import annotations

import dataclasses

from experiments.config import RunConfig, budget, check_applicable
from experiments.errors import ConfigError, DataError
from experiments.tasks import classification, forecast, frames, language_model, panel
from experiments.tasks.base import Split, Task

# Kind -> module. The order is the one in which user files are claimed:
# a CSV with --label-col is classification before it is a series, and one
# with --id-col (and no --label-col) a panel before it is one series.
TASKS = {
    frames.KIND: frames,
    language_model.KIND: language_model,
    classification.KIND: classification,
    panel.KIND: panel,
    forecast.KIND: forecast,
}
DEFAULT_DATASET = "airline"

__all__ = ["DEFAULT_DATASET", "Split", "TASKS", "Task", "list_datasets", "load_tasks",
           "task_module"]


def task_module(cfg: RunConfig):
    """The module of the task the configured data calls for."""
    for module in TASKS.values():
        if module.claims(cfg):
            return module
    name = cfg.data or DEFAULT_DATASET
    for module in TASKS.values():
        if name in module.DATASETS:
            return module
    raise DataError(f"unknown dataset {name!r}; named datasets: "
                    f"{sorted(list_datasets())} (or pass a file: --csv, --npy, --npz "
                    f"or --text)")


def list_datasets() -> dict[str, tuple[str, str]]:
    """Named datasets: ``{name: (task, one-line description)}``."""
    return {name: (module.KIND, loader.__doc__.strip().splitlines()[0])
            for module in TASKS.values() for name, loader in module.DATASETS.items()}


def load_tasks(cfg: RunConfig, command: str = "train",
               series=None) -> tuple[RunConfig, list[Task]]:
    """Check ``cfg`` against its task and ``command``, fill in the defaults,
    and load, validate and prepare the data (``series``: a forecast's data
    already in memory, as ``data.frame_series`` makes it from a DataFrame).

    Returns:
        The resolved configuration and the task's ``Task`` objects (one per
        rolling-origin fold; one for every task but forecasting).

    Raises:
        ConfigError: a setting the task or command does not use, or one
            that cannot work.
        DataError: bad data.
    """
    if series is None:
        module = task_module(cfg)
    else:  # a DataFrame already read: a panel (experiments.data.panel) or one series
        module = panel if isinstance(series, panel.Panel) else forecast
    check_applicable(cfg, module.KIND, module.TAKES, command)
    if cfg.loss == "search" and command != "tune":
        raise ConfigError(f"--loss search lets tune choose the head by validation CRPS; "
                          f"{command} trains one: give --loss mse, quantile, normal, "
                          f"student_t or negative_binomial")
    use_precision(cfg.mixed_precision)
    if cfg.data is None and series is None and not module.claims(cfg):
        cfg = dataclasses.replace(cfg, data=DEFAULT_DATASET)
    resolved = cfg.resolved(getattr(module, "TRAINING_DEFAULTS", None))
    tasks = (module.make_tasks(resolved) if series is None
             else module.make_tasks(resolved, series))
    # Epochs and patience the user left out fit the data size (config.budget).
    epochs, patience = budget(len(tasks[-1].train), resolved.batch_size)
    resolved = dataclasses.replace(
        resolved, epochs=cfg.epochs or epochs,
        patience=cfg.patience or patience)
    return resolved, tasks


def use_precision(mixed: str | None) -> None:
    """Set Keras' global dtype policy for the models this process builds:
    ``"mixed_float16"``/``"mixed_bfloat16"`` for ``--mixed-precision``
    (weights, each head's outputs and the loss stay float32; Keras scales a
    float16 loss itself), else float32.

    Raises:
        ConfigError: mixed precision asked for on a machine without a GPU,
            where float16 and bfloat16 arithmetic is emulated and slower.
    """
    import keras

    if mixed is not None:
        from experiments.tracking import device_name

        if device_name() != "gpu":
            raise ConfigError(
                f"--mixed-precision {mixed} needs a GPU: the {keras.config.backend()} "
                f"backend sees none, and on a CPU {mixed} arithmetic is slower than "
                f"float32; leave --mixed-precision out")
    keras.mixed_precision.set_global_policy(f"mixed_{mixed}" if mixed else "float32")

