"""A global model scored as forecasters score a panel: per series, against
per-series baselines on the same windows, then averaged over series.

MASE divides each series' errors by its own in-sample seasonal-naive error,
so series on any scale weigh the same in the mean; sMAPE is in percent; the
per-series RMSE is in that series' units (its mean over series is logged
because teams ask for it, but it is dominated by the largest series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.forecasting import metrics, statistical

# Statsmodels' ETS searches a few forms per series (about 0.1 s each on a
# 2-core CPU); past this many series the panel's table leaves it out, and
# says so, rather than spend minutes on a baseline.
MAX_ETS_SERIES = 200
SCORED = ("mase", "smape", "rmse")


def baseline_forecasts(prepared, part) -> tuple[dict, dict]:
    """Naive, seasonal naive and ETS forecasts for ``part``'s windows,
    ``{name: (n, horizon)}`` in the data's units (ETS rows NaN for a series
    it could not fit), and ``{name: note}``. ETS is fitted on each series'
    rows before the validation period, as the network was."""
    season = prepared.panel.season or 1
    h = np.arange(1, prepared.horizon + 1)
    back = season * np.ceil(h / season).astype(int)
    naive, snaive = [], []
    for s, o in zip(part.series, part.origins, strict=True):
        values = prepared.values[prepared.ids[s]]
        naive.append(np.repeat(values[o], prepared.horizon))
        rows = o + h - back
        snaive.append(values[rows] if (rows >= 0).all() else naive[-1])
    out = {"naive": np.asarray(naive).reshape(-1, prepared.horizon),
           "seasonal_naive": np.asarray(snaive).reshape(-1, prepared.horizon)}
    notes = {}
    n_series = len(set(part.series.tolist()))
    if n_series > MAX_ETS_SERIES:
        notes["ets"] = f"skipped: {n_series} series, over {MAX_ETS_SERIES}"
        return out, notes
    ets, notes["ets"] = _ets(prepared, part)
    if np.isfinite(ets).any():
        out["ets"] = ets
    return out, notes


def _ets(prepared, part) -> tuple[np.ndarray, str]:
    ets = np.full((len(part), prepared.horizon), np.nan)
    failed, why = [], None
    for s in np.unique(part.series):
        key, mask = prepared.ids[s], part.series == s
        times = prepared.panel.frame.loc[prepared.panel.frame[prepared.panel.id_col] == key,
                                         prepared.panel.time_col]
        n_train = int((pd.DatetimeIndex(times) < prepared.val_start).sum())
        try:
            ets[mask] = statistical.ets(prepared.values[key], n_train, part.origins[mask],
                                        prepared.horizon, prepared.panel.season)[0]
        except statistical.BaselineSkipped as err:
            failed.append(key)
            why = why or str(err)
    if len(failed) == len(np.unique(part.series)):
        return ets, f"skipped on every series ({why})"
    note = "statsmodels ETS per series, form chosen by AICc on its training rows"
    if failed:
        note += f"; not fitted on {len(failed)} series (first: {failed[0]!r}: {why})"
    return ets, note


def series_scale(prepared, part, s: int) -> float:
    """Series ``s``'s MASE scale for ``part``: its in-sample seasonal-naive
    error on everything before its first window's targets there."""
    values = prepared.values[prepared.ids[s]]
    seen = values[: int(part.origins[part.series == s].min()) + 1]
    return float(metrics.mase_scale(seen[:, None], prepared.panel.season or 1)[0])


def series_scales(prepared, part) -> np.ndarray:
    """Each window's series' MASE scale (``series_scale``), ``(n,)``."""
    scales = {s: series_scale(prepared, part, s) for s in np.unique(part.series)}
    return np.array([scales[s] for s in part.series], dtype="float64")


def per_series(prepared, part, pred: np.ndarray, baselines: dict) -> pd.DataFrame:
    """One row per series with windows in ``part``: its MASE, sMAPE and RMSE,
    each baseline's, the best baseline (lowest MASE) and whether the model
    beats the seasonal naive and the best baseline."""
    truth = prepared.truth(part)
    rows = []
    for s in np.unique(part.series):
        key, mask = prepared.ids[s], part.series == s
        scale = np.array([series_scale(prepared, part, s)])
        row = {"unique_id": key, "rows": int(part.origins[mask].min()) + 1}
        for name, guess in {"model": pred, **baselines}.items():
            if not np.isfinite(guess[mask]).all():
                continue
            scored = metrics.forecast_metrics(truth[mask][..., None], guess[mask][..., None],
                                              scale)
            prefix = "" if name == "model" else f"{name}_"
            row.update({prefix + k: scored[k] for k in SCORED})
        fitted = [n for n in baselines if f"{n}_mase" in row]
        row["best_baseline"] = min(fitted, key=lambda n: row[f"{n}_mase"])
        row["beats_seasonal_naive"] = bool(row["mase"] < row["seasonal_naive_mase"])
        row["beats_best_baseline"] = bool(row["mase"] < row[f"{row['best_baseline']}_mase"])
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate(table: pd.DataFrame, baselines) -> dict[str, float]:
    """Means over series of each score (model and baselines), the share of
    series where the model beats the seasonal naive and the best baseline,
    and how many series were scored."""
    out = {"series_scored": float(len(table))}
    for prefix in ["", *(f"{name}_" for name in baselines)]:
        for k in SCORED:
            column = prefix + k
            if column in table and table[column].notna().any():
                out[column] = float(table[column].mean())
    out["share_beats_seasonal_naive"] = float(table["beats_seasonal_naive"].mean())
    out["share_beats_best_baseline"] = float(table["beats_best_baseline"].mean())
    return out
