"""Which forecasts should calibrate the intervals of a refit model: the
train-only model's out-of-sample ones (what lstm-zoo does), or the refit
model's own forecasts at origins inside the data it was trained on?

On each series of the public set (``benchmarks.public_set``), cut at its
last origin, one ``ForecastModel('gru', combine='none')`` is fitted with
its defaults (refit on every row). Both arms place intervals around the
same served forecast and differ only in their half-widths:

- **out of sample**: the model's own ``lower_XX``/``upper_XX``, calibrated
  on the train-only model's forecasts of the rows it did not train on;
- **in sample**: split-conformal half-widths
  (``experiments.forecasting.forecaster.conformal_widths``) of the refit
  model's forecasts from every origin of the history where a whole
  horizon follows (the most residuals that arm can have).

Then the coverage, mean width and MSIS of each on the hidden values.
``python -m benchmarks.calibration_origins`` (the ``bench`` extra) writes
``benchmarks/results/calibration-origins-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
import pandas as pd

from benchmarks import public_set, report

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
ARMS = ("out of sample", "in sample")


def in_sample_bounds(model, history: pd.DataFrame, horizon: int, pred) -> tuple[dict, int]:
    """The in-sample arm: ``{level: (lower, upper)}`` around ``pred``, from
    the fitted ``model``'s forecasts of its own history, and how many
    origins calibrated it."""
    from experiments.forecasting.forecaster import conformal_widths

    values = history["value"].to_numpy(dtype=float)
    first = model.forecaster_.min_rows
    origins = range(first, len(history) - horizon + 1)
    if not origins:
        raise ValueError(f"history of {len(history)} rows leaves no in-sample origin "
                         f"(the model reads {first} rows, then forecasts {horizon})")
    forecasts = np.stack([model.predict(history.iloc[:t])["value"].to_numpy(dtype=float)
                          for t in origins])
    truth = np.stack([values[t:t + horizon] for t in origins])
    widths = conformal_widths(truth[..., None], forecasts[..., None], public_set.LEVELS)
    return {level: (pred - np.asarray(widths[str(level)])[:, 0],
                    pred + np.asarray(widths[str(level)])[:, 0])
            for level in public_set.LEVELS}, len(origins)


def compare(cut: public_set.Cut, seed: int = 42, epochs: int | None = None) -> dict:
    """Both arms' scores on ``cut``'s hidden values."""
    from experiments.forecasting.forecast_model import ForecastModel

    model = ForecastModel("gru", target="value", time_col="period", horizon=cut.horizon,
                          combine="none", seed=seed, epochs=epochs)
    model.fit(cut.history)
    table = model.predict(cut.history)
    pred = table["value"].to_numpy(dtype=float)
    inside, origins = in_sample_bounds(model, cut.history, cut.horizon, pred)
    scale = public_set.mase_scale(cut.history["value"].to_numpy(), cut.season)
    row = {"series": cut.series, "horizon": cut.horizon, "in_sample_origins": origins,
           "mase": public_set.mase(cut.future, pred, cut.history["value"].to_numpy(),
                                   cut.season)}
    for arm in ARMS:
        for level in public_set.LEVELS:
            lower, upper = ((table[f"lower_{level}"].to_numpy(dtype=float),
                             table[f"upper_{level}"].to_numpy(dtype=float))
                            if arm == "out of sample" else inside[level])
            width, msis = public_set.width_and_msis(cut.future, lower, upper, level, scale)
            row[f"{arm}|coverage_{level}"] = public_set.coverage(cut.future, lower, upper)
            row[f"{arm}|width_{level}"], row[f"{arm}|msis_{level}"] = width, msis
    return row


def summary(rows: list[dict]) -> dict:
    """Each arm's mean over series of every score."""
    keys = [k for k in rows[0] if "|" in k]
    return {k: statistics.fmean(r[k] for r in rows) for k in keys}


def markdown(result: dict) -> str:
    mean = result["summary"]
    lines = [f"Calibration origins, {result['date']} ({result['machine']}): "
             f"`ForecastModel('gru', combine='none')` with its defaults, seed "
             f"{result['seed']}, on the {len(result['rows'])} public series cut at their "
             f"last origin; both arms around the same served forecast. "
             f"{result['minutes']:.1f} min.", "",
             "| calibrated on | 80% covered | 95% covered | width 80% | width 95% "
             "| MSIS 80% | MSIS 95% |", "|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        lines.append(f"| {arm} | {mean[f'{arm}|coverage_80']:.2f} | "
                     f"{mean[f'{arm}|coverage_95']:.2f} | {mean[f'{arm}|width_80']:.2f} | "
                     f"{mean[f'{arm}|width_95']:.2f} | {mean[f'{arm}|msis_80']:.2f} | "
                     f"{mean[f'{arm}|msis_95']:.2f} |")
    lines += ["", "Per series, 95% coverage (out of sample / in sample, in-sample origins):", ""]
    lines += [f"- {r['series']}: {r['out of sample|coverage_95']:.2f} / "
              f"{r['in sample|coverage_95']:.2f} ({r['in_sample_origins']} origins)"
              for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="+", choices=list(public_set.SERIES),
                        default=list(public_set.SERIES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for name in args.series:
        rows.append(compare(public_set.cuts(name)[0], seed=args.seed))
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()
                                      if "coverage" in k), flush=True)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)", "seed": args.seed,
              "minutes": (time.perf_counter() - started) / 60, "rows": rows,
              "summary": summary(rows)}
    report.write(args.out, "calibration-origins-latest", result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
