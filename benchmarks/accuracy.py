"""`make accuracy`: lstm-zoo against the models forecasters use, on real
series nobody tuned to (``benchmarks/public_set.py``).

The protocol, fixed before anything was tuned to it:

- every cut of the public set (12 series; the last origin and up to two
  earlier ones), the history written as the user's CSV (``period``, ``value``);
- lstm-zoo as a new user runs it: ``lstm-zoo tune --csv history.csv --target
  value --time-col period --horizon h --models all --tuner random
  --max-trials TRIALS --ensemble 3`` (every other setting its default, seed
  42), then the registered model forecasts the ``h`` steps after the history;
- the references, fitted on the same history: statsforecast's AutoARIMA,
  AutoETS, AutoTheta and SeasonalNaive, with their 80% and 95% intervals;
- scores on the hidden values: sMAPE, MASE (scaled by the history's seasonal
  naive error), OWA (the mean of sMAPE and MASE relative to seasonal naive's,
  as M4 scores; lower is better) and interval coverage.

A series lstm-zoo refuses (too short) is shown as refused, and the means are
over the cuts every model forecast, with the count of refused cuts beside them.

    python -m benchmarks.accuracy                      # the whole protocol
    python -m benchmarks.accuracy --series ldeaths gas  # some series
    python -m benchmarks.accuracy --last-origin-only   # one cut per series

Everything is tracked in a throwaway MLflow store, not the user's. Results:
``benchmarks/results/accuracy-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time

import numpy as np

import experiments  # noqa: F401  (first: it quiets TensorFlow's start-up lines)
from benchmarks import public_set, report
from experiments.tasks.forecast import DEFAULT_COMBINE

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
ZOO = "lstm-zoo"
MODELS = (ZOO, *public_set.REFERENCES)


def zoo_forecast(cut: public_set.Cut, folder: str, uri: str, *, trials: int, ensemble: int,
                 seed: int, combine: str | None = None, loss: str = "mse") -> dict:
    """lstm-zoo's search on the cut's history and its registered model's
    forecast: ``{"mean", "lo-80", "hi-80", "lo-95", "hi-95"}``."""
    from experiments import serving
    from experiments.config import RunConfig
    from tuning.search import SearchConfig, run_search

    key = f"{cut.series}-o{cut.origin}"
    path = os.path.join(folder, f"{key}.csv")
    cut.history.to_csv(path, index=False)
    result = run_search(SearchConfig(
        run=RunConfig(csv=path, target=("value",), time_col="period", horizon=cut.horizon,
                      tracking_uri=uri, experiment=f"accuracy-{key}", seed=seed,
                      model_name=f"accuracy-{key}", combine=combine,
                      loss=None if loss == "mse" else loss),
        tuner="random", max_trials=trials, ensemble=ensemble, name=key,
        directory=os.path.join(folder, "tuner"), fresh=True))
    name, version = result.registered
    model, inner = serving.load(f"models:/{name}/{version}")
    table = model.predict(cut.history)
    out = {"mean": table["value"].to_numpy(dtype=float)}
    # What the run's own test table said of the served model, and how much
    # of the served forecast is the networks'.
    served = result.ensemble_metrics or result.test_metrics
    out["served_skill"] = float(served.get("test_combined_skill_vs_best_baseline",
                                           served["test_skill_vs_best_baseline"]))
    weights = (inner.forecaster.combination or {}).get("weights", {"network": 1.0})
    out["network_weight"] = float(weights.get("network", 0.0))
    for level in public_set.LEVELS:
        if f"lower_{level}" in table:
            out[f"lo-{level}"] = table[f"lower_{level}"].to_numpy(dtype=float)
            out[f"hi-{level}"] = table[f"upper_{level}"].to_numpy(dtype=float)
    return out


def run_cut(cut, folder, uri, *, trials, ensemble, seed, combine=None, loss="mse") -> dict:
    row = {"series": cut.series, "origin": cut.origin, "horizon": cut.horizon,
           "history": len(cut.history)}
    started = time.perf_counter()
    forecasts = public_set.reference_forecasts(cut)
    row["reference_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    try:
        forecasts[ZOO] = zoo_forecast(cut, folder, uri, trials=trials, ensemble=ensemble,
                                      seed=seed, combine=combine, loss=loss)
        for key in ("served_skill", "network_weight"):
            row[key] = forecasts[ZOO].pop(key)
    except Exception as err:  # noqa: BLE001  (a refusal is a result: record it)
        row["refused"] = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
    row["zoo_seconds"] = round(time.perf_counter() - started, 1)
    reference = forecasts["SeasonalNaive"]
    row["scores"] = {m: public_set.scores(cut, f, reference) for m, f in forecasts.items()}
    return row


def summary(rows) -> dict:
    """Per model: the mean of each score over the cuts every model forecast
    (each series weighted by its number of cuts), the mean at the last
    origin, and the series where lstm-zoo beats each reference's OWA."""
    scored = [r for r in rows if ZOO in r["scores"]]
    out = {"cuts": len(rows), "cuts_scored": len(scored),
           "refused": [f"{r['series']} (origin {r['origin']})" for r in rows
                       if ZOO not in r["scores"]]}
    for model in MODELS:
        scores = [r["scores"][model] for r in scored]
        last = [r["scores"][model] for r in scored if r["origin"] == 0]
        out[model] = {k: float(np.mean([s[k] for s in scores if k in s]))
                      for k in scores[0]} if scores else {}
        out[model]["last_origin_owa"] = float(np.mean([s["owa"] for s in last])) \
            if last else None
        every = [r["scores"][model]["owa"] for r in rows if model in r["scores"]]
        out[model]["owa_every_cut"] = float(np.mean(every)) if every else None
    for ref in public_set.REFERENCES:
        out[f"beats_{ref}"] = sorted({r["series"] for r in scored} - {
            r["series"] for r in scored
            if _series_owa(scored, r["series"], ZOO) >= _series_owa(scored, r["series"], ref)})
    return out


