"""Combinations of forecasts: the networks' and the statistical models',
weighted by how well each forecast rows none of them was fitted on.

A combination of a network and ETS or ARIMA is often better than any of
them (the M4 competition's lesson), and on a short or plain series the
statistical model alone may be the best there is. So the weights are fitted
on out-of-sample forecasts (the validation origins), and a combination
that does worse there than its best single member is never chosen: that
member is served alone, and the verdict says so in plain words.

Two ways to weight, both measured by ``make accuracy``:

- ``inverse_mse``: each member in proportion to 1 / its mean squared error
  (Bates and Granger, 1969): stable with few origins;
- ``least_squares``: the non-negative weights summing to one that minimise
  the combination's squared error (constrained least squares): the better
  fit when the origins are many, the noisier one when they are few.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

METHODS = ("inverse_mse", "least_squares")
NETWORK = "network"


@dataclasses.dataclass(frozen=True)
class Combination:
    """The weights chosen (``{member: weight}``, summing to one, members of
    weight 0 left out), each member's and the combination's out-of-sample
    RMSE, and the verdict in words."""

    weights: dict
    rmse: dict
    verdict: str

    @property
    def members(self) -> list[str]:
        return list(self.weights)

    def combine(self, forecasts: dict) -> np.ndarray:
        """The weighted sum of ``forecasts`` (``{member: array}``, the same
        shape each) over this combination's members."""
        return sum(w * np.asarray(forecasts[m], dtype="float64")
                   for m, w in self.weights.items())


def fit_weights(truth, forecasts: dict, method: str = "inverse_mse") -> dict:
    """Weights for ``forecasts`` (``{member: (n, horizon, targets)}``) fitted
    on ``truth``; non-negative, summing to one."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; received {method!r}")
    truth = np.asarray(truth, dtype="float64")
    names = list(forecasts)
    errors = {m: np.asarray(forecasts[m], dtype="float64") - truth for m in names}
    if method == "inverse_mse":
        inverse = np.array([1.0 / max(float(np.mean(errors[m] ** 2)), 1e-300)
                            for m in names])
        return dict(zip(names, (inverse / inverse.sum()).tolist(), strict=True))
    from scipy.optimize import minimize

    columns = np.stack([np.asarray(forecasts[m], dtype="float64").ravel() for m in names],
                       axis=1)
    target = truth.ravel()

    def loss(w):
        return float(np.mean((columns @ w - target) ** 2))

    start = np.full(len(names), 1.0 / len(names))
    result = minimize(loss, start, method="SLSQP", bounds=[(0.0, 1.0)] * len(names),
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}])
    w = np.clip(result.x if result.success else start, 0.0, None)
    return dict(zip(names, (w / w.sum()).tolist(), strict=True))


def choose(truth, forecasts: dict, method: str = "inverse_mse") -> Combination:
    """The combination of ``forecasts`` to serve, judged on ``truth`` (the
    out-of-sample rows the weights are fitted on): the weighted one, unless
    its error is above its best single member's, which is then served alone."""
    truth = np.asarray(truth, dtype="float64")

    def rmse(pred):
        return float(np.sqrt(np.mean((np.asarray(pred, dtype="float64") - truth) ** 2)))

    single = {m: rmse(f) for m, f in forecasts.items()}
    best = min(single, key=single.get)
    weights = fit_weights(truth, forecasts, method)
    weights = {m: w for m, w in weights.items() if w > 1e-6}
    total = sum(weights.values())
    weights = {m: w / total for m, w in weights.items()}
    combined = rmse(sum(w * np.asarray(forecasts[m], dtype="float64")
                        for m, w in weights.items()))
    scores = {**single, "combination": combined}
    if len(weights) > 1 and combined <= single[best]:
        parts = ", ".join(f"{m} {w:.2f}" for m, w in weights.items())
        verdict = (f"serving a combination ({parts}): validation RMSE {combined:.4g} "
                   f"against {single[best]:.4g} for {best} alone")
        return Combination(weights, scores, verdict)
    verdict = f"serving {best} alone: validation RMSE {single[best]:.4g}"
    if best != NETWORK and NETWORK in single:
        verdict += (f"; the networks add nothing on this series (network "
                    f"{single[NETWORK]:.4g}, combined {combined:.4g})")
    elif len(weights) > 1:
        verdict += f" (the combination: {combined:.4g})"
    return Combination({best: 1.0}, scores, verdict)


# === The statistical members, served ===

def rows_needed(weights: dict, season: int | None) -> int:
    """Rows of history the statistical members of ``weights`` need to be
    fitted as they were in training (ETS: two seasons; SARIMA: three, for
    its seasonal orders)."""
    from experiments.forecasting.statistical import MAX_SARIMA_SEASON

    seasonal = bool(season and season > 1)
    need = {"ets": 2 * season + 2 if seasonal else 10,
            "sarima": 3 * season + 2 if seasonal and season <= MAX_SARIMA_SEASON else 12}
    return max([need[m] for m in weights if m in need], default=0)


def statistical_forecast(name: str, values, steps: int, season: int | None,
                         forms=None) -> np.ndarray:
    """``name``'s (``ets``, ``sarima``) forecast of the ``steps`` values after
    ``values`` (``(rows, targets)``), fitted on all of them: ``(steps, targets)``.
    ``forms`` (one per target, as ``statistical.forecasts`` chose them in
    training) keeps each model's form and orders and refits its parameters
    only; None searches again.

    Raises:
        ValueError: the model cannot be fitted on this history, saying why.
    """
    from experiments.forecasting import statistical

    values = np.asarray(values, dtype="float64")
    key = (name, hashlib.sha256(values.tobytes()).hexdigest(), values.shape, steps, season,
           json.dumps(forms, sort_keys=True))
    if key in _FORECASTS:  # the same history again (a retried request, a saved example)
        return _FORECASTS[key].copy()
    n = len(values)
    columns = []
    for j in range(values.shape[1]):
        try:
            form = forms[j] if forms else None
            pred, _, _ = statistical.MODELS[name](values[:, j], n, np.array([n - 1]), steps,
                                                  season, form=form)
        except statistical.BaselineSkipped as err:
            raise ValueError(f"the {name} member of this combination cannot forecast "
                             f"this history: {err}") from None
        columns.append(pred[0])
    out = np.stack(columns, axis=-1)
    if len(_FORECASTS) >= MAX_REMEMBERED:
        _FORECASTS.pop(next(iter(_FORECASTS)))
    _FORECASTS[key] = out
    return out.copy()


# Statistical members' forecasts already made in this process, by history:
# refitting them is most of a served combination's latency (a few tenths of
# a second per series), and the same history is often asked for again.
MAX_REMEMBERED = 256
_FORECASTS: dict = {}


__all__ = ["METHODS", "NETWORK", "Combination", "choose", "fit_weights", "rows_needed",
           "statistical_forecast"]
