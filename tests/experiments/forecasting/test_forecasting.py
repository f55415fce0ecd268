"""Forecasts from raw history: intervals, input checks, rolling forward.

Fast tests of ``experiments.forecasting.forecaster`` with a small untrained network;
the served model's end-to-end tests (a real run, pyfunc, `mlflow models
serve`, `lstm-zoo forecast`) are in test_train_e2e.py.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from experiments.data import Series
from experiments.forecasting.forecaster import (
    Forecaster,
    check_levels,
    conformal_widths,
    coverage,
)
from experiments.forecasting.preprocessing import Preprocessor

# --- Split conformal on a series with known noise ---


def test_conformal_intervals_cover_as_stated_on_known_noise():
    """A forecaster that knows the signal, on a series with Gaussian noise of
    sigma 2: the intervals calibrated on 300 forecasts cover 5,000 new ones
    at their level, within 2.5 points (the binomial spread of the coverage
    of 300 calibration points is about 2 points at 80%), and their widths are
    the noise's quantiles within 12%."""
    rng = np.random.default_rng(0)
    sigma, horizon = 2.0, 3

    def draw(n):
        signal = rng.uniform(50, 150, size=(n, horizon, 1))
        return signal + rng.normal(0, sigma, size=signal.shape), signal

    truth, pred = draw(300)
    widths = conformal_widths(truth, pred, (80, 95))
    new_truth, new_pred = draw(5000)
    for level, z in (("80", 1.2816), ("95", 1.9600)):
        assert coverage(new_truth, new_pred, widths[level]) == pytest.approx(
            int(level) / 100, abs=0.025)
        assert np.asarray(widths[level]) == pytest.approx(z * sigma, rel=0.12)


def test_conformal_widths_with_few_calibration_points_use_the_largest_error():
    truth = np.array([[[1.0]], [[2.0]], [[3.0]]])
    pred = np.zeros_like(truth)
    # ceil(4 * 0.95) = 4 > 3 points, one step: the largest residual.
    assert conformal_widths(truth, pred, (95,))["95"] == [[3.0]]
    assert conformal_widths(truth, pred, (50,))["50"] == [[2.0]]


def test_too_few_origins_per_step_pool_the_steps_scaled_by_the_square_root():
    """Two origins of a 9-step horizon with errors sigma * sqrt(step): too few
    for 80% at each step, so the 18 errors are pooled, and the widths grow
    as the square root of the step; on new draws they cover what split
    conformal promises (at least 80%)."""
    rng = np.random.default_rng(0)
    horizon, sigma = 9, 3.0
    scale = np.sqrt(np.arange(1, horizon + 1))[None, :, None]

    def draw(n):
        return rng.normal(0, sigma, size=(n, horizon, 1)) * scale, np.zeros((n, horizon, 1))

    widths = np.asarray(conformal_widths(*draw(2), (80,))["80"])[:, 0]
    np.testing.assert_allclose(widths / widths[0], scale[0, :, 0], rtol=1e-9)
    covered = np.mean([coverage(*draw(2000), conformal_widths(*draw(2), (80,))["80"])
                       for _ in range(200)])
    # Split conformal's expected coverage: rank / (n + 1) = ceil(19 * 0.8) / 19.
    assert covered == pytest.approx(16 / 19, abs=0.02)


@pytest.mark.parametrize("given", [[0], [100], ["abc"], [80.5]])
def test_interval_levels_outside_0_100_are_refused(given):
    with pytest.raises(ValueError, match="--intervals takes whole percentages"):
        check_levels(given)


# --- A forecaster on a small monthly series ---

WINDOW, HORIZON = 6, 2


def monthly(n=40, features=False):
    index = pd.date_range("2020-01-01", periods=n, freq="MS", name="month")
    frame = pd.DataFrame({"sales": 100 + 10 * np.sin(np.arange(n)) + np.arange(n)},
                         index=index)
    cols = ("sales",)
    if features:
        frame["price"] = np.linspace(1, 2, n)
        cols = ("sales", "price")
    return Series("shop", frame, ("sales",), cols, "generated:shop", season=12)