def _series_owa(rows, series, model) -> float:
    return float(np.mean([r["scores"][model]["owa"] for r in rows if r["series"] == series]))


def markdown(result) -> str:
    b, s = result["budget"], result["summary"]
    lines = [
        f"Accuracy on the public set, {result['date']} ({result['machine']}); "
        f"{s['cuts']} cuts of {len({r['series'] for r in result['rows']})} series. "
        f"lstm-zoo: `tune --models all --tuner random --max-trials {b['trials']} "
        f"--ensemble {b['ensemble']}"
        + (f" --combine {b['combine']}" if b.get("combine", DEFAULT_COMBINE) != DEFAULT_COMBINE
           else "")
        + (f" --loss {b['loss']}" if b.get("loss", "mse") != "mse" else "")
        + f"`, seed {b['seed']}, then the registered model's "
        f"forecast; {b['zoo_minutes']:.0f} minutes of searching in all. References: "
        f"statsforecast {', '.join(public_set.REFERENCES)} on the same histories. "
        f"OWA relative to seasonal naive (lower is better; below 1 beats it). Width and "
        f"MSIS (M4's interval score) are divided by the history's seasonal-naive error.",
        "",
        "| model | OWA | OWA (last origin) | sMAPE | MASE | 80% covered "
        "| 95% covered | width 95% | MSIS 95% | OWA (every cut it forecast) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    for model in MODELS:
        m = s[model]
        lines.append(f"| {model} | {f(m.get('owa'))} | {f(m.get('last_origin_owa'))} | "
                     f"{f(m.get('smape'), 2)} | {f(m.get('mase'))} | "
                     f"{f(m.get('coverage_80'), 2)} | {f(m.get('coverage_95'), 2)} | "
                     f"{f(m.get('width_95'), 2)} | {f(m.get('msis_95'), 2)} | "
                     f"{f(m.get('owa_every_cut'))} |")
    lines += ["", f"Means over the {s['cuts_scored']} cuts lstm-zoo forecast"
              + (f"; refused: {', '.join(s['refused'])}." if s["refused"] else "."), "",
              "| series | origin | rows | " + " | ".join(MODELS)
              + " | lstm-zoo 80% | networks' weight | own test skill |",
              "|---|---|---|" + "---|" * (len(MODELS) + 3)]
    for r in result["rows"]:
        owa = [f(r["scores"][m]["owa"]) if m in r["scores"] else "refused" for m in MODELS]
        cover = f(r["scores"].get(ZOO, {}).get("coverage_80"), 2)
        lines.append(f"| {r['series']} | {r['origin']} | {r['history']} | "
                     + " | ".join(owa) + f" | {cover} | {f(r.get('network_weight'), 2)} | "
                     + (f"{r['served_skill']:+.3f}" if "served_skill" in r else "-") + " |")
    own = [r for r in result["rows"] if "served_skill" in r]
    if own:
        wins = sum(r["served_skill"] > 0 for r in own)
        none = sum(r["network_weight"] == 0 for r in own)
        lines.append(f"\nThe run's own test table: the served model beats its best in-run "
                     f"baseline on {wins} of {len(own)} cuts. The networks have no weight in "
                     f"the served forecast on {none} of {len(own)} cuts (a statistical model "
                     f"served alone).")
    forecast = len({r["series"] for r in result["rows"] if ZOO in r["scores"]})
    lines.append("\nSeries (of the " + str(forecast) + " lstm-zoo forecast) where its mean OWA "
                 "beats the reference's: " + "; ".join(
                     f"{ref} {len(s['beats_' + ref])}" for ref in public_set.REFERENCES) + ".")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", nargs="+", choices=list(public_set.SERIES),
                        default=list(public_set.SERIES))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--last-origin-only", action="store_true")
    parser.add_argument("--combine", default=DEFAULT_COMBINE,
                        choices=("none", "inverse_mse", "least_squares"),
                        help=f"tune's --combine (default {DEFAULT_COMBINE}, tune's own)")
    parser.add_argument("--loss", default="mse", choices=("mse", "quantile", "search"),
                        help="tune's --loss (default mse, tune's own)")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    os.makedirs(args.out, exist_ok=True)
    rows, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{os.path.join(folder, 'mlflow.db')}"
        for name in args.series:
            for cut in public_set.cuts(name)[:1 if args.last_origin_only else None]:
                row = run_cut(cut, folder, uri, trials=args.trials,
                              ensemble=args.ensemble, seed=args.seed, combine=args.combine,
                              loss=args.loss)
                owa = {m: round(s["owa"], 3) for m, s in row["scores"].items()}
                print(f"== {name} origin {cut.origin} ({row['zoo_seconds']} s): {owa}"
                      + (f"  REFUSED {row['refused']}" if "refused" in row else ""),
                      flush=True)
                rows.append(row)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
              "budget": {"trials": args.trials, "ensemble": args.ensemble, "seed": args.seed,
                         "combine": args.combine, "loss": args.loss,
                         "zoo_minutes": sum(r["zoo_seconds"] for r in rows) / 60,
                         "wall_minutes": (time.perf_counter() - started) / 60},
              "rows": rows, "summary": summary(rows)}
    stem = "accuracy-latest" if set(args.series) == set(public_set.SERIES) and \
        not args.last_origin_only else "accuracy-partial"
    if args.combine != DEFAULT_COMBINE:
        stem += f"-combine-{args.combine}"
    if args.loss != "mse":
        stem += f"-loss-{args.loss}"
    report.write(args.out, stem, result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
