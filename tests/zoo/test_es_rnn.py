"""es_rnn: the smoothing is Holt-Winters', the network starts at zero, and the
model trains and round-trips in safe mode, alone and through the
forecasting model object, on one series and on several."""

import keras
import numpy as np
import pandas as pd
import pytest

import zoo
from zoo.families.es_rnn import ExponentialSmoothing


def holt_winters(y, alpha, gamma, initial_season, horizon):
    """The smoothing written out in NumPy for one series: the window less its
    last level and season, and level plus season for ``horizon`` steps."""
    m = len(initial_season)
    season = list(initial_season)
    level = y[0] - season[0]
    for t, value in enumerate(y):
        if t > 0:
            level = alpha * (value - season[t]) + (1 - alpha) * level
        season.append(gamma * (value - level) + (1 - gamma) * season[t])
    normalised = y - level - np.array(season[:len(y)])
    future = level + np.array([season[len(y) + k % m] for k in range(horizon)])
    return normalised, future


def logit(p):
    return float(np.log(p / (1 - p)))


def test_smoothing_matches_holt_winters_written_out():
    rng = np.random.default_rng(0)
    layer = ExponentialSmoothing(targets=2, season_length=4, horizon=6)
    x = rng.normal(size=(3, 10, 3)).astype("float32")
    layer.build(x.shape)
    alphas, gammas = np.array([0.3, 0.8]), np.array([0.2, 0.6])
    initial = rng.normal(size=(4, 2)).astype("float32")
    layer.level_logit.assign([logit(a) for a in alphas])
    layer.season_logit.assign([logit(g) for g in gammas])
    layer.initial_season.assign(initial)
    normalised, base = (keras.ops.convert_to_numpy(t) for t in layer(x))
    for b in range(3):
        for j in range(2):
            want_window, want_future = holt_winters(x[b, :, j], alphas[j], gammas[j],
                                                    initial[:, j], 6)
            np.testing.assert_allclose(normalised[b, :, j], want_window, atol=1e-5)
            np.testing.assert_allclose(base[b, :, j], want_future, atol=1e-5)
    # The feature that is not a target passes through untouched.
    np.testing.assert_allclose(normalised[:, :, 2], x[:, :, 2])
    assert layer.coefficients()["alpha"] == pytest.approx(alphas, abs=1e-6)


def test_without_a_season_it_smooths_a_level_only():
    layer = ExponentialSmoothing(targets=1, season_length=1, horizon=3)
    x = np.arange(8, dtype="float32").reshape(1, 8, 1)
    normalised, base = (keras.ops.convert_to_numpy(t) for t in layer(x))
    want_window, want_future = holt_winters(x[0, :, 0], 0.5, 0.0, [0.0], 3)
    np.testing.assert_allclose(normalised[0, :, 0], want_window, atol=1e-6)
    np.testing.assert_allclose(base[0, :, 0], want_future, atol=1e-6)
    assert set(layer.coefficients()) == {"alpha"}


def test_across_series_each_smooths_with_its_own_coefficients_and_only_its_history():
    """Smyl's panel form: the series' trailing one-hot picks its own alpha,
    gamma and initial season (shared plus a learned offset); an unseen series
    (all zeros) keeps the shared ones; rows after ``history`` (the horizon's
    known covariates) are never smoothed."""
    rng = np.random.default_rng(2)
    layer = ExponentialSmoothing(targets=1, season_length=4, horizon=3, history=10,
                                 series_channels=2)
    x = rng.normal(size=(3, 13, 4)).astype("float32")
    x[:, :, 2:] = np.array([[1, 0], [0, 1], [0, 0]], "float32")[:, None, :]
    layer.build(x.shape)
    shared_initial = rng.normal(size=(4, 1)).astype("float32")
    layer.level_logit.assign([logit(0.5)])
    layer.season_logit.assign([logit(0.4)])
    layer.initial_season.assign(shared_initial)
    # Per series: [alpha logit, gamma logit, initial season (4)] offsets.
    offsets = np.zeros((2, 6), "float32")
    offsets[0, :2] = [logit(0.2) - logit(0.5), logit(0.7) - logit(0.4)]
    offsets[1, :2] = [logit(0.9) - logit(0.5), 0.0]
    offsets[1, 2:] = [1.0, -1.0, 0.5, 0.0]
    layer.series_kernel.assign(offsets)
    normalised, base = (keras.ops.convert_to_numpy(t) for t in layer(x))
    for b, (alpha, gamma) in enumerate([(0.2, 0.7), (0.9, 0.4), (0.5, 0.4)]):
        initial = shared_initial[:, 0] + (offsets[1, 2:] if b == 1 else 0.0)
        want_window, want_future = holt_winters(x[b, :10, 0], alpha, gamma, initial, 3)
        np.testing.assert_allclose(normalised[b, :10, 0], want_window, atol=1e-5)
        np.testing.assert_allclose(base[b, :, 0], want_future, atol=1e-5)
        own = layer.coefficients(x[b, 0, 2:])
        assert own["alpha"] + own["gamma"] == pytest.approx([alpha, gamma], abs=1e-5)
    # The horizon's targets are unknown: read as 0, whatever the input holds.
    np.testing.assert_allclose(normalised[:, 10:, 0], 0.0)
    np.testing.assert_allclose(normalised[:, :, 1:], x[:, :, 1:])


