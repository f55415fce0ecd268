"""`make accuracy-known`: the zoo against the statistical models on series of known structure.

For each series: `train` with its defaults, then a `tune` search (fixed
tuner, trials, epochs and seed; the top trials also served as an ensemble),
both scored on the same test windows as naive, seasonal naive, ETS and
SARIMA (see experiments/forecasting/statistical.py). Results go to
benchmarks/results/known-structure-latest.{json,md}.

    python -m benchmarks.known_structure                  # the whole protocol
    python -m benchmarks.known_structure --quick          # a smoke run: one series, tiny budget
    python -m benchmarks.known_structure --series airline-h1 --trials 20

Everything is tracked in a throwaway MLflow store, not the user's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time

import numpy as np
import pandas as pd

from benchmarks import report

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


# === Series with known structure ===

def trend_multiplicative(path):
    """Monthly, 15 years: a linear trend times a seasonal swing that grows
    with it, with 3% multiplicative noise."""
    rng = np.random.default_rng(1)
    t = np.arange(180)
    values = (200 + 3 * t) * (1 + 0.25 * np.sin(2 * np.pi * t / 12)) * np.exp(
        rng.normal(0, 0.03, 180))
    _write(path, pd.date_range("2010-01-01", periods=180, freq="MS"), values, "month")


def regime_change(path):
    """Weekly, 5 years: a flat noisy level that shifts up and starts to
    trend two thirds of the way through (the test period is after it)."""
    rng = np.random.default_rng(2)
    t = np.arange(260)
    level = np.where(t < 170, 100.0, 130.0 + 0.4 * (t - 170))
    values = level + 5 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 2, 260)
    _write(path, pd.date_range("2019-01-07", periods=260, freq="W-MON"), values, "week")


def daily_weekly(path):
    """Hourly, 6 weeks: a daily cycle whose amplitude depends on the weekday
    (weekly-within-daily seasonality), with noise."""
    rng = np.random.default_rng(3)
    t = np.arange(24 * 7 * 6)
    hour, day = t % 24, (t // 24) % 7
    weekday = np.where(day < 5, 1.0, 0.4)
    values = 50 + 20 * weekday * np.sin(2 * np.pi * (hour - 6) / 24) + rng.normal(0, 3, len(t))
    _write(path, pd.date_range("2024-01-01", periods=len(t), freq="h"), values, "hour")


def _write(path, index, values, time_col):
    pd.DataFrame({time_col: index.strftime("%Y-%m-%dT%H:%M:%S"), "value": values}).to_csv(
        path, index=False)


# name -> (data flags, how it is made)
SERIES = {
    "airline-h1": ({"data": "airline", "horizon": 1, "test_size": 24, "val_size": 24}, None),
    "airline-h12": ({"data": "airline", "horizon": 12, "test_size": 24, "val_size": 24}, None),
    "sine": ({"data": "sine", "horizon": 1}, None),
    "trend-multiplicative": ({"target": ("value",), "time_col": "month", "horizon": 1,
                              "test_size": 24, "val_size": 24}, trend_multiplicative),
    "regime-change": ({"target": ("value",), "time_col": "week", "horizon": 4,
                       "test_size": 40, "val_size": 30, "window": 26}, regime_change),
    "daily-weekly": ({"target": ("value",), "time_col": "hour", "horizon": 24,
                      "test_size": 168, "val_size": 168, "window": 48, "season": 24},
                     daily_weekly),
}
MODELS = ("naive", "seasonal_naive", "ets", "sarima")


def run_series(name, folder, uri, *, trials, epochs, ensemble, seed, tuner="random",
               quick=False):
    from experiments.config import RunConfig
    from experiments.train import run_training
    from tuning.search import SearchConfig, run_search

    flags, make = SERIES[name]
    flags = dict(flags)
    if make is not None:
        path = os.path.join(folder, f"{name}.csv")
        make(path)
        flags["csv"] = path
    common = dict(flags, tracking_uri=uri, experiment=f"accuracy-{name}", seed=seed)
    started = time.perf_counter()
    # --quick caps even the default run's epochs (a smoke test of the protocol).
    default = run_training(RunConfig(model="gru", **common,
                                     epochs=epochs if quick else None))
    default_s = time.perf_counter() - started
    started = time.perf_counter()
    search = run_search(SearchConfig(
        run=RunConfig(**common, epochs=epochs), tuner=tuner, max_trials=trials,
        name=f"accuracy-{name}", directory=os.path.join(folder, "tuner"), fresh=True,
        ensemble=ensemble, register=False))
    search_s = time.perf_counter() - started
    m, d = search.test_metrics, default.metrics
    row = {"series": name, "horizon": search.task.prepared.horizon,
           "test_windows": len(search.task.test),
           "transforms": ",".join(search.task.prepared.transforms) or "none",
           "window": search.task.prepared.window,
           "tuned_rmse": m["test_rmse"], "default_train_rmse": d["test_rmse"],
           "ensemble_rmse": search.ensemble_metrics.get("test_rmse"),
           "search_seconds": round(search_s, 1), "train_seconds": round(default_s, 1),
           "best_family": search.best_hyperparameters.get(
               "family", next(iter(search.best_hyperparameters), "")),
           "notes": search.task.baseline_notes()}
    for baseline in MODELS:
        row[f"{baseline}_rmse"] = m.get(f"test_{baseline}_rmse")
    fitted = [b for b in MODELS if row[f"{b}_rmse"] is not None]
    best = min(fitted, key=lambda b: row[f"{b}_rmse"])
    row["best_baseline"] = best
    served = row["ensemble_rmse"] or row["tuned_rmse"]
    row["verdict"] = _verdict(row, served, best)
    return row


def _verdict(row, served, best):
    snaive = row["seasonal_naive_rmse"]
    stats = [row[f"{b}_rmse"] for b in ("ets", "sarima") if row[f"{b}_rmse"] is not None]
    out = []
    out.append("beats seasonal naive" if served < snaive else "LOSES to seasonal naive")
    if stats:
        out.append("beats ETS and SARIMA" if served < min(stats)
                   else f"loses to {best.upper() if best in ('ets', 'sarima') else best}")
    if row["default_train_rmse"] >= row["naive_rmse"]:
        out.append("default train loses to naive")
    return "; ".join(out)


def markdown(result) -> str:
    b = result["budget"]
    lines = [
        f"Accuracy benchmark, {result['date']} ({result['machine']}). Budget per series: "
        f"`tune` {b.get('tuner', 'random')} search, {b['trials']} trials of at most "
        f"{b['epochs'] or 'the data-sized number of'} epochs (window and transforms "
        f"searched where the series does not pin them; *chosen* shows the best "
        f"trial's), ensemble of {b['ensemble']}, seed {b['seed']}; `train` with "
        f"defaults (gru). Test RMSE in the data's units on the same windows for every "
        f"model (lower is better).",
        "",
        "| series | h | chosen | tuned | ensemble | train default | naive | seasonal naive "
        "| ETS | SARIMA | verdict | search s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v):
        return "skipped" if v is None else f"{v:.4g}"

    for r in result["series"]:
        lines.append(
            f"| {r['series']} | {r['horizon']} | {r.get('window', '')}, "
            f"{r['transforms'].replace(',', '+')} | {f(r['tuned_rmse'])} | "
            f"{f(r['ensemble_rmse'])} | {f(r['default_train_rmse'])} | "
            f"{f(r['naive_rmse'])} | {f(r['seasonal_naive_rmse'])} | {f(r['ets_rmse'])} | "
            f"{f(r['sarima_rmse'])} | {r['verdict']} | {r['search_seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", nargs="+", choices=list(SERIES), default=list(SERIES))
    parser.add_argument("--trials", type=int, default=8)
    # A fixed cap, not tune's data-sized default (300 for the monthly series):
    # the protocol's searches stay within ten minutes each on 2 cores.
    parser.add_argument("--epochs", type=int, default=100,
                        help="each trial's limit (default 100; 0: from the data size, "
                             "as tune)")
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tuner", default="random", choices=("random", "bayesian"))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one series, 2 trials of 3 epochs")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    import logging

    # Many models in one process: TensorFlow's retracing notes say nothing here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if args.quick:
        args.series, args.trials, args.epochs, args.ensemble = ["sine"], 2, 3, 2
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{os.path.join(folder, 'mlflow.db')}"
        for name in args.series:
            print(f"== {name}", flush=True)
            row = run_series(name, folder, uri, trials=args.trials,
                             epochs=args.epochs or None,
                             ensemble=args.ensemble, seed=args.seed, tuner=args.tuner,
                             quick=args.quick)
            print(f"   tuned {row['tuned_rmse']:.4g}  ensemble {row['ensemble_rmse']}  "
                  f"best baseline {row['best_baseline']} "
                  f"{row[row['best_baseline'] + '_rmse']:.4g}: {row['verdict']}", flush=True)
            rows.append(row)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
              "budget": {"tuner": args.tuner, "trials": args.trials, "epochs": args.epochs,
                         "ensemble": args.ensemble, "seed": args.seed},
              "series": rows}
    stem = "accuracy-quick" if args.quick else "known-structure-latest"
    report.write(args.out, stem, result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
