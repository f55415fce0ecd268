"""One run configuration: every setting declared once, with its constraint,
its command-line flag and its help.

The CLI builds its flags from these declarations and maps them back without a
table of its own; ``RunConfig`` checks every value where it is declared, with
one error format (the flag, what is allowed, what was received), in the
manner of scikit-learn's parameter constraints. A setting left at ``None``
takes its default from the task (``experiments.tasks``) or, for training
settings, from ``TRAINING_DEFAULTS``: defaults live in one place per task.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

from experiments.errors import ConfigError
from zoo.constraints import Interval, OfType, OneOf, message

# === Constraints ===


PRECISIONS = ("float16", "bfloat16")


@dataclasses.dataclass(frozen=True)
class PartSize:
    """A part of the data: a fraction in (0, 1), a row count >= 1, or a date
    (a string, checked against the data's time column later)."""

    def allows(self, value) -> bool:
        if isinstance(value, str):
            return bool(value.strip())
        return Interval("float", 0, None, low_open=True).allows(value) and (
            value < 1 or value == int(value))

    def describe(self) -> str:
        return "a fraction in (0, 1), a row count >= 1 or a date"


TRANSFORMS = ("log", "diff", "seasonal_diff")
# experiments.forecasting.panel_covariates.CALENDAR's parts.
CALENDAR_PARTS = ("month", "quarter", "dayofweek", "dayofmonth", "dayofyear",
                  "weekofyear", "hour")


@dataclasses.dataclass(frozen=True)
class Calendar:
    """A tuple of calendar parts."""

    def allows(self, value) -> bool:
        return isinstance(value, tuple) and all(p in CALENDAR_PARTS for p in value)

    def describe(self) -> str:
        return f"calendar parts among {list(CALENDAR_PARTS)} (comma-separated)"


@dataclasses.dataclass(frozen=True)
class Transforms:
    """A tuple of transform names."""

    def allows(self, value) -> bool:
        return isinstance(value, tuple) and all(t in TRANSFORMS for t in value)

    def describe(self) -> str:
        return f"transforms among {list(TRANSFORMS)} (comma-separated), or none"


def setting(default=None, constraint=None, *, group=None, help=None, flag=None, **argparse):
    """A ``RunConfig`` field: its default, constraint and command-line flag.

    Args:
        default: ``None`` for "the task's default".
        constraint: checked when a value other than ``None`` is given.
        group: the CLI's group (``data``, ``training``, ``tracking``), or
            ``None`` for a field without a flag of its own.
        help: the flag's help.
        flag: the flag's name, if not ``--<field-name>``.
        **argparse: more ``add_argument`` keywords (``type``, ``nargs``...).
    """
    meta = {"constraint": constraint, "group": group, "help": help, "flag": flag,
            "argparse": argparse}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=type(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


_INT_1 = Interval("int", 1)
_POSITIVE = Interval("float", 0, low_open=True)
_TEXT = OfType((str,), "a string")
# How a forecast combines with the statistical baselines
# (experiments.forecasting.combination.METHODS, or none).
COMBINE = ("none", "inverse_mse", "least_squares")
# What a forecasting network trains with: squared error (a mean forecast, with
# conformal intervals around it), the pinball loss of a quantile head, or the
# likelihood of a distribution head (zoo.quantile_levels.DISTRIBUTIONS).
LOSSES = ("mse", "quantile", "normal", "student_t", "negative_binomial", "search")
# What ``tune --loss search`` chooses among, by each trial's validation CRPS.
SEARCHED_LOSSES = ("mse", "quantile", "normal", "student_t")
_PATH = OfType((str,), "a file path")
_NAMES = OfType((tuple,), "column names")


@dataclasses.dataclass(frozen=True)
class ModelName:
    """A registered model's name: letters, digits, '-', '_' and '.'."""

    def allows(self, value) -> bool:
        import re

        return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}",
                                                       value) is not None

    def describe(self) -> str:
        return ("a registered model name of letters, digits, '-', '_' and '.' (at most "
                "200, starting with a letter or digit)")


