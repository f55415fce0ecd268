"""The statistical models a forecaster would fit first, as baselines.

ETS (Holt-Winters exponential smoothing) and a seasonal ARIMA, from
statsmodels, each fitted once on the training rows of one target and then
run forward with those parameters through the later rows, so that every
test origin gets a forecast from the data up to it and no further: the
same windows, origins and horizon as the network is scored on.

Each function returns ``(forecasts, description)`` with forecasts shaped
``(origins, horizon)`` in the data's units, or raises ``BaselineSkipped``
with the reason (too short, no season, a fit that fails).
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings

import numpy as np

# SARIMA's state grows with the season; past this a seasonal fit takes
# minutes, so longer seasons get a non-seasonal ARIMA (and say so).
MAX_SARIMA_SEASON = 24
# The orders tried, the better by AIC on the training rows: the airline
# model (Box & Jenkins) and one neighbour; each more costs a second a run.
SARIMA_ORDERS = (((0, 1, 1), (0, 1, 1)), ((1, 1, 1), (0, 1, 1)))
ARIMA_ORDERS = ((0, 1, 1), (2, 1, 2))


class BaselineSkipped(Exception):
    """A baseline that cannot be fitted here; the message says why."""


@contextlib.contextmanager
def _quiet():
    """statsmodels' convergence and frequency warnings: a baseline either
    fits or is skipped with a reason; its warnings would bury the output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def ets(values: np.ndarray, n_train: int, origins: np.ndarray, horizon: int,
        season: int | None):
    """Exponential smoothing on one target, its form chosen by AICc on the
    training rows among: no trend or an additive damped one, times no
    season, an additive one, or (a positive series) a multiplicative one
    when a season is known and the training rows hold two of them. The
    chosen form is then run forward with its fitted parameters.

    Args:
        values: the target's raw values, the whole series.
        n_train: training rows (the fit sees only these).
        origins: the rows after which to forecast.
        horizon: steps per forecast.
        season: the season length, or None/1 for none.
    """
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    values = np.asarray(values, float)
    train = values[:n_train]
    seasons = [None]
    if season and season > 1:
        if n_train < 2 * season + 2:
            raise BaselineSkipped(f"ets: {n_train} training rows hold fewer than two "
                                  f"seasons of {season}")
        seasons = ["add", "mul"] if (train > 0).all() else ["add"]
    elif n_train < 10:
        raise BaselineSkipped(f"ets: {n_train} training rows are too few")
    specs = [dict(trend=trend, damped_trend=trend is not None, seasonal=seasonal,
                  seasonal_periods=season if seasonal else None)
             for trend in ("add", None) for seasonal in seasons]
    with _quiet():
        fits = []
        for spec in specs:
            try:
                fitted = ExponentialSmoothing(train, initialization_method="estimated",
                                              **spec).fit()
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(fitted.aicc):
                fits.append((fitted.aicc, len(fits), spec, fitted))
        if not fits:
            raise BaselineSkipped("ets: no form could be fitted")
        _, _, spec, fitted = min(fits, key=lambda f: f[:2])
        try:
            out = _ets_forward(ExponentialSmoothing, values, spec, fitted.params, origins,
                               horizon)
        except (ValueError, np.linalg.LinAlgError) as err:
            raise BaselineSkipped(f"ets: the fit failed ({err})") from None
    if not np.isfinite(out).all():
        raise BaselineSkipped("ets: the fit gave non-finite forecasts")
    code = {None: "N", "add": "A", "mul": "M"}
    label = (f"ETS(A,{'Ad' if spec['trend'] else 'N'},{code[spec['seasonal']]})"
             f", chosen by AICc of {len(fits)}")
    if spec["seasonal"]:
        kind = "multiplicative" if spec["seasonal"] == "mul" else "additive"
        label += f", {kind} season {season}"
    return out, label


def _ets_forward(model, values, spec, params, origins, horizon) -> np.ndarray:
    """Forecasts from each origin with the training fit's parameters and
    initial states: the data up to the origin, nothing after it."""
    known = dict(initialization_method="known", initial_level=params["initial_level"])
    fixed = {"smoothing_level": params["smoothing_level"]}
    if spec["trend"]:
        known["initial_trend"] = params["initial_trend"]
        fixed.update(smoothing_trend=params["smoothing_trend"],
                     damping_trend=params["damping_trend"])
    if spec["seasonal"]:
        known["initial_seasonal"] = params["initial_seasons"]
        fixed["smoothing_seasonal"] = params["smoothing_seasonal"]
    out = np.empty((len(origins), horizon))
    for i, origin in enumerate(origins):
        run = model(values[: origin + 1], **spec, **known).fit(optimized=False, **fixed)
        out[i] = run.forecast(horizon)
    return out


