"""The ``lstm-zoo`` command line.

Thin by design: each subcommand turns its flags into a config and calls one
plain function from ``zoo``, ``experiments`` or ``tuning``. Heavy imports
(TensorFlow, Keras, MLflow) happen inside the handlers, so
``lstm-zoo --help`` stays instant.

Exit codes: 0 success, 1 a run failed, 2 bad input or settings (nothing was
trained and no MLflow run was created), 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys


def cmd_models(args) -> int:
    if not args.params:
        # Read from the families' source: no Keras, no TensorFlow, no models.
        from experiments.catalog import catalogue

        rows = [(e.name, ",".join(e.heads), e.summary) for e in catalogue()]
        print(table([("model", "heads", ""), *rows]))
        print("\nParameter counts and example inputs: lstm-zoo models --params "
              "(builds each family, a few seconds).")
        return 0
    import zoo

    rows = []
    for name in zoo.list_models():
        info = zoo.get(name)
        shape, outputs = info.example_input
        model = zoo.build_model(name, shape, outputs)
        rows.append((name, f"{model.count_params():,}", str(shape),
                     ",".join(info.heads), info.summary))
    print(table([("model", "params", "input", "heads", ""), *rows]))
    print("\nParameter counts use the default hyperparameters; forecasters "
          "predict 12 steps, conv_lstm one frame.")
    return 0


def cmd_datasets(args) -> int:
    from experiments.tasks import list_datasets

    rows = [(name, task, doc) for name, (task, doc) in list_datasets().items()]
    print(table([("dataset", "task", "description"), *rows]))
    print("\nYour own data:\n"
          "  forecast        --csv PATH --target COL [--features COL ...] [--time-col COL]\n"
          "  frames          --npy PATH   (samples, time, rows, cols[, channels])\n"
          "  language model  --text PATH  (any UTF-8 text)\n"
          "  classification  --npz PATH (x, y)  or  --csv PATH --id-col COL "
          "--label-col COL [--time-col COL]")
    return 0


def hyperparameter_flags() -> dict[str, type]:
    """``{name: type}`` of every hyperparameter of every registered family
    (its default's type), each a flag of `train` and `compare`: a family's
    new hyperparameter is a flag without a change here. Those a task sets
    (``autoregressive``, a ``RunConfig`` setting of its own) are left out."""
    import dataclasses

    import zoo
    from experiments.config import RunConfig

    settings = {f.name for f in dataclasses.fields(RunConfig)}
    flags = {}
    for name in zoo.list_models():
        for key, default in zoo.get(name).defaults.items():
            if (key != "head" and key not in flags and key not in settings
                    and default is not None):
                flags[key] = type(default)
    return flags


def _parse_pairs(items, flag) -> dict:
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag} must look like KEY=VALUE; received {item!r}")
        out[key.replace("-", "_")] = _literal(value)
    return out


def run_config(args, **overrides):
    """The ``RunConfig`` of the parsed flags: every setting the command has a
    flag for, mapped by name (``RunConfig`` declares the flags)."""
    import dataclasses

    from experiments.config import RunConfig

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
             if f.metadata.get("group") and getattr(args, f.name, None) is not None}
    # The few flags whose text needs reading: lists, KEY=VALUE pairs, numbers.
    if "dataset_options" in given:
        given["dataset_options"] = _parse_pairs(given["dataset_options"], "--data-option")
    if "transforms" in given:
        given["transforms"] = tuple(t for t in given["transforms"].split(",")
                                    if t and t != "none")
    for key in ("target", "features"):
        if key in given:
            given[key] = tuple(given[key])
    if "intervals" in given:
        from experiments.forecaster import check_levels

        given["intervals"] = check_levels(
            t for t in given["intervals"].split(",") if t and t != "none")
    for key in ("val_size", "test_size"):
        if key in given:
            given[key] = _literal(given[key])
    hp = {k: getattr(args, k) for k in hyperparameter_flags()
          if getattr(args, k, None) is not None}
    hp.update(_parse_pairs(getattr(args, "param", None), "--param"))
    if hp:
        given["hyperparameters"] = hp
    given.update(overrides)
    return RunConfig(**{k: v for k, v in given.items() if v is not None})


def cmd_train(args) -> int:
    from experiments.train import run_training

    cfg = run_config(args, model=args.model, run_name=args.run_name, verbose=2)
    result = run_training(cfg)
    print()
    print(metrics_table(result.task, result.metrics, cfg.model))
    print(skill_lines(result.task, result.metrics, "the model"))
    for repair in result.task.repairs:
        print(f"note: {repair}")
    if result.registered:
        name, version, note = result.registered
        if note:
            print(f"note: {note}")
        print(f"\nregistered as {name} version {version} (alias 'best')")
    print(f"\nrun {result.run_id}; see it with `lstm-zoo ui`")
    return 0


def skill_lines(task, m, who) -> str:
    """The model's skill against the seasonal naive and the best baseline,
    and what each statistical baseline was (or why it was skipped)."""
    lines = [""]
    for key, against in (("test_skill_vs_seasonal_naive", "seasonal naive"),
                         ("test_skill_vs_best_baseline", None)):
        value = m.get(key)
        if value is None:
            continue
        if against is None:
            from experiments.metrics import best_baseline

            # "test_seasonal_naive_" -> "seasonal_naive": the baselines' names
            labels = {prefix[len("test_"):-1]: label for label, prefix in task.baselines()}
            against = f"the best baseline, {labels[best_baseline(m, labels, 'test_')]}"
        lines.append(f"skill vs {against}: {value:+.3f} ({who} "
                     f"{'beats' if value > 0 else 'LOSES TO'} it)")
    lines += [f"  {note}" for note in task.baseline_notes()]
    from experiments.tasks.forecast import SEARCHED

    reason = task.transforms_reason
    if reason == SEARCHED:
        p = task.prepared
        lines.append(f"window {p.window} and transforms "
                     f"{'+'.join(p.transforms) or 'none'} {SEARCHED}")
    elif reason:
        lines.append(f"transforms chosen from the training rows: {reason}")
    return "\n".join(lines)


def metrics_table(task, m, label) -> str:
    """The model's test metrics next to the task's baselines."""
    names = task.metrics_shown
    rows = [("", *names)]
    for name, prefix in ((label, "test_"), *task.baselines()):
        rows.append((name, *(f"{m[prefix + k]:.4g}" for k in names)))
    return (f"{task.kind} on {task.name}, test split ({len(task.test)} samples):\n"
            + table(rows))


def cmd_compare(args) -> int:
    from experiments.compare import compare, leaderboard

    cfg = run_config(args)
    models = args.models.split(",") if args.models and args.models != "all" else None
    results, skipped, task = compare(cfg, models)
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    print()
    print(table(leaderboard(results, task)))
    failed = [r for r in results if r.error]
    print("\nOpen the MLflow UI with `lstm-zoo ui` (or `make ui`) to compare "
          "the runs side by side.")
    return 1 if failed else 0


def cmd_generate(args) -> int:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from experiments import served, tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    tracking.check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    shown = tracking.redact(uri)
    try:
        run = mlflow.MlflowClient(uri).get_run(args.run_id)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ValueError(f"no run {args.run_id!r} in {shown}; `lstm-zoo ui` lists "
                             f"the runs, or pass --tracking-uri") from None
        raise
    task = run.data.tags.get("task", "unknown")
    if task != "language_model" or not (run.outputs and run.outputs.model_outputs):
        raise ValueError(f"run {args.run_id!r} in {shown} has no language model (it is a "
                         f"{task} run); generate needs a run trained with --text or "
                         f"--data timemachine")
    if args.length < 1:
        raise ValueError(f"--length must be >= 1; received {args.length}")
    if not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0; received {args.temperature}")
    model, _ = served.load(f"runs:/{args.run_id}/model", kind="language_model")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    out = model.predict(pd.DataFrame({"prompt": [args.prompt]}), params={
        "length": args.length, "temperature": args.temperature, "seed": seed})
    print(out["text"].iloc[0])
    return 0


def cmd_forecast(args) -> int:
    import mlflow

    from experiments import served, tracking

    if bool(args.model) == bool(args.run_id):
        raise ValueError("give the model to forecast with: --model URI (such as "
                         "models:/lstm-zoo-airline-passengers@best or runs:/<id>/model) "
                         "or --run-id ID")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be an int >= 1; received {args.steps}")
    uri = args.model or f"runs:/{args.run_id}/model"
    if uri.startswith(("models:/", "runs:/")):
        store = tracking.resolve_uri(args.tracking_uri)
        tracking.check_reachable(store)
        mlflow.set_tracking_uri(store)
    model, inner = served.load(uri)
    forecaster = inner.forecaster
    if args.csv:
        history = served.history_from_csv(
            args.csv, forecaster, time_format=args.time_format,
            fill_missing=args.fill_missing, sort=args.sort, max_file_mb=args.max_file_mb)
        source = args.csv
    else:
        history = inner.history  # the end of the data the model was trained on
        source = "the data it was trained on"
    params = {"steps": args.steps} if args.steps else None
    table_ = model.predict(history, params=params)
    steps = len(table_)
    pre = forecaster.preprocessor
    rolled = (f"; steps past {pre.horizon} roll forward on the model's own forecasts"
              if steps > pre.horizon else "")
    print(f"forecast of {steps} step(s) after {_last_time(history, forecaster)} from "
          f"{source}{' (refit on all its data)' if forecaster.refit else ''}{rolled}:")
    print(table([tuple(table_.columns)] + [
        tuple(_cell(v) for v in row) for row in table_.itertuples(index=False)]))
    if args.out:
        table_.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    if args.plot:
        from experiments import plots

        fig = plots.future_plot(history, table_, forecaster.time_col, pre.targets,
                                forecaster.levels, f"forecast from {uri}")
        fig.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")
    return 0


def _last_time(history, forecaster) -> str:
    if forecaster.time_col:
        return str(history[forecaster.time_col].iloc[-1]).removesuffix("T00:00:00")
    return f"row {len(history)}"


def _cell(value) -> str:
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S").removesuffix(" 00:00:00")
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def cmd_inspect(args) -> int:
    import zoo

    model = zoo.load_model(args.path, compile=False, max_file_mb=args.max_file_mb)
    model.summary(print_fn=lambda line, **_: print(line))
    report = zoo.cudnn_report(model)
    if report:
        print("\ncuDNN (fused GPU kernels):")
        for status in report:
            print(f"  {status}")
    return 0


def cmd_tracking_server(args) -> int:
    from experiments import server

    return server.run(args.dir, args.host, args.port)


def cmd_runs_reap(args) -> int:
    from experiments import tracking

    uri = tracking.init_store(tracking.resolve_uri(args.tracking_uri))
    closed = tracking.reap_orphans(uri)
    for run_id in closed:
        print(f"closed {run_id} as KILLED (its process is gone)")
    print(f"{len(closed)} orphaned run(s) closed in {uri}")
    return 0


def cmd_ui(args) -> int:
    from experiments import tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    root = tracking.artifact_root(uri)
    if root:
        command += ["--default-artifact-root", root]
    url = tracking.ui_url(f"http://{args.host}:{args.port}", tracking.latest_experiment(uri))
    print(f"MLflow UI for {tracking.redact(uri)}; open {url} (Ctrl-C stops)")
    if args.host not in ("127.0.0.1", "localhost"):
        print("warning: the UI has no authentication; anyone who can reach "
              f"{args.host}:{args.port} can read and change your runs")
    os.execv(sys.executable, command)
    return 0  # not reached


def cmd_serve(args) -> int:
    from experiments import tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    # `mlflow models serve` finds models:/ and runs:/ URIs in this store.
    os.environ["MLFLOW_TRACKING_URI"] = uri
    # MLflow starts its web server (uvicorn) by name: from this environment.
    here = os.path.dirname(sys.executable)
    os.environ["PATH"] = here + os.pathsep + os.environ.get("PATH", "")
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", args.model,
               "--env-manager", "local", "--host", args.host, "--port", str(args.port)]
    print(f"serving {args.model} from {tracking.redact(uri)} at "
          f"http://{args.host}:{args.port}/invocations (Ctrl-C stops)", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def _store_error(err) -> str | None:
    """One line naming the MLflow store and its error, if ``err`` is one
    (a read-only SQLite file, a full disk, a database that went away)."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return None
    import sqlalchemy.exc

    if not isinstance(err, (mlflow.exceptions.MlflowException, sqlalchemy.exc.SQLAlchemyError)):
        return None
    from experiments.tracking import redact

    text = " ".join(str(getattr(err, "message", err)).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return (f"the MLflow store {redact(mlflow.get_tracking_uri())} failed: "
            f"{redact(text)}")


def _literal(value):
    """'0.2' -> 0.2, '24' -> 24, 'true' -> True, else the string."""
    if value is None or not isinstance(value, str):
        return value
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            number = cast(value)
        except ValueError:
            continue
        # float() also reads "nan" and "inf"; those are words here.
        if number == number and abs(number) != float("inf"):
            return number
    return value


def table(rows) -> str:
    """Rows as aligned text; numbers right-aligned, the first row a header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        cells = []
        for c, w in zip(row, widths, strict=True):
            c = str(c)
            numeric = c[:1].isdigit() or (c[:1] in "+-" and c[1:2].isdigit())
            cells.append(c.rjust(w) if numeric and j else c.ljust(w))
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_run_flags(p):
    """The data, training and tracking flags, as ``RunConfig`` declares them."""
    import dataclasses

    from experiments.config import RunConfig

    groups = {}
    for field in dataclasses.fields(RunConfig):
        group = field.metadata.get("group")
        if not group:
            continue
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        flag = "--" + (field.metadata["flag"] or field.name.replace("_", "-"))
        groups[group].add_argument(flag, dest=field.name, default=None,
                                   help=field.metadata["help"],
                                   **field.metadata["argparse"])


def _add_hp_flags(p):
    g = p.add_argument_group("model hyperparameters (any family's; see `lstm-zoo models`)")
    for name, kind in hyperparameter_flags().items():
        if kind is bool:
            g.add_argument("--" + name.replace("_", "-"), type=_boolean, default=None,
                           metavar="true|false")
        else:
            g.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    g.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="any other builder argument")


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false; received {text!r}")
    return text.lower() == "true"


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
        _add_hp_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare",
                       help="train every family with defaults; print a leaderboard")
    p.add_argument("--models", help="all (default) or a comma-separated list")
    add_run_flags(p)
    if with_hyperparameters:
        _add_hp_flags(p)
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
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_tracking_server)

    p = sub.add_parser("ui", help="open the MLflow UI on the same store")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--tracking-uri")
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv=None) -> int:
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow logs a store error with its whole traceback before raising it;
    # the one line main() prints names the store and the cause instead.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(with_hyperparameters=bool(argv) and argv[0] in ("train", "compare")
                        ).parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the run is marked KILLED", file=sys.stderr)
        return 130
    except BaseException as err:
        from experiments.data import DataError
        from experiments.errors import TrainingError
        from experiments.tracking import Terminated, TrackingError

        if isinstance(err, TrainingError):
            # The run or search is recorded FAILED with this cause.
            print(f"error: {err}", file=sys.stderr)
            return 1
        if isinstance(err, Terminated):
            print(f"\n{err}; the run is marked KILLED", file=sys.stderr)
            return 143
        if isinstance(err, (DataError, ValueError, TrackingError)):
            print(f"error: {err}", file=sys.stderr)
            return 2
        if isinstance(err, OSError):
            # A disk that filled up or a folder that went away mid-run: the
            # run is already recorded FAILED with this error.
            print(f"error: {err}", file=sys.stderr)
            return 1
        store = _store_error(err)
        if store:
            print(f"error: {store}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
