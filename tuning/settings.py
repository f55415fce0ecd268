"""What a search is: the run's settings plus the families, tuner and budget,
each checked in the one vocabulary of constraints (``zoo.constraints``), and
what a search returns."""

from __future__ import annotations

import dataclasses
from typing import Any

from experiments.config import RunConfig
from experiments.errors import ConfigError, TrainingError
from tuning import folder as folder_mod
from zoo.constraints import Interval, OneOf, message

TUNERS = ("random", "bayesian", "hyperband", "grid")
ENSEMBLE_OF = ("trials", "seeds")
DEFAULT_TRIALS = 10


class SearchError(TrainingError):
    """The search could not produce a model (e.g. every trial failed); like
    any ``TrainingError``, the command exits 1 and the run is FAILED."""


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """A search: the data and training settings of a ``train`` run, plus the
    families, tuner and budget."""

    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    models: tuple[str, ...] = ()          # empty: every family that fits
    tuner: str = "random"
    max_trials: int | None = None        # default 10; Hyperband sets its own
    hyperband_iterations: int = 1         # Hyperband's budget: its full sweeps
    objective: str = "val_loss"
    name: str | None = None               # default: dataset-tuner-models
    directory: str = "tuner"
    fresh: bool = False
    register: bool = True
    ensemble: int = 1                     # serve the mean of K models' forecasts:
    ensemble_of: str = "trials"           # the top K trials, or K seeds of the best
    # Several processes (see tuning/distributed.py): None runs the whole search
    # here; "chief" serves the oracle at `address`; "worker" trains trials for
    # the chief at `address`.
    role: str | None = None
    address: tuple[str, int] | None = None
    connect_timeout: float = 60.0         # a worker gives up on its chief after this
    worker_timeout: float = 60.0          # a silent worker's trial goes to another
    data_parallel: bool = False           # each trial on all its GPUs (MirroredStrategy)
    # The chief hands out no trial until this many workers have asked for one
    # (or connect_timeout has passed), so that the work is spread over them.
    expect_workers: int = 0

    def __post_init__(self):
        for name, constraint in SETTINGS.items():
            value = getattr(self, name)
            if value is not None and not constraint.allows(value):
                raise ConfigError(message("--" + name.replace("_", "-"), constraint, value))


# What each search setting may be (the run's own are RunConfig's), in the
# vocabulary builders and RunConfig use; None leaves a setting to its default.
SETTINGS = {
    "tuner": OneOf(TUNERS), "max_trials": Interval("int", 1),
    "hyperband_iterations": Interval("int", 1),
    # Selection never looks at the test split: validation loss, training loss,
    # or (what a search of windows and transforms ranks by) validation RMSE.
    "objective": OneOf(("val_loss", "loss", "val_rmse", "val_crps")),
    "ensemble": Interval("int", 1), "ensemble_of": OneOf(ENSEMBLE_OF),
    "role": OneOf(("chief", "worker")),
    "connect_timeout": Interval("float", 0, low_open=True),
    "worker_timeout": Interval("float", 0, low_open=True),
    "expect_workers": Interval("int", 0),
}


@dataclasses.dataclass
class SearchResult:
    parent_run_id: str
    best_hyperparameters: dict
    best_score: float
    test_metrics: dict
    trials: list[dict]
    registered: tuple[str, str] | None     # (model name, version)
    task: Any = None
    refit: bool = False                    # the served model was refit on all the data
    ensemble_metrics: dict = dataclasses.field(default_factory=dict)  # with --ensemble K
    objective: str = "val_loss"            # what trials were ranked by
    epochs: int | None = None              # each trial's epoch limit


def search_name(cfg: SearchConfig, dataset: str, families) -> str:
    """``--name``, checked; by default ``<dataset>-<tuner>-<models>`` made safe
    as a folder name (a CSV's file name may hold any character)."""
    if cfg.name is not None:
        return folder_mod.check_name(cfg.name)
    models = "all" if not cfg.models else "-".join(families)
    return folder_mod.safe_name(f"{dataset}-{cfg.tuner}-{models}")


def check_budget(cfg: SearchConfig) -> SearchConfig:
    """The search's budget: ``--max-trials`` (default 10) for random,
    bayesian and grid; for Hyperband, whose brackets fix the number of
    trials from ``--epochs``, ``--hyperband-iterations`` (full sweeps)."""
    if cfg.tuner == "hyperband":
        if cfg.max_trials is not None:
            raise ConfigError(
                "--max-trials does not apply to --tuner hyperband: Hyperband runs as many "
                "trials as its brackets hold, set by --epochs (the most a trial trains) "
                "and --hyperband-iterations (full sweeps, default 1); leave --max-trials "
                "out")
        return cfg
    if cfg.hyperband_iterations != 1:
        raise ConfigError(f"--hyperband-iterations applies to --tuner hyperband only; "
                          f"the {cfg.tuner} search runs --max-trials trials")
    if cfg.max_trials is None:
        return dataclasses.replace(cfg, max_trials=DEFAULT_TRIALS)
    return cfg


def clipnorm_space(run: RunConfig, task):
    """Gradient clipping for the search: the user's ``--clipnorm`` for every
    trial, else what the task searches (language models), else off."""
    from zoo.space import Choice

    if run.clipnorm is not None:
        return Choice((run.clipnorm,), default=run.clipnorm)
    return task.clipnorm_space