def test_an_untrained_model_forecasts_the_smoothing():
    model = zoo.build_model("es_rnn", (12, 1), 5, season_length=4, units=4)
    x = np.random.default_rng(1).normal(size=(2, 12, 1)).astype("float32")
    _, base = model.get_layer("exponential_smoothing")(x)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               keras.ops.convert_to_numpy(base)[:, :, 0], atol=1e-6)


def test_it_refuses_a_window_of_no_fixed_length_and_other_heads():
    with pytest.raises(ValueError, match="window of fixed length"):
        zoo.build_model("es_rnn", (None, 1), 3)
    with pytest.raises(ValueError, match="head"):
        zoo.build_model("es_rnn", (8, 1), 3, head="classification")
    with pytest.raises(ValueError, match="season_length"):
        zoo.build_model("es_rnn", (8, 1), 3, season_length=0)
    with pytest.raises(ValueError, match="history"):
        zoo.build_model("es_rnn", (8, 3), 3, history=9)
    with pytest.raises(ValueError, match="series_channels"):
        zoo.build_model("es_rnn", (8, 3), 3, series_channels=3)


@pytest.mark.parametrize("outputs", [6, (6, 2)], ids=["one series", "two series"])
def test_it_learns_and_round_trips_in_safe_mode(outputs, tmp_path):
    targets = 1 if outputs == 6 else 2
    t = np.arange(160, dtype="float32")
    series = np.stack([5 + 0.02 * t * (j + 1) + np.sin(2 * np.pi * t / 4 + j)
                       for j in range(targets)], axis=1)
    x = np.stack([series[i:i + 12] for i in range(140)])
    y = np.stack([series[i + 12:i + 18] for i in range(140)]).reshape(140, *np.atleast_1d(outputs))
    model = zoo.build_model("es_rnn", (12, targets), outputs, season_length=4, units=8)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    # One alpha and one gamma per series, moved from their start.
    coefficients = model.get_layer("exponential_smoothing").coefficients()
    assert len(coefficients["alpha"]) == len(coefficients["gamma"]) == targets
    assert coefficients["alpha"] != pytest.approx([0.5] * targets, abs=1e-4)
    path = tmp_path / "es_rnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0),
                               atol=1e-6)


@pytest.mark.slow  # trains, or starts a process: the full suite's
def test_the_forecasting_model_fits_saves_and_loads_es_rnn(tmp_path):
    """As a notebook uses it: the task sets the season, the saved model
    (loaded in safe mode by the pyfunc) forecasts as the fitted one did.
    Two series (a target each); one target's shapes are round-tripped in
    ``test_it_learns_and_round_trips_in_safe_mode``."""
    targets = ["a", "b"]
    from experiments.forecasting.forecast_model import ForecastModel

    t = np.arange(96)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"month": pd.date_range("2000-01", periods=96, freq="MS")})
    for j, name in enumerate(targets):
        df[name] = 100 + t * (j + 1) + 10 * np.sin(2 * np.pi * t / 12 + j) + rng.normal(0, 2, 96)
    model = ForecastModel("es_rnn", target=targets, time_col="month", horizon=6, epochs=2,
                          hyperparameters={"units": 4}).fit(df)
    assert model.network_.get_layer("exponential_smoothing").season_length == 12
    forecast = model.predict()
    assert len(forecast) == 6 and np.isfinite(forecast[targets].to_numpy()).all()
    model.save(str(tmp_path / "es"))
    again = ForecastModel.load(str(tmp_path / "es")).predict()
    np.testing.assert_allclose(again[targets].to_numpy(), forecast[targets].to_numpy(),
                               rtol=1e-6)
