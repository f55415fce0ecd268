"""The `lstm-zoo` parser: every command, and those of the packages built on this one."""

from __future__ import annotations

import argparse

from experiments.cli.catalogue import cmd_datasets, cmd_inspect, cmd_models
from experiments.cli.flags import add_hp_flags, add_run_flags
from experiments.cli.serving import cmd_forecast, cmd_generate, cmd_serve
from experiments.cli.store import cmd_runs_reap, cmd_tracking_server, cmd_ui
from experiments.cli.training import cmd_compare, cmd_train


def command_groups() -> list:
    """The functions that add the command groups of the packages built on
    ``experiments`` (entry points ``lstm_zoo.commands``: ``tune``)."""
    from importlib.metadata import entry_points

    return [point.load() for point in sorted(
        entry_points(group="lstm_zoo.commands"), key=lambda point: point.name)]


def build_parser(with_hyperparameters: bool = True) -> argparse.ArgumentParser:
    """The CLI's parser. ``with_hyperparameters``: give `train` and `compare`
    a flag per hyperparameter of the registered families (imports the zoo,
    and with it Keras; left out when another command runs, so that
    `lstm-zoo --help` stays instant)."""
    parser = argparse.ArgumentParser(
        prog="lstm-zoo",
        description="Recurrent network zoo with hyperparameter search and "
                    "MLflow tracking.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("models", help="list the model families")
    p.add_argument("--params", action="store_true",
                   help="also build each family with its defaults and show its "
                        "parameter count and example input (imports Keras: seconds)")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("datasets", help="list the named datasets")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train one model and log it to MLflow")
    p.add_argument("--model", required=True, help="family (see `lstm-zoo models`)")
    p.add_argument("--run-name", help="the MLflow run's name (default: the family)")
    add_run_flags(p)
    if with_hyperparameters:
        add_hp_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare",
                       help="train every family with defaults; print a leaderboard")
    p.add_argument("--models", help="all (default) or a comma-separated list")
    add_run_flags(p)
    if with_hyperparameters:
        add_hp_flags(p)
    p.set_defaults(func=cmd_compare)

    # Command groups of packages built on this one (`tune`, from tuning/), as
    # their entry points declare them: this package never imports them.
    for group in command_groups():
        group(sub)

    p = sub.add_parser("generate", help="continue a prompt with a logged "
                       "character-level language model")
    p.add_argument("--run-id", required=True)
    p.add_argument("--prompt", default="the time traveller")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--tracking-uri")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("forecast", help="forecast past the end of the data with a "
                       "logged or registered model")
    p.add_argument("--model", metavar="URI",
                   help="models:/lstm-zoo-airline-passengers@best, runs:/<id>/model or a folder")
    p.add_argument("--run-id", help="the model of this run (runs:/<id>/model)")
    p.add_argument("--csv", help="history to continue, laid out as the training CSV "
                   "(default: the data the model was trained on)")
    p.add_argument("--time-format", metavar="FMT", help="as for train")
    p.add_argument("--fill-missing", action="store_true", help="as for train")
    p.add_argument("--sort", action="store_true", help="as for train")
    p.add_argument("--max-file-mb", type=float, metavar="MB", help="as for train")
    p.add_argument("--steps", type=int, help="steps to forecast (default: the model's "
                   "horizon); more roll forward on the model's own forecasts, and the "
                   "intervals widen")
    p.add_argument("--samples", type=int, metavar="N", help="instead, N simulated futures "
                   "of each series from a distribution model (--loss normal, student_t or "
                   "negative_binomial), one row per series, step and sample, to --out")
    p.add_argument("--seed", type=int, default=0, help="the draws' seed (with --samples)")
    p.add_argument("--out", metavar="CSV", help="write the forecast to this CSV")
    p.add_argument("--plot", metavar="PNG", help="draw history and forecast to this PNG")
    p.add_argument("--tracking-uri")
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("serve", help="serve a model over HTTP (mlflow models serve, in "
                       "this environment)")
    p.add_argument("--model", default="models:/lstm-zoo-airline-passengers@best",
                   metavar="URI", help="default models:/lstm-zoo-airline-passengers@best "
                                       "(what `make demo` registers)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes answering requests, each with its own copy of "
                        "the model (default 1; up to one per CPU core helps under "
                        "concurrent load)")
    p.add_argument("--tracking-uri")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("inspect", help="load a .keras file (safe mode) and show its "
                       "layers and cuDNN eligibility")
    p.add_argument("path", help="a .keras file, e.g. one saved by model.save()")
    p.add_argument("--max-file-mb", type=float, default=100, metavar="MB",
                   help="refuse a file that is, or unpacks to, more than this (default 100)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("runs", help="housekeeping of MLflow runs")
    runs = p.add_subparsers(dest="runs_command", metavar="ACTION")
    runs.required = True
    r = runs.add_parser("reap", help="close as KILLED the RUNNING runs whose "
                        "process on this machine is dead (never a live one)")
    r.add_argument("--tracking-uri")
    r.set_defaults(func=cmd_runs_reap)

    p = sub.add_parser("tracking-server", help="mlflow server on a PostgreSQL database, "
                       "for teams and multi-worker searches")
    p.add_argument("--dir", default=".tracking",
                   help="where the database and artifacts live (default ./.tracking)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only); any "
                        "other turns on MLflow's authentication (users and passwords)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--auth", action="store_true",
                   help="MLflow's authentication on loopback too (always on beyond it); "
                        "the admin's password is in DIR/auth.ini (0600)")
    p.set_defaults(func=cmd_tracking_server)

    p = sub.add_parser("ui", help="open the MLflow UI on the same store")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--tracking-uri")
    p.set_defaults(func=cmd_ui)
    return parser