_MODEL_NAME = ModelName()


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; flattened into MLflow params.

    ``None`` means "the default": the dataset's or the task's for data
    settings (see ``experiments.tasks``), ``TRAINING_DEFAULTS`` for
    training settings. ``resolved()`` fills those in.
    """

    model: str = "stacked_lstm"
    data: str | None = setting(
        None, _TEXT, group="data", help="named dataset (see `lstm-zoo datasets`); "
        "default airline")
    dataset_options: dict = setting(
        {}, OfType((dict,), "KEY=VALUE options"), group="data", flag="data-option",
        help="option of a generated dataset, e.g. count=100 (at most 50 million numbers "
             "in all)", action="append", metavar="KEY=VALUE")
    csv: str | None = setting(None, _PATH, group="data",
                              help="your own CSV file instead of --data")
    npy: str | None = setting(None, _PATH, group="data",
                              help="frames (samples, time, rows, cols[, channels])")
    npz: str | None = setting(None, _PATH, group="data",
                              help="labelled sequences: arrays x and y")
    text: str | None = setting(None, _PATH, group="data",
                               help="a UTF-8 text for a character-level model")
    label_col: str | None = setting(
        None, _TEXT, group="data", metavar="COL",
        help="with --csv: sequence classification, one label per id")
    id_col: str | None = setting(None, _TEXT, group="data", metavar="COL",
                                 help="the series id: with --time-col and one --target, a "
                                      "panel of many series in long format, one network "
                                      "trained over all of them; with --label-col, the "
                                      "sequence id")
    target: tuple[str, ...] = setting((), _NAMES, group="data", nargs="+", metavar="COL",
                                      help="column(s) to forecast")
    features: tuple[str, ...] = setting((), _NAMES, group="data", nargs="+",
                                        metavar="COL", help="extra input columns")
    future_features: tuple[str, ...] = setting(
        (), _NAMES, group="data", nargs="+", metavar="COL",
        help="with --id-col: columns known in advance (a holiday, a promotion, a "
             "temperature forecast), read over the forecast horizon too; a forecast then "
             "needs their rows for the dates forecast, the target left empty")
    static: tuple[str, ...] = setting(
        (), _NAMES, group="data", nargs="+", metavar="COL",
        help="with --id-col: columns with one value per series (a region, a category): "
             "text becomes a learned embedding, numbers pass through")
    id_embedding: bool = setting(
        False, OfType((bool,), "true or false"), group="data", action="store_true",
        help="with --id-col: the series id as one more static input, so each series "
             "gets a learned embedding (and es_rnn smoothing coefficients of its own); a "
             "series not seen in training is forecast with the shared 'unknown' one")
    calendar: tuple[str, ...] = setting(
        (), Calendar(), group="data", metavar="PART[,PART]",
        help="with --id-col: calendar inputs derived from the timestamps: "
             + ", ".join(CALENDAR_PARTS) + " (comma-separated)")
    time_col: str | None = setting(None, _TEXT, group="data", metavar="COL",
                                   help="timestamp column")
    time_format: str | None = setting(
        None, _TEXT, group="data", metavar="FMT",
        help="how --time-col is written, e.g. '%%d/%%m/%%Y' (default: ISO 8601, such "
             "as 2024-01-31 or 1949-01, quarters like 1959Q1 or ISO weeks like 2024-W05)")
    max_file_mb: float | None = setting(
        None, _POSITIVE, group="data", type=float, metavar="MB",
        help="refuse input files (CSV, text, .npy, .npz) larger than this, or archives "
             "that unpack to more (default 100)")
    max_length: int | None = setting(
        None, _INT_1, group="data", type=int, metavar="N",
        help="with --id-col: sequences longer than N steps keep their last N (default: "
             "every sequence padded to the longest)")
    stateful: bool = setting(
        False, OfType((bool,), "true or false"), group="data", action="store_true",
        help="character model: carry the recurrent state from each window to the next "
             "(truncated backpropagation through time; `train` and `compare` only)")
    fill_missing: bool = setting(False, OfType((bool,), "true or false"), group="data",
                                 action="store_true",
                                 help="interpolate empty cells instead of failing")
    sort: bool = setting(False, OfType((bool,), "true or false"), group="data",
                         action="store_true",
                         help="sort rows by --time-col instead of failing")
    window: int | None = setting(None, _INT_1, group="data", type=int,
                                 help="input steps per sample (default: 24 for a forecast; tune "
                                      "searches it when left out)")
    horizon: int | None = setting(None, _INT_1, group="data", type=int,
                                  help="steps to forecast")
    val_size: Any = setting(None, PartSize(), group="data",
                            help="fraction, row count or start date")
    test_size: Any = setting(None, PartSize(), group="data",
                             help="fraction, row count or start date")
    season: int | None = setting(
        None, _INT_1, group="data", type=int,
        help="season length (default: from the time column's frequency)")
    transforms: tuple[str, ...] | None = setting(
        None, Transforms(), group="data", flag="transform", metavar="T[,T]",
        help="log, diff, seasonal_diff, comma-separated, or none (default: "
             "chosen from the training rows; tune searches them when left out)")
    folds: int | None = setting(None, _INT_1, group="data", type=int,
                                help="rolling-origin folds (default 1)")
    refit: bool | None = setting(
        None, OfType((bool,), "true or false"), group="forecast",
        action=argparse.BooleanOptionalAction,
        help="after training, fit the model again on all the data (train, validation "
             "and test) for the epochs early stopping chose, and serve that one; the test "
             "metrics stay those of the model that never saw the test period (default: "
             "on for tune, off for train)")
    autoregressive: bool | None = setting(
        None, OfType((bool,), "true or false"), group="forecast",
        action=argparse.BooleanOptionalAction,
        help="add a linear autoregression on the window to every forecasting network "
             "(all families but seq2seq_lstm), started at its least-squares fit; the "
             "network learns what it misses (default: on)")
    combine: str | None = setting(
        None, OneOf(COMBINE), group="forecast", choices=COMBINE,
        help="serve the network combined with the statistical baselines (ETS, SARIMA), "
             "weighted on the validation forecasts by inverse squared error or by "
             "constrained least squares; a combination that does worse there than its "
             "best member is not served, that member is (default inverse_mse; none: "
             "the network alone)")
    intervals: tuple[int, ...] | None = setting(
        None, OfType((tuple,), "whole percentages such as 80,95"), group="forecast",
        metavar="L[,L]", help="prediction intervals of the served model, in percent "
        "(default 80,95; none for no intervals)")
    loss: str | None = setting(
        None, OneOf(LOSSES), group="forecast", choices=LOSSES,
        help="mse: forecast the mean, intervals from its validation errors; quantile: "
             "forecast quantiles (pinball loss, never crossing), the median served as the "
             "forecast, each interval its quantiles calibrated on the validation errors "
             "(conformalized quantile regression); normal, student_t: forecast a "
             "distribution (likelihood), its quantiles served and calibrated as "
             "quantile's; negative_binomial: the same for counts (whole numbers >= 0, "
             "neither logged nor differenced), intervals in whole numbers; search (tune "
             "only): each trial one of mse, quantile, normal and student_t, ranked by "
             "its validation CRPS (default mse); a panel (--id-col) takes all but "
             "negative_binomial")
    quantiles: tuple[float, ...] | None = setting(
        None, OfType((tuple,), "levels in (0, 1) such as 0.1,0.5,0.9"), group="forecast",
        metavar="Q[,Q]", help="the quantiles a --loss other than mse serves, "
        "comma-separated, the "
        "median among them; served as q10, q50, ... columns (default: 0.5 and the two "
        "ends of each interval, 0.025,0.1,0.5,0.9,0.975 for 80,95)")
    epochs: int | None = setting(None, _INT_1, group="training", type=int,
                                 help="maximum epochs (early stopping on; default: enough for "
                                      "about 3,000 batches, between 50 and 300)")
    batch_size: int | None = setting(None, _INT_1, group="training", type=int,
                                     help="default 32 (train and compare; tune searches it)")
    learning_rate: float | None = setting(None, _POSITIVE, group="training", type=float,
                                          help="Adam's learning rate (default 0.001; "
                                               "tune searches it)")
    clipnorm: float | None = setting(None, _POSITIVE, group="training", type=float,
                                     help="clip gradients to this norm")
    patience: int | None = setting(None, _INT_1, group="training", type=int,
                                   help="early-stopping patience (default a tenth of the "
                                        "default epochs, 10 to 30)")
    mixed_precision: str | None = setting(
        None, OneOf(PRECISIONS), group="training", choices=PRECISIONS,
        help="compute in float16 or bfloat16 on a GPU, keeping float32 weights, "
             "outputs and loss (refused on a CPU, where it is slower)")
    data_parallel: bool | None = setting(
        None, OfType((bool,), "true or false"), group="training", action="store_true",
        help="train on every GPU this process sees (on a CPU-only machine, its logical "
             "CPU devices), one copy of the model on each, gradients averaged "
             "(tf.distribute.MirroredStrategy); tune: each trial so. train with a cluster "
             "in TF_CONFIG: one model across its processes (MultiWorkerMirroredStrategy)")
    seed: int | None = setting(None, Interval("int", 0), group="training", type=int,
                               help="seeds Python, NumPy and Keras (default 42)")
    hyperparameters: dict = setting({}, OfType((dict,), "the family's hyperparameters"))
    experiment: str | None = setting(
        None, _TEXT, group="tracking", help="MLflow experiment (default: dataset name)")
    run_name: str | None = setting(None, _TEXT)
    model_name: str | None = setting(
        None, _MODEL_NAME, group="tracking",
        help="register the served model under this name (tune: default "
             "lstm-zoo-<dataset>-<target>; train registers only when given)")
    tracking_uri: str | None = setting(
        None, _TEXT, group="tracking",
        help="MLflow store (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    verbose: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            constraint = field.metadata.get("constraint")
            value = getattr(self, field.name)
            if constraint is not None and value is not None and not constraint.allows(value):
                raise ConfigError(message(flag_of(field.name), constraint, value))

    def given(self) -> set[str]:
        """The settings given a value (not left at their default)."""
        return {f.name for f in dataclasses.fields(self)
                if f.metadata.get("group") and getattr(self, f.name) != _default(f)}

    def resolved(self, task_defaults: dict | None = None) -> RunConfig:
        """This configuration with every ``None`` setting set to its default:
        ``task_defaults`` first, then ``TRAINING_DEFAULTS``."""
        defaults = {**TRAINING_DEFAULTS, **(task_defaults or {})}
        return dataclasses.replace(self, **{
            k: v for k, v in defaults.items() if getattr(self, k, 0) is None})


# Training settings every task shares, and their defaults (a task may change
# them in its own DEFAULTS, as the language model does for clipnorm).
TRAINING = ("epochs", "batch_size", "learning_rate", "clipnorm", "patience",
            "mixed_precision", "data_parallel", "seed")
TRAINING_DEFAULTS = {"epochs": 200, "batch_size": 32, "learning_rate": 1e-3,
                     "patience": 20, "seed": 42, "folds": 1, "data_parallel": False}
TRACKING = ("experiment", "tracking_uri", "model_name")


def budget(n_train: int, batch_size: int = 32) -> tuple[int, int]:
    """Default epochs and early-stopping patience for ``n_train`` training
    samples: about 3,000 optimizer steps (a short series gives few batches
    per epoch, so it needs more epochs to converge), between 50 and 300
    epochs, and a patience of a tenth of them (10 to 30). Early stopping
    ends most runs well before the limit; the limit is for those still
    improving."""
    steps = max(1, math.ceil(n_train / batch_size))
    epochs = min(300, max(50, math.ceil(3000 / steps)))
    return epochs, min(30, max(10, epochs // 10))
# What a search decides itself, so `tune` refuses these settings.
SEARCHED = ("batch_size", "learning_rate")


def _default(field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def flag_of(name: str) -> str:
    """The command-line flag of setting ``name`` (``--transform`` for
    ``transforms``)."""
    for field in dataclasses.fields(RunConfig):
        if field.name == name:
            return "--" + (field.metadata.get("flag") or name.replace("_", "-"))
    return "--" + name.replace("_", "-")


def check_applicable(cfg: RunConfig, kind: str, takes: tuple[str, ...],
                     command: str = "train") -> None:
    """Refuse any setting given that the task ``kind`` (whose data settings
    are ``takes``) or the ``command`` would not use.

    Raises:
        ConfigError: naming the flag, the task or command, and what it takes.
    """
    allowed = set(takes) | set(TRAINING) | set(TRACKING)
    unused = sorted(cfg.given() - allowed)
    if unused:
        shown = sorted(flag_of(n) for n in takes)
        raise ConfigError(
            f"{flag_of(unused[0])} is not used by the {kind} task; it takes "
            f"{', '.join(shown)} (and the training and tracking flags)")
    if command == "compare" and cfg.model_name:
        raise ConfigError("--model-name registers one model; `compare` trains several. "
                          "Use it with `train` or `tune`")
    if command == "tune" and cfg.stateful:
        raise ConfigError("--stateful is for `train` and `compare`: `tune`'s trials "
                          "train on shuffled windows; leave --stateful out")
    if command == "tune":
        searched = sorted(cfg.given() & set(SEARCHED))
        if searched:
            raise ConfigError(f"{flag_of(searched[0])} is searched by `tune` (see "
                              f"--max-trials); leave it out, or use `train` to set it")

