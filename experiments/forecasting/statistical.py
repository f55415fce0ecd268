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
# The automatic (S)ARIMA's search (Hyndman & Khandakar's stepwise, as R's
# auto.arima and statsforecast's AutoARIMA do it): the orders' bounds, the
# models it starts from, and at most this many fits (each 0.01 to 0.5 s on a
# monthly series; a run's search takes a few seconds, measured in the README).
MAX_ORDER, MAX_SEASONAL_ORDER, MAX_FITS = 3, 1, 30
START_ORDERS = ((2, 2, 1, 1), (0, 0, 0, 0), (1, 0, 1, 0), (0, 1, 0, 1))  # (p, q, P, Q)


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
        season: int | None, form: dict | None = None):
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
        form: a form ``ets`` chose before (the ``form`` of its label's fit,
            see ``forecasts``): fit that one only, as a served combination
            does on new history.

    Returns:
        ``(forecasts, label, form)``.
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
    if form is not None:
        specs = [dict(form)]
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
    return out, label, spec


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
           season: int | None, form: dict | None = None):
    """An automatic seasonal ARIMA on one target, on logs when the series is
    positive: the differencing chosen by tests (``differences``), the orders
    by a stepwise search on AICc (``stepwise_orders``), both on the training
    rows only; then filtered through the later rows with those parameters.
    Without a season, or with one longer than ``MAX_SARIMA_SEASON`` or than
    the training rows can fit, a non-seasonal ARIMA. Arguments and return
    as for ``ets``; a ``form`` holds the differencing, orders and season."""
    values = np.asarray(values, float)
    positive = bool((values[:n_train] > 0).all() and (values > 0).all())
    series = np.log(values) if positive else values
    train = series[:n_train]
    if n_train < 12:
        raise BaselineSkipped(f"sarima: {n_train} training rows are too few")
    seasonal = bool(season and 1 < season <= MAX_SARIMA_SEASON
                    and n_train >= 3 * season + 2)
    m = season if seasonal else 0
    with _quiet():
        if form is None:
            d, big_d = differences(train, m)
            fit, (p, q, big_p, big_q), tried = stepwise_orders(train, d, big_d, m)
        else:  # the form chosen before; searched again only if it no longer fits
            d, big_d, m = form["d"], form["D"], form["season"]
            seasonal = bool(m)
            (p, q, big_p, big_q), tried = form["orders"], 1
            fit = _sarimax(train, (p, q, big_p, big_q), d, big_d, m, simple=False)
            if fit is None or not np.isfinite(fit.aicc):
                fit, (p, q, big_p, big_q), tried = stepwise_orders(train, d, big_d, m)
        out = np.empty((len(origins), horizon))
        for i, origin in enumerate(origins):
            out[i] = fit.apply(series[: origin + 1], refit=False).forecast(horizon)
    if positive:
        out = np.exp(out)
    if not np.isfinite(out).all():
        raise BaselineSkipped("sarima: the fit gave non-finite forecasts")
    label = (f"SARIMA({p},{d},{q})({big_p},{big_d},{big_q},{m})" if seasonal
             else f"ARIMA({p},{d},{q})")
    label += f", stepwise by AICc over {tried} fits"
    why = ""
    if season and season > MAX_SARIMA_SEASON:
        why = f" (season {season} > {MAX_SARIMA_SEASON}: non-seasonal)"
    elif season and season > 1 and not seasonal:
        why = (f" ({n_train} training rows are too few for a seasonal fit of season "
               f"{season}: non-seasonal)")
    form = {"d": d, "D": big_d, "season": m, "orders": [p, q, big_p, big_q]}
    return out, label + (" on logs" if positive else "") + why, form


def differences(train: np.ndarray, season: int) -> tuple[int, int]:
    """``(d, D)``: one seasonal difference when there is a season, then as
    many plain ones (at most two) as the KPSS test needs to stop rejecting
    a stationary level (p < 0.05), as auto.arima decides them."""
    from statsmodels.tsa.stattools import kpss

    big_d = 1 if season else 0
    x = train[season:] - train[:-season] if season else train
    d = 0
    while d < 2 and len(x) > 10:
        try:
            if kpss(x, regression="c", nlags="auto")[1] >= 0.05:
                break
        except (ValueError, np.linalg.LinAlgError):
            break
        x, d = np.diff(x), d + 1
    return d, big_d


