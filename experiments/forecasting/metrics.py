"""Forecast metrics in the data's own units, and the baselines every model
must beat, evaluated on exactly the same windows."""

from __future__ import annotations

import numpy as np

METRICS = ("mae", "rmse", "mape", "smape", "mase")


def naive(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value: ``(n, horizon, targets)``."""
    return np.repeat(values[origins][:, None, :], horizon, axis=1)


def seasonal_naive(values: np.ndarray, origins: np.ndarray, horizon: int,
                   season: int) -> np.ndarray:
    """Repeat the last observed season: step ``h`` gets the value one (or
    more) whole seasons before it, never a value after the origin."""
    h = np.arange(1, horizon + 1)
    back = season * np.ceil(h / season).astype(int)
    rows = origins[:, None] + h - back
    if (rows < 0).any():
        raise ValueError(f"seasonal_naive: an origin has less than one season "
                         f"({season} steps) of history")
    return values[rows]


def mase_scale(train_values: np.ndarray, season: int) -> np.ndarray:
    """In-sample mean absolute error of the seasonal naive forecast on the
    training rows, per target (the MASE denominator).

    Uses lag 1 when the training part is shorter than two seasons, or for a
    target that repeats its season exactly (a seasonal error of zero would
    make MASE infinite).
    """
    def scale(lag):
        return np.mean(np.abs(train_values[lag:] - train_values[:-lag]), axis=0)

    lag1 = scale(1)
    if len(train_values) <= 2 * season:
        seasonal = lag1
    else:
        seasonal = scale(season)
    out = np.where(seasonal > 0, seasonal, lag1)
    return np.where(out > 0, out, np.nan)


def scale_for(prepared) -> np.ndarray:
    """MASE denominator of a prepared series: its training rows' in-sample
    seasonal-naive error, in original units."""
    series = prepared.series
    values = series.frame[list(series.targets)].to_numpy()
    return mase_scale(values[: prepared.n_train], prepared.season)


def forecast_metrics(truth: np.ndarray, pred: np.ndarray,
                     scale: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MAPE (%), sMAPE (%) and MASE over all windows, steps and
    targets. ``truth``/``pred``: ``(n, horizon, targets)``."""
    err = pred - truth
    abs_err = np.abs(err)
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(truth != 0, abs_err / np.abs(truth), np.nan)
        denom = np.abs(truth) + np.abs(pred)
        sape = np.where(denom > 0, 2 * abs_err / denom, 0.0)
        mase = np.mean(abs_err / scale)
    return {
        "mae": float(np.mean(abs_err)),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mape": float(100 * np.nanmean(ape)) if np.isfinite(ape).any() else float("nan"),
        "smape": float(100 * np.mean(sape)),
        "mase": float(mase),
    }


def interval_scores(truth, lower, upper, level, scale) -> dict[str, float]:
    """How an interval forecast at ``level`` percent did, as forecasters
    score one: the fraction of ``truth`` inside ``[lower, upper]``
    (``coverage``), the mean width (``width``) and M4's mean scaled interval
    score (``msis``: the width plus ``2 / (1 - level/100)`` times each miss
    beyond a bound, lower is better), the last two divided by ``scale`` (the
    MASE scale, broadcast against the arrays: per target, or per window)."""
    truth, lower, upper = (np.asarray(a, dtype="float64") for a in (truth, lower, upper))
    scale = np.asarray(scale, dtype="float64")
    alpha = 1.0 - level / 100.0
    width = upper - lower
    penalty = (2.0 / alpha) * (np.maximum(lower - truth, 0.0)
                               + np.maximum(truth - upper, 0.0))
    return {"coverage": float(np.mean((truth >= lower) & (truth <= upper))),
            "width": float(np.mean(width / scale)),
            "msis": float(np.mean((width + penalty) / scale))}


def quantile_crps(truth, quantile_forecasts, levels, scale) -> float:
    """The CRPS approximated by the quantile loss (GluonTS's mean weighted
    quantile loss): twice the mean pinball loss of ``quantile_forecasts``
    ``(..., quantiles)`` at ``levels``, each divided by ``scale`` (the MASE
    scale, broadcast against ``truth``). A point forecast is its median
    alone (``levels`` ``(0.5,)``): its CRPS is its absolute error. Lower is
    better; a proper score, so point, quantile and distribution forecasts
    compare on it."""
    scale = np.asarray(scale, dtype="float64")
    return float(2.0 * np.mean(pinball(np.asarray(truth, dtype="float64") / scale,
                                       np.asarray(quantile_forecasts, dtype="float64")
                                       / scale[..., None], levels)))


def interval_crps(truth, point, bounds: dict, scale) -> float:
    """``quantile_crps`` of a forecast given as a point and intervals: each
    ``level: (lower, upper)`` of ``bounds`` gives the quantiles
    ``(1 - level/100) / 2`` and ``(1 + level/100) / 2``, the point forecast
    the median."""
    levels, forecasts = [0.5], [np.asarray(point, dtype="float64")]
    for level, (lower, upper) in bounds.items():
        alpha = (1.0 - int(level) / 100.0) / 2.0
        levels += [alpha, 1.0 - alpha]
        forecasts += [np.asarray(lower, dtype="float64"), np.asarray(upper, dtype="float64")]
    return quantile_crps(truth, np.stack(forecasts, axis=-1), levels, scale)


def skill(model_rmse: float, baseline_rmse: float) -> float:
    """``1 - rmse / baseline_rmse``: above 0 beats the baseline, below 0
    loses to it."""
    if not baseline_rmse > 0:
        return float("nan")
    return 1.0 - model_rmse / baseline_rmse


def evaluate_forecasts(prepared, pred: np.ndarray, part,
                       statistical: dict | None = None) -> dict[str, float]:
    """Metrics of ``pred`` and of the baselines on windows ``part``, all in
    original units, with the model's skill against the seasonal naive and
    against the best baseline (lowest RMSE).

    Args:
        statistical: more baselines' forecasts on the same windows,
            ``{"ets": (n, horizon, targets), ...}`` (``experiments.forecasting.statistical``).

    Returns flat names: ``mae``..., ``naive_mae``..., ``seasonal_naive_mae``...,
    ``ets_mae``..., ``skill_vs_seasonal_naive`` and ``skill_vs_best_baseline``.
    """
    series = prepared.series
    values = series.frame[list(series.targets)].to_numpy()
    truth = prepared.truth(part)
    scale = scale_for(prepared)
    out = dict(forecast_metrics(truth, pred, scale))
    baselines = {
        "naive": naive(values, part.origins, prepared.horizon),
        "seasonal_naive": seasonal_naive(values, part.origins,
                                         prepared.horizon, prepared.season),
        **(statistical or {}),
    }
    for name, guess in baselines.items():
        for key, value in forecast_metrics(truth, guess, scale).items():
            out[f"{name}_{key}"] = value
    out["skill_vs_seasonal_naive"] = skill(out["rmse"],
                                           out["seasonal_naive_rmse"])
    best = best_baseline(out, baselines)
    out["skill_vs_best_baseline"] = skill(out["rmse"], out[f"{best}_rmse"])
    return out


def best_baseline(scores: dict, names, prefix: str = "") -> str:
    """The baseline with the lowest RMSE in ``scores`` (``prefix`` before
    each name, e.g. ``"test_"``)."""
    return min(names, key=lambda n: scores.get(f"{prefix}{n}_rmse", float("inf")))


def pinball(truth, quantile_forecasts, quantiles) -> np.ndarray:
    """The pinball loss of each quantile, in NumPy: ``truth`` ``(..., )``,
    ``quantile_forecasts`` ``(..., quantiles)``; the mean over everything
    but the quantile axis."""
    truth = np.asarray(truth, float)[..., None]
    error = truth - np.asarray(quantile_forecasts, float)
    levels = np.asarray(quantiles, float)
    return np.mean(np.maximum(levels * error, (levels - 1.0) * error),
                   axis=tuple(range(error.ndim - 1)))