def forecaster_for(series, transforms=("log", "diff")):
    pre = Preprocessor.fit(series, window=WINDOW, horizon=HORIZON, transforms=transforms,
                           season=12, n_train=30)
    widths = {"80": [[1.0], [2.0]], "95": [[3.0], [4.0]]}
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((WINDOW, len(series.features))),
                                keras.layers.Flatten(), keras.layers.Dense(HORIZON)])
    return Forecaster(pre, "month", widths), network


def history_of(series):
    return series.frame.reset_index().assign(month=lambda f: f.month.dt.strftime("%Y-%m"))


def test_forecast_continues_the_timestamps_in_the_data_units():
    series = monthly()
    forecaster, network = forecaster_for(series)
    out = forecaster.forecast(network, history_of(series))
    assert list(out.columns) == ["month", "sales", "lower_80", "upper_80",
                                 "lower_95", "upper_95"]
    assert list(out["month"]) == list(pd.to_datetime(["2023-05-01", "2023-06-01"]))
    # The network's output, scaled back and the log-differences undone by hand.
    pre = forecaster.preprocessor
    z = pre.transform(series.frame).to_numpy("float32")[-WINDOW:]
    step = np.asarray(network(z[None]))[0] * pre.std["sales"] + pre.mean["sales"]
    expected = series.frame["sales"].iloc[-1] * np.exp(np.cumsum(step))
    np.testing.assert_allclose(out["sales"], expected, rtol=1e-5)
    np.testing.assert_allclose(out["upper_95"] - out["sales"], [3.0, 4.0])


def test_rolling_past_the_horizon_widens_the_intervals():
    series = monthly()
    forecaster, network = forecaster_for(series)
    out = forecaster.forecast(network, history_of(series), steps=5)
    assert len(out) == 5 and out["month"].is_monotonic_increasing
    assert out["month"].iloc[-1] == pd.Timestamp("2023-09-01")
    half = (out["upper_80"] - out["sales"]).to_numpy()
    # Steps 1-2 are the direct forecast, 3-4 the second block (x sqrt 2), 5 the third.
    np.testing.assert_allclose(half, [1, 2, np.sqrt(2), 2 * np.sqrt(2), np.sqrt(3)])
    # The first block of a rolled forecast is the direct forecast.
    direct = forecaster.forecast(network, history_of(series))
    np.testing.assert_allclose(out["sales"][:2], direct["sales"])


def test_rolling_needs_no_future_features_so_models_with_features_stop_at_the_horizon():
    series = monthly(features=True)
    forecaster, network = forecaster_for(series)
    assert len(forecaster.forecast(network, history_of(series))) == HORIZON
    with pytest.raises(ValueError, match=r"steps=3 goes past the model's horizon \(2\).*"
                                         r"\['price'\]"):
        forecaster.forecast(network, history_of(series), steps=3)


@pytest.mark.parametrize("damage, message", [
    (lambda h: h.iloc[:5], r"history has 5 rows; the model needs at least 7 \(window 6 "
                           r"\+ 1 lost to log\+diff\)"),
    (lambda h: h.drop(columns="sales"), r"history is missing column 'sales'"),
    (lambda h: h.assign(sales=h.sales.where(h.index != 9)),
     r"history column 'sales', row 10 is empty \(NaN\)"),
    (lambda h: h.assign(sales=h.sales.astype(object).where(h.index != 3, "n/a")),
     r"history column 'sales', row 4 is 'n/a', not a number"),
    (lambda h: h.iloc[::-1], r"history column 'month' is not increasing: row 2"),
    (lambda h: h.drop(index=20), r"history column 'month' is irregular: row 21 is "
                                 r"2021-10-01.*spaced 'MS', so it should be 2021-09-01"),
    (lambda h: h.assign(month=h.month.where(h.index != 7, "last spring")),
     r"history column 'month', row 8: 'last spring' is not a timestamp"),
])
def test_bad_history_is_refused_with_a_named_error(damage, message):
    series = monthly()
    forecaster, network = forecaster_for(series)
    with pytest.raises(ValueError, match=message):
        forecaster.forecast(network, damage(history_of(series)))


