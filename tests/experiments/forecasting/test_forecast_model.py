"""The forecasting model object, as a notebook uses it: DataFrames in,
no file of the user's and no MLflow store needed."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from experiments import data
from experiments.errors import ConfigError, DataError
from experiments.forecasting.forecast_model import ForecastModel

FIT = """
import importlib.resources, sys
import numpy as np, pandas as pd
from experiments.forecasting.forecast_model import ForecastModel
df = pd.read_csv(importlib.resources.files("experiments") / "data/airline-passengers.csv")
model = ForecastModel("gru", target="Passengers", time_col="Month", horizon=12, epochs=3,
                      hyperparameters={"units": 4}).fit(df)
model.predict().to_csv("forecast.csv", index=False)
cv = model.cross_validation(df, n_windows=2)
cv.to_csv("cv.csv", index=False)
model.save("airline-gru")
print("fitted")
"""
LOAD = """
import numpy as np, pandas as pd
from experiments.forecasting.forecast_model import ForecastModel
model = ForecastModel.load("airline-gru")
again, before = model.predict(), pd.read_csv("forecast.csv")
np.testing.assert_allclose(again["Passengers"], before["Passengers"], rtol=1e-6)
np.testing.assert_allclose(again["upper_95"], before["upper_95"], rtol=1e-6)
assert model.get_params()["horizon"] == 12
print("same forecast")
"""


@pytest.mark.slow
def test_fit_predict_cross_validate_save_and_load_in_another_process(tmp_path):
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    for script, said in ((FIT, "fitted"), (LOAD, "same forecast")):
        done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert said in done.stdout
    forecast = pd.read_csv(tmp_path / "forecast.csv")
    assert list(forecast.columns) == ["Month", "Passengers", "lower_80", "upper_80",
                                      "lower_95", "upper_95"]
    assert forecast["Month"].iloc[0].startswith("1961-01") and len(forecast) == 12
    cv = pd.read_csv(tmp_path / "cv.csv")
    assert len(cv) == 2 * 12 and cv["cutoff"].nunique() == 2
    truth = pd.read_csv(os.path.join(os.path.dirname(data.__file__),
                                     "airline-passengers.csv"))
    assert cv["Passengers_actual"].tolist() == truth["Passengers"].iloc[-24:].tolist()
    assert (cv["lower_80"] <= cv["Passengers"]).all() and (
        cv["Passengers"] <= cv["upper_80"]).all()
    # Nothing tracked: no store, no artifacts folder.
    assert not {"mlflow.db", "mlruns"} & set(os.listdir(tmp_path))


def test_settings_are_checked_when_the_model_is_made():
    with pytest.raises(ConfigError, match=r"--window must be an int >= 1; received 0"):
        ForecastModel("gru", target="y", window=0)
    with pytest.raises(ConfigError, match="takes no setting 'windw'"):
        ForecastModel("gru", target="y", windw=12)
    with pytest.raises(ConfigError, match="unknown model 'grux'"):
        ForecastModel("grux", target="y")
    with pytest.raises(ConfigError, match="fit the model first"):
        ForecastModel("gru", target="y").predict()
    with pytest.raises(ConfigError, match="name at least one"):
        ForecastModel([], target="y")
    with pytest.raises(ConfigError, match=r"'units' is not one of the members"):
        ForecastModel(["gru", "vanilla_lstm"], target="y", hyperparameters={"units": 4})
    with pytest.raises(ConfigError, match="n_windows must be an int >= 1"):
        ForecastModel("gru", target="y").cross_validation(pd.DataFrame({"y": [1.0]}), 0)


def test_a_bad_cell_in_a_dataframe_is_named_by_its_row():
    frame = pd.DataFrame({"t": pd.date_range("2020-01-01", periods=6, freq="MS"),
                          "y": [1.0, 2.0, None, 4.0, 5.0, 6.0]})
    with pytest.raises(DataError, match=r"DataFrame 'data': column 'y', row 2: missing"):
        data.frame_series(frame, target="y", time_col="t")
    with pytest.raises(DataError, match=r"no column 'sales'; the columns are \['t', 'y'\]"):
        data.frame_series(frame, target="sales", time_col="t")
    frame["y"] = frame["y"].fillna(3.0)
    series = data.frame_series(frame, target="y", time_col="t")
    assert series.season == 12 and series.frame["y"].tolist() == [1, 2, 3, 4, 5, 6]


def monthly_frame(n=72):
    import numpy as np

    t = np.arange(n)
    return pd.DataFrame({"month": pd.date_range("2018-01-01", periods=n, freq="MS"),
                         "sales": 100 + t + 10 * np.sin(2 * np.pi * t / 12)})


@pytest.mark.slow  # trains three families: the full suite's
def test_an_ensemble_of_families_forecasts_the_mean_of_its_members(tmp_path):
    """``ForecastModel([...])``: every family trained on the same windows;
    the forecast is the mean of the members' (one average, in
    experiments.forecasting.ensembles), and it saves and loads as one model."""
    import numpy as np

    df = monthly_frame()
    model = ForecastModel(["gru", "vanilla_lstm"], target="sales", time_col="month",
                          horizon=3, window=12, epochs=2, val_size=9, test_size=9,
                          combine="none",  # the networks' mean alone
                          hyperparameters={"gru": {"units": 4}, "vanilla_lstm": {"units": 3}})
    out = model.fit(df).predict()
    assert isinstance(model.network_, list) and len(model.network_) == 2
    assert [len(h["loss"]) for h in model.training_history_] == [2, 2]
    alone = [model.forecaster_.forecast(net, model.history_)["sales"]
             for net in model.network_]
    np.testing.assert_allclose(out["sales"], (alone[0] + alone[1]) / 2, rtol=1e-6)
    assert not np.allclose(alone[0], alone[1])
    loaded = ForecastModel.load(model.save(str(tmp_path / "pair")))
    assert loaded.families == ["gru", "vanilla_lstm"]
    pd.testing.assert_frame_equal(loaded.predict(), out, rtol=1e-6)