def sarima(values: np.ndarray, n_train: int, origins: np.ndarray, horizon: int,
           season: int | None):
    """A seasonal ARIMA on one target, on logs when the series is positive:
    the orders of ``SARIMA_ORDERS`` (or ``ARIMA_ORDERS`` without a season,
    or with one longer than ``MAX_SARIMA_SEASON``), the best by AIC on the
    training rows, then filtered through the later rows with those
    parameters. Arguments as for ``ets``."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    values = np.asarray(values, float)
    positive = bool((values[:n_train] > 0).all() and (values > 0).all())
    series = np.log(values) if positive else values
    train = series[:n_train]
    seasonal = bool(season and 1 < season <= MAX_SARIMA_SEASON
                    and n_train >= 3 * season + 2)
    if seasonal:
        candidates = [(order, (*s, season)) for order, s in SARIMA_ORDERS]
    else:
        candidates = [(order, (0, 0, 0, 0)) for order in ARIMA_ORDERS]
    if n_train < 12:
        raise BaselineSkipped(f"sarima: {n_train} training rows are too few")
    best = None
    with _quiet():
        for order, seasonal_order in candidates:
            try:
                fit = SARIMAX(train, order=order, seasonal_order=seasonal_order).fit(
                    disp=False)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(fit.aic) and (best is None or fit.aic < best[0].aic):
                best = (fit, order, seasonal_order)
        if best is None:
            raise BaselineSkipped("sarima: no order could be fitted")
        fit, order, seasonal_order = best
        out = np.empty((len(origins), horizon))
        for i, origin in enumerate(origins):
            out[i] = fit.apply(series[: origin + 1], refit=False).forecast(horizon)
    if positive:
        out = np.exp(out)
    if not np.isfinite(out).all():
        raise BaselineSkipped("sarima: the fit gave non-finite forecasts")
    label = f"SARIMA{order}{seasonal_order}" if seasonal else f"ARIMA{order}"
    why = ""
    if season and season > MAX_SARIMA_SEASON:
        why = f" (season {season} > {MAX_SARIMA_SEASON}: non-seasonal)"
    elif season and season > 1 and not seasonal:
        why = (f" ({n_train} training rows are too few for a seasonal fit of season "
               f"{season}: non-seasonal)")
    return out, label.replace(" ", "") + (" on logs" if positive else "") + why


MODELS = {"ets": ets, "sarima": sarima}


def forecasts(values: np.ndarray, n_train: int, origins: np.ndarray, horizon: int,
              season: int | None):
    """Every statistical baseline on every target.

    Args:
        values: ``(rows, targets)`` raw values.

    Returns:
        ``(forecasts, notes)``: ``{name: (origins, horizon, targets)}`` for the
        baselines that fitted, and ``{name: description or reason skipped}``.
    """
    values = np.asarray(values, float)
    key = (hashlib.sha256(values.tobytes()).hexdigest(), values.shape, n_train,
           tuple(int(o) for o in origins), horizon, season)
    if key in _FITTED:  # the same series and split again (compare, folds, a notebook)
        return _FITTED[key]
    out, notes = {}, {}
    for name, model in MODELS.items():
        columns, labels = [], []
        try:
            for j in range(values.shape[1]):
                pred, label = model(values[:, j], n_train, origins, horizon, season)
                columns.append(pred)
                labels.append(label)
        except BaselineSkipped as err:
            notes[name] = f"skipped: {err}"
            continue
        out[name] = np.stack(columns, axis=-1)
        notes[name] = "; ".join(dict.fromkeys(labels))
    _FITTED[key] = (out, notes)
    return out, notes


# Baselines already fitted in this process, by series, split and horizon.
_FITTED: dict = {}


def choose_transforms(values: np.ndarray, n_train: int, season: int | None):
    """Transforms for a series whose user named none, decided on the
    training rows only: ``(transforms, reason)``.

    - ``log`` when every value is positive and the spread grows with the
      level (the standard deviations of consecutive seasons, or of 12-row
      blocks, rise with their means: correlation above 0.6, and the level
      changes by half or more);
    - ``diff`` when the KPSS test rejects level stationarity (p < 0.05) of
      the (logged) training rows: a trend or a wandering level, which a
      network scaled on the training range cannot extrapolate.
    """
    from statsmodels.tsa.stattools import kpss

    values = np.asarray(values, float)
    if values.ndim == 1:
        values = values[:, None]
    train = values[:n_train]
    steps, reasons = [], []
    block = season if season and season > 1 else 12
    blocks = n_train // block
    if (values > 0).all() and blocks >= 4:
        chunks = train[: blocks * block].reshape(blocks, block, -1)
        means, stds = chunks.mean(axis=1), chunks.std(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = [np.corrcoef(means[:, j], stds[:, j])[0, 1]
                    for j in range(values.shape[1])]
            growth = (means.max(axis=0) / means.min(axis=0)).min()
        if np.nanmin(corr) > 0.6 and growth >= 1.5:
            steps.append("log")
            reasons.append(f"log: positive, and the spread grows with the level "
                           f"(correlation {np.nanmin(corr):.2f})")
            train = np.log(train)
    with _quiet():
        try:
            pvalues = [kpss(train[:, j], regression="c", nlags="auto")[1]
                       for j in range(train.shape[1])]
        except (ValueError, np.linalg.LinAlgError):
            pvalues = []
    if pvalues and min(pvalues) < 0.05:
        steps.append("diff")
        reasons.append(f"diff: KPSS rejects a stationary level (p={min(pvalues):.3f} "
                       f"< 0.05)")
    if not steps:
        p = f"p={min(pvalues):.3f}" if pvalues else "not testable"
        reasons.append(f"none: no growing spread, and a stationary level (KPSS {p})")
    return tuple(steps), "; ".join(reasons)
