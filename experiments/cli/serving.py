"""`lstm-zoo forecast`, `serve` and `generate`: a logged or registered model at work."""

from __future__ import annotations

import os
import sys

from experiments.cli.output import cell_text, last_time, table


def cmd_forecast(args) -> int:
    import mlflow

    from experiments import serving, tracking

    if bool(args.model) == bool(args.run_id):
        raise ValueError("give the model to forecast with: --model URI (such as "
                         "models:/lstm-zoo-airline-passengers@best or runs:/<id>/model) "
                         "or --run-id ID")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be an int >= 1; received {args.steps}")
    check_sampling(args)
    uri = args.model or f"runs:/{args.run_id}/model"
    if uri.startswith(("models:/", "runs:/")):
        store = tracking.resolve_uri(args.tracking_uri)
        tracking.check_reachable(store)
        mlflow.set_tracking_uri(store)
    model, inner = serving.load(uri)
    forecaster = inner.forecaster
    if args.csv:
        history = serving.history_from_csv(
            args.csv, forecaster, time_format=args.time_format,
            fill_missing=args.fill_missing, sort=args.sort, max_file_mb=args.max_file_mb)
        source = args.csv
    else:
        history = inner.history  # the end of the data the model was trained on
        source = "the data it was trained on"
    params = {"steps": args.steps} if args.steps else {}
    if args.plot and inner.kind == "panel":
        raise ValueError("--plot draws one series; a panel model's forecast has many: "
                         "write them with --out, or plot each series from that file")
    if args.samples is not None:
        paths = model.predict(history, params={**params, "samples": args.samples,
                                               "seed": args.seed})
        paths.to_csv(args.out, index=False)
        series = paths[forecaster.id_col].nunique() if inner.kind == "panel" else 1
        steps = len(paths) // (series * args.samples)
        print(f"{args.samples} simulated future(s) of {steps} step(s) for each of {series} "
              f"series from {source}: {len(paths):,} rows; wrote {args.out}")
        return 0
    table_ = model.predict(history, params=params or None)
    print(forecast_heading(table_, history, forecaster, inner.kind, source))
    print(table([tuple(table_.columns)] + [
        tuple(cell_text(v) for v in row) for row in table_.itertuples(index=False)]))
    if args.out:
        table_.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    if args.plot:
        from experiments import plots

        pre = forecaster.preprocessor
        fig = plots.future_plot(history, table_, forecaster.time_col, pre.targets,
                                forecaster.levels, f"forecast from {uri}")
        fig.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")
    return 0


def check_sampling(args) -> None:
    """``--samples`` is an int in range, written to ``--out``, not plotted."""
    if args.samples is None:
        return
    from experiments.forecasting.forecaster import check_samples

    try:
        check_samples(args.samples)
    except ValueError as err:
        raise ValueError(f"--{err}") from None
    if not args.out or args.plot:
        raise ValueError("--samples writes one row per series, step and sample: give "
                         "--out FILE.csv (and no --plot)")


def forecast_heading(table_, history, forecaster, kind: str, source: str) -> str:
    """The line above a forecast's table: how many steps, after when, from what."""
    refit = " (refit on all its data)" if forecaster.refit else ""
    if kind == "panel":
        n = table_[forecaster.id_col].nunique()
        steps = len(table_) // max(n, 1)
        rolled = (f"; steps past {forecaster.horizon} roll forward on the model's own "
                  f"forecasts" if steps > forecaster.horizon else "")
        return (f"forecast of {steps} step(s) for each of {n} series from "
                f"{source}{refit}{rolled}:")
    horizon = forecaster.preprocessor.horizon
    rolled = (f"; steps past {horizon} roll forward on the model's own forecasts"
              if len(table_) > horizon else "")
    return (f"forecast of {len(table_)} step(s) after {last_time(history, forecaster)} "
            f"from {source}{refit}{rolled}:")


def cmd_serve(args) -> int:
    from experiments import tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    # `mlflow models serve` finds models:/ and runs:/ URIs in this store.
    os.environ["MLFLOW_TRACKING_URI"] = uri
    # MLflow starts its web server (uvicorn) by name: from this environment.
    here = os.path.dirname(sys.executable)
    os.environ["PATH"] = here + os.pathsep + os.environ.get("PATH", "")
    if args.workers < 1:
        raise ValueError(f"--workers must be an int >= 1; received {args.workers}")
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", args.model,
               "--env-manager", "local", "--host", args.host, "--port", str(args.port),
               "--workers", str(args.workers)]
    print(f"serving {args.model} from {tracking.redact(uri)} at "
          f"http://{args.host}:{args.port}/invocations (Ctrl-C stops)", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def cmd_generate(args) -> int:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from experiments import serving, tracking

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
    model, _ = serving.load(f"runs:/{args.run_id}/model", kind="language_model")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    out = model.predict(pd.DataFrame({"prompt": [args.prompt]}), params={
        "length": args.length, "temperature": args.temperature, "seed": seed})
    print(out["text"].iloc[0])
    return 0