def stepwise_orders(train: np.ndarray, d: int, big_d: int, season: int):
    """Hyndman & Khandakar's stepwise search over ``(p, q, P, Q)``: fit the
    ``START_ORDERS``, then move one order (or ``p`` and ``q`` together) by
    one from the best while that lowers the AICc, at most ``MAX_FITS``
    fits. A constant is fitted when nothing is differenced.

    The search fits the differenced series (``simple_differencing``: about
    three times faster, and the AICc still compares orders of the same
    differencing); the orders chosen are then fitted on the series itself,
    whose forecasts are in its own units.
    Returns ``(fit, (p, q, P, Q), fits tried)``."""
    seasonal_max = MAX_SEASONAL_ORDER if season else 0
    fitted: dict = {}

    def fit(orders):
        if orders not in fitted:
            result = _sarimax(train, orders, d, big_d, season, simple=True)
            fitted[orders] = np.inf if result is None or not np.isfinite(result.aicc) \
                else result.aicc
        return fitted[orders]

    def allowed(orders):
        p, q, big_p, big_q = orders
        return (0 <= p <= MAX_ORDER and 0 <= q <= MAX_ORDER
                and 0 <= big_p <= seasonal_max and 0 <= big_q <= seasonal_max)

    for start in dict.fromkeys(o if season else (o[0], o[1], 0, 0) for o in START_ORDERS):
        fit(start)
    best = min(fitted, key=fitted.get)
    moves = [(i, step) for i in range(4) for step in (-1, 1)]
    improved = True
    while improved and len(fitted) < MAX_FITS:
        improved = False
        neighbours = [tuple(v + step * (j == i) for j, v in enumerate(best))
                      for i, step in moves]
        neighbours += [(best[0] + step, best[1] + step, *best[2:]) for step in (-1, 1)]
        for candidate in neighbours:
            if not allowed(candidate) or candidate in fitted or len(fitted) >= MAX_FITS:
                continue
            if fit(candidate) < fitted[best]:
                best, improved = candidate, True
                break
    result = _sarimax(train, best, d, big_d, season, simple=False)
    if result is None or not np.isfinite(fitted[best]):
        raise BaselineSkipped("sarima: no order could be fitted")
    return result, best, len(fitted)


def _sarimax(train, orders, d, big_d, season, simple: bool):
    """A SARIMAX fit of ``orders`` ``(p, q, P, Q)``, or None where it fails."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    p, q, big_p, big_q = orders
    try:
        return SARIMAX(train, order=(p, d, q), trend="c" if d + big_d == 0 else "n",
                       seasonal_order=(big_p, big_d, big_q, season) if season
                       else (0, 0, 0, 0), simple_differencing=simple).fit(disp=False)
    except (ValueError, np.linalg.LinAlgError):
        return None


MODELS = {"ets": ets, "sarima": sarima}


def forecasts(values: np.ndarray, n_train: int, origins: np.ndarray, horizon: int,
              season: int | None):
    """Every statistical baseline on every target.

    Args:
        values: ``(rows, targets)`` raw values.

    Returns:
        ``(forecasts, notes, forms)``: ``{name: (origins, horizon, targets)}``
        for the baselines that fitted, ``{name: description or reason
        skipped}``, and ``{name: [form chosen, per target]}`` (what a served
        combination refits on new history without searching again).
    """
    values = np.asarray(values, float)
    key = (hashlib.sha256(values.tobytes()).hexdigest(), values.shape, n_train,
           tuple(int(o) for o in origins), horizon, season)
    if key in _FITTED:  # the same series and split again (compare, folds, a notebook)
        return _FITTED[key]
    out, notes, forms = {}, {}, {}
    fitted_on = (hashlib.sha256(values[:n_train].tobytes()).hexdigest(), n_train, season)
    for name, model in MODELS.items():
        columns, labels, chosen = [], [], []
        try:
            for j in range(values.shape[1]):
                # Other origins of the same training rows (validation, then
                # test): the form chosen the first time, not a new search,
                # and that search's description.
                before = _CHOSEN.get((*fitted_on, name, j))
                pred, label, form = model(values[:, j], n_train, origins, horizon, season,
                                          form=before and before[0])
                form, label = _CHOSEN.setdefault((*fitted_on, name, j), (form, label))
                columns.append(pred)
                labels.append(label)
                chosen.append(form)
        except BaselineSkipped as err:
            notes[name] = f"skipped: {err}"
            continue
        out[name] = np.stack(columns, axis=-1)
        notes[name] = "; ".join(dict.fromkeys(labels))
        forms[name] = chosen
    _FITTED[key] = (out, notes, forms)
    return out, notes, forms


# Baselines already fitted in this process, by series, split and horizon;
# and the form (with its description) chosen on each series' training rows.
_FITTED: dict = {}
_CHOSEN: dict = {}


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
