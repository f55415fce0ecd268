"""Short series get a forecast: the settings nobody named shrink to fit,
the run says so, and only a series below the stated minimum is refused."""

import numpy as np
import pandas as pd
import pytest

from experiments import data
from experiments.config import RunConfig
from experiments.errors import DataError
from experiments.forecasting import short_series
from experiments.forecasting.forecast_model import ForecastModel
from experiments.tasks import load_tasks


def monthly(n):
    t = np.arange(n)
    return pd.DataFrame({"period": pd.date_range("2000-01-01", periods=n, freq="MS"),
                         "value": 100 + t + 10 * np.sin(2 * np.pi * t / 12)})


def task_for(n, **settings):
    series = data.frame_series(monthly(n), target="value", time_col="period")
    return load_tasks(RunConfig(**settings), "train", series=series)[1][-1]


def test_54_months_for_18_ahead_shrink_window_splits_then_the_direct_horizon():
    chosen = {"window": 24, "horizon": 18, "val_size": 7, "test_size": 8}
    fitted, note = short_series.fit_to_length(54, chosen, set(), lost=1, rolls=True)
    assert fitted == {"window": 19, "horizon": 9, "val_size": 9, "test_size": 9}
    assert short_series.training_windows(54, 19, 9, 9, 9, 1) >= short_series.MIN_TRAIN_WINDOWS
    assert "rolls forward to the 18 asked for" in note and "window 24 -> 19" in note
    # Extra feature columns cannot be rolled forward: the horizon stays.
    assert short_series.fit_to_length(54, chosen, set(), lost=1, rolls=False) == (chosen, None)
    # A window the user named stays as named.
    fixed, _ = short_series.fit_to_length(54, chosen, {"window"}, lost=1, rolls=True)
    assert fixed is chosen or fixed["window"] == 24


@pytest.mark.parametrize("horizon,season", [(18, 12), (8, 4), (1, 12), (6, 1), (24, 7)])
def test_every_series_from_the_minimum_up_gets_settings(horizon, season):
    minimum = short_series.minimum_rows(horizon, season)
    assert minimum >= 2 * season + horizon
    start = {"window": 3 * season, "horizon": horizon, "val_size": horizon,
             "test_size": horizon}
    for n in range(minimum, minimum + 3 * horizon):
        fitted, _ = short_series.fit_to_length(n, start, set(), lost=1, rolls=True)
        assert short_series.training_windows(n, fitted["window"], fitted["horizon"],
                                             fitted["val_size"], fitted["test_size"], 1) >= 1


def test_a_series_long_enough_keeps_its_settings_and_says_nothing():
    task = task_for(144, horizon=12)
    assert task.adjustments == () and task.steps is None
    assert task.prepared.window == 24 and task.prepared.horizon == 12


def test_the_run_records_what_shrank_and_below_the_minimum_it_names_it():
    task = task_for(54, horizon=18)
    assert task.prepared.horizon == 9 and task.steps == 18
    assert task.adjustments[0].startswith("the series is short (54 rows)")
    with pytest.raises(DataError, match=r"41 rows are too few to forecast 18 steps; "
                                        r"lstm-zoo needs at least 42 rows"):
        task_for(41, horizon=18)


@pytest.mark.slow
def test_a_54_month_series_gets_an_18_month_forecast_that_survives_saving(tmp_path):
    df = monthly(54)
    model = ForecastModel("gru", target="value", time_col="period", horizon=18, epochs=2,
                          hyperparameters={"units": 4}).fit(df)
    out = model.predict()
    assert len(out) == 18 and np.isfinite(out["value"]).all()
    assert out["period"].iloc[0] == pd.Timestamp("2004-07-01")
    # Past the network's 9 steps the intervals widen (rolled forward).
    width = (out["upper_80"] - out["lower_80"]).to_numpy()
    assert (width[9:] >= width[:9] - 1e-9).all()
    again = ForecastModel.load(model.save(str(tmp_path / "short"))).predict()
    pd.testing.assert_frame_equal(again, out, rtol=1e-6)
    # The served pyfunc, as `lstm-zoo forecast` and `mlflow models serve` call it.
    import mlflow

    served = mlflow.pyfunc.load_model(str(tmp_path / "short")).predict(df)
    assert len(served) == 18
    np.testing.assert_allclose(served["value"], out["value"], rtol=1e-6)