def test_forecaster_config_is_plain_json_and_round_trips():
    forecaster, network = forecaster_for(monthly())
    again = Forecaster.from_config(json.loads(json.dumps(forecaster.to_config())))
    assert again == forecaster


def test_ui_starts_mlflow_without_importing_tensorflow(tmp_path):
    """`lstm-zoo ui` hands over to MLflow at once: Keras and TensorFlow take
    seconds to import and the UI needs neither."""
    script = (
        "import os, sys\n"
        "def execv(path, argv):\n"
        "    print('keras' in sys.modules, 'tensorflow' in sys.modules, argv[2:4])\n"
        "    os._exit(0)\n"
        "os.execv = execv\n"
        "from experiments import cli\n"
        f"cli.main(['ui', '--tracking-uri', 'sqlite:///{tmp_path}/m.db'])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, KERAS_BACKEND="tensorflow"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "False False ['mlflow', 'ui']" in done.stdout


# --- Many series in one call ---

def test_many_histories_in_one_call_equal_one_call_each():
    """A ``unique_id`` column: every series forecast in one model call, each
    exactly as alone, in the order the series first appear; steps past the
    horizon roll forward for all of them."""
    from experiments.forecasting.forecaster import ID_COL

    series = monthly()
    forecaster, network = forecaster_for(series)
    history = history_of(series)
    parts = {"b": history, "a": history.iloc[:-5].assign(sales=lambda f: f.sales * 1.5)}
    batch = pd.concat([p.assign(**{ID_COL: k}) for k, p in parts.items()])
    for steps in (None, 5):
        out = forecaster.forecast(network, batch, steps=steps)
        assert list(out[ID_COL].unique()) == ["b", "a"]
        for key, part in parts.items():
            alone = forecaster.forecast(network, part, steps=steps)
            got = out[out[ID_COL] == key].drop(columns=ID_COL).reset_index(drop=True)
            pd.testing.assert_frame_equal(got, alone)


def test_a_bad_series_in_a_batch_is_named():
    from experiments.forecasting.forecaster import ID_COL

    series = monthly()
    forecaster, network = forecaster_for(series)
    good = history_of(series)
    bad = good.astype({"sales": object})
    bad.loc[3, "sales"] = "n/a"
    batch = pd.concat([good.assign(**{ID_COL: "ok"}), bad.assign(**{ID_COL: "shop-7"})])
    with pytest.raises(ValueError, match="series unique_id='shop-7': history column "
                                         "'sales', row 4 is 'n/a'"):
        forecaster.forecast(network, batch)


@pytest.mark.parametrize("transforms", [(), ("log",), ("log", "diff"),
                                        ("diff", "seasonal_diff")])
def test_transform_values_on_arrays_equals_transform_on_frames(transforms):
    series = monthly(features=True)
    pre = Preprocessor.fit(series, window=WINDOW, horizon=HORIZON, transforms=transforms,
                           season=12, n_train=30)
    frame = series.frame[list(series.features)]
    expected = pre.transform(frame).to_numpy()
    got = pre.transform_values(np.stack([frame.to_numpy(), frame.to_numpy()]))
    np.testing.assert_allclose(got[1], expected, equal_nan=True)


def test_too_few_calibration_forecasts_for_a_level_are_said():
    from experiments.forecasting.forecaster import calibration_note

    assert calibration_note(19, (80, 95)) is None  # ceil(20 * 0.95) = 19
    note = calibration_note(8, (80, 95))
    assert "8 out-of-sample forecast(s)" in note and "too few for 95%" in note
    assert "80%" not in note and "(that needs 19)" in note
    assert "80%, 95%" in calibration_note(3, (80, 95))
    # Pooled over 12 steps: 36 errors are enough for 95%.
    pooled = calibration_note(3, (80, 95), horizon=12)
    assert "pool the errors of all 12 steps (36)" in pooled and "largest" not in pooled
    assert "largest errors seen" in calibration_note(1, (80, 95), horizon=4)
