"""Combinations of the networks' and the statistical models' forecasts,
weighted on out-of-sample rows, never worse there than the best member."""

import numpy as np
import pytest

from experiments.forecasting import combination


def forecasts(seed=0, n=40):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, 3, 1)).cumsum(axis=0)
    # Two members with independent errors of different sizes.
    return truth, {"network": truth + rng.normal(0, 1.0, truth.shape),
                   "ets": truth + rng.normal(0, 2.0, truth.shape)}


@pytest.mark.parametrize("method", combination.METHODS)
def test_weights_are_non_negative_sum_to_one_and_favour_the_better_member(method):
    truth, f = forecasts()
    w = combination.fit_weights(truth, f, method)
    assert set(w) == {"network", "ets"} and sum(w.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in w.values()) and w["network"] > w["ets"]


def test_inverse_mse_weights_worked_by_hand():
    truth = np.zeros((2, 1, 1))
    f = {"network": np.full((2, 1, 1), 1.0), "ets": np.full((2, 1, 1), 2.0)}  # MSE 1, 4
    w = combination.fit_weights(truth, f, "inverse_mse")
    assert w == pytest.approx({"network": 0.8, "ets": 0.2})
    with pytest.raises(ValueError, match="method must be one of"):
        combination.fit_weights(truth, f, "median")


def test_independent_errors_combine_better_and_the_combination_is_served():
    truth, f = forecasts()
    chosen = combination.choose(truth, f)
    assert set(chosen.members) == {"network", "ets"}
    assert chosen.rmse["combination"] < min(chosen.rmse["network"], chosen.rmse["ets"])
    np.testing.assert_allclose(
        chosen.combine(f), chosen.weights["network"] * f["network"]
        + chosen.weights["ets"] * f["ets"])
    assert chosen.verdict.startswith("serving a combination")


def test_a_combination_worse_than_its_best_member_is_never_served():
    """The same errors in both members, one of them much larger: no
    weighting beats the better member alone, which is served alone."""
    truth, f = forecasts()
    error = f["network"] - truth
    f = {"network": truth + 5 * error, "ets": truth + error}
    for method in combination.METHODS:
        chosen = combination.choose(truth, f, method)
        assert chosen.weights == {"ets": 1.0}
        assert "the networks add nothing on this series" in chosen.verdict
        assert chosen.rmse["ets"] <= chosen.rmse["combination"]


@pytest.mark.slow
def test_a_served_combination_is_the_weighted_sum_of_its_members(tmp_path, monkeypatch):
    """By default (``combine="inverse_mse"``) the served forecast equals the
    weights times the network's forecast and the statistical members'
    (refitted on the history given, in the forms chosen in training), to
    1e-6, before and after saving. A member that cannot be fitted on a
    history leaves its weight to the others, with a warning; a history too
    short for the members is refused, naming them."""
    import dataclasses

    import pandas as pd

    from experiments.forecasting.forecast_model import ForecastModel

    t = np.arange(96)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"month": pd.date_range("2010-01-01", periods=96, freq="MS"),
                       "sales": 200 + 2 * t + 30 * np.sin(2 * np.pi * t / 12)
                       + rng.normal(0, 5, 96)})
    model = ForecastModel("gru", target="sales", time_col="month", horizon=6, window=12,
                          epochs=3, hyperparameters={"units": 4}).fit(df)
    forecaster = model.forecaster_
    weights = forecaster.combination["weights"]
    assert weights and sum(weights.values()) == pytest.approx(1.0)
    out = model.predict(df)
    parts = {"network": dataclasses.replace(forecaster, combination=None).forecast(
        model.network_, df)["sales"].to_numpy()}
    for name in set(weights) - {"network"}:
        parts[name] = combination.statistical_forecast(
            name, df[["sales"]].to_numpy(), 6, 12, forecaster.combination["forms"][name])[:, 0]
    expected = sum(w * parts[m] for m, w in weights.items())
    np.testing.assert_allclose(out["sales"], expected, rtol=1e-6)
    again = ForecastModel.load(model.save(str(tmp_path / "combined"))).predict(df)
    pd.testing.assert_frame_equal(again, out, rtol=1e-6)
    # A statistical member is served: on this seasonal series with a trend
    # they forecast better than a network trained for 3 epochs.
    members = sorted(set(weights) - {"network"})
    assert members
    with pytest.raises(ValueError, match=rf"needs at least \d+ \(window 12.*; "
                                         rf"{' and '.join(m.upper() for m in members)}, "
                                         rf"combined with it, need"):
        model.predict(df.iloc[-13:])
    # With both members, SARIMA failing on this history: ETS takes its weight.
    weights = {"network": 0.5, "ets": 0.25, "sarima": 0.25}
    served = dataclasses.replace(forecaster, combination={**forecaster.combination,
                                                          "weights": weights})
    parts["ets"] = combination.statistical_forecast(
        "ets", df[["sales"]].to_numpy(), 6, 12, served.combination["forms"].get("ets"))[:, 0]
    real = combination.statistical_forecast

    def sarima_fails(name, *args):
        if name == "sarima":
            raise ValueError("the sarima member of this combination cannot forecast this "
                             "history: too regular")
        return real(name, *args)

    monkeypatch.setattr(combination, "statistical_forecast", sarima_fails)
    with pytest.warns(UserWarning, match="too regular; series 0 is forecast without it"):
        fallback = served.forecast(model.network_, df)
    expected = (weights["network"] * parts["network"]
                + (weights["ets"] + weights["sarima"]) * parts["ets"])
    np.testing.assert_allclose(fallback["sales"], expected, rtol=1e-6)


def test_statistical_members_need_their_history_and_say_so():
    assert combination.rows_needed({"network": 1.0}, 12) == 0
    assert combination.rows_needed({"ets": 0.5, "network": 0.5}, 12) == 26
    assert combination.rows_needed({"sarima": 1.0}, 12) == 38
    with pytest.raises(ValueError, match="the ets member of this combination cannot"):
        combination.statistical_forecast("ets", np.arange(1.0, 13.0)[:, None], 3, 12)
