"""`--loss quantile`: a network that forecasts quantiles, intervals from them
calibrated on the validation period (conformalized quantile regression),
served with q columns."""

import importlib.resources

import numpy as np
import pandas as pd
import pytest

from experiments import cli, data
from experiments.config import RunConfig
from experiments.forecasting.forecast_model import ForecastModel
from experiments.tasks import load_tasks
from experiments.training import fitting


def noisy_ar(noise: str, n: int, seed: int = 0) -> pd.DataFrame:
    """y_t = 0.6 y_(t-1) + e_t, e_t standard normal or Student-t with 3
    degrees of freedom (heavy tails)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n) if noise == "normal" else rng.standard_t(3, n)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = 0.6 * y[t - 1] + e[t]
    return pd.DataFrame({"y": y})


@pytest.mark.slow
@pytest.mark.parametrize("loss, noise", [("quantile", "normal"), ("quantile", "student_t3"),
                                         ("normal", "normal"), ("student_t", "student_t3"),
                                         ("mse", "student_t3")])
def test_intervals_cover_as_stated_on_5000_new_points(loss, noise):
    """Trained on 2,000 steps, calibrated on the next 2,000, scored on 5,000
    more one step ahead: 80% and 95% intervals cover within 3 points."""
    series = data.frame_series(noisy_ar(noise, 9008 + 1), target=["y"], name=noise)
    cfg = RunConfig(model="gru", loss=loss, window=8, horizon=1, val_size=2000,
                    test_size=5000, transforms=(), combine="none", epochs=4,
                    batch_size=128, hyperparameters={"units": 4})
    resolved, (task,) = load_tasks(cfg, "train", series=series)
    hp = fitting.resolve_hyperparameters("gru", {"units": 4}, task)
    model, _ = fitting.train_network(resolved, task, hp)
    p = task.prepared
    assert len(p.test) == 5000
    widths = task.calibrate(p.truth(p.val), *task.forecast_and_spread(model, p.val))
    truth = p.truth(p.test)
    pred, spread = task.forecast_and_spread(model, p.test)
    for level in (80, 95):
        lower, upper = task.bounds(pred, spread, level, widths)
        covered = np.mean((lower <= truth) & (truth <= upper))
        assert abs(covered - level / 100) <= 0.03, (level, covered)


@pytest.mark.slow
def test_a_quantile_model_serves_its_quantiles_around_the_forecast(tmp_path):
    df = pd.read_csv(importlib.resources.files("experiments") / "data/airline-passengers.csv")
    model = ForecastModel("gru", target="Passengers", time_col="Month", horizon=3,
                          epochs=2, loss="quantile", quantiles=(0.1, 0.5, 0.9),
                          hyperparameters={"units": 4}).fit(df)
    out = model.predict(steps=5)
    assert list(out.columns) == ["Month", "Passengers", "lower_80", "upper_80",
                                 "q10", "q50", "q90"]
    assert len(out) == 5
    np.testing.assert_allclose(out["q50"], out["Passengers"])
    assert (out["q10"] <= out["q50"]).all() and (out["q50"] <= out["q90"]).all()
    assert (out["lower_80"] <= out["Passengers"]).all()
    assert (out["Passengers"] <= out["upper_80"]).all()
    model.save(tmp_path / "q")
    again = ForecastModel.load(tmp_path / "q").predict(steps=5)
    np.testing.assert_allclose(again[["q10", "q90", "upper_80"]], out[["q10", "q90", "upper_80"]],
                               rtol=1e-6)


@pytest.mark.parametrize("flags, said", [
    (["--quantiles", "0.1,0.5,0.9"], "--quantiles needs --loss quantile"),
    (["--loss", "quantile", "--quantiles", "0.1,0.9"], "must include the median, 0.5"),
    (["--loss", "quantile", "--quantiles", "0.1,0.5,0.9", "--intervals", "80,95"],
     "--intervals 95 needs the quantiles (0.025, 0.975); --quantiles 0.1,0.5,0.9 lacks 0.025"),
    (["--loss", "quantile", "--quantiles", "0.1,half"], "received '0.1,half'"),
])
def test_bad_quantile_settings_exit_2_naming_the_problem(tmp_path, capsys, flags, said):
    db = tmp_path / "mlflow.db"
    code = cli.main(["train", "--model", "gru", "--data", "sine", "--epochs", "1",
                     "--tracking-uri", f"sqlite:///{db}", *flags])
    assert code == 2
    assert said in capsys.readouterr().err
    assert not db.exists()
