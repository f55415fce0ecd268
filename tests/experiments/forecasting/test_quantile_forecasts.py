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


def poisson_counts(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Poisson counts whose mean is 3 + half the last count (6 on average),
    and each count's mean: a count series whose true distribution given its
    past is known."""
    rng = np.random.default_rng(seed)
    y, mean = np.zeros(n), np.full(n, 6.0)
    for t in range(1, n):
        mean[t] = 3 + 0.5 * y[t - 1]
        y[t] = rng.poisson(mean[t])
    return pd.DataFrame({"y": y}), mean


@pytest.mark.slow
def test_count_intervals_are_whole_and_cover_as_the_true_distributions_do():
    """A negative binomial head on Poisson counts, scored on 5,000 new points
    one step ahead. Whole-number intervals cannot cover exactly 80%: each
    end holds a whole count's probability. So the reference is what the
    true Poisson's own 10%-90% (2.5%-97.5%) quantiles cover of the same
    points; ours are within 3 points of it, and never below nominal by more."""
    from scipy.stats import poisson

    frame, mean = poisson_counts(9012 + 1)
    series = data.frame_series(frame, target=["y"], name="counts")
    cfg = RunConfig(model="gru", loss="negative_binomial", window=12, horizon=1,
                    val_size=2000, test_size=5000, combine="none", epochs=4,
                    batch_size=128, hyperparameters={"units": 4})
    resolved, (task,) = load_tasks(cfg, "train", series=series)
    assert task.prepared.transforms == ()
    hp = fitting.resolve_hyperparameters("gru", {"units": 4}, task)
    model, _ = fitting.train_network(resolved, task, hp)
    p = task.prepared
    widths = task.calibrate(p.truth(p.val), *task.forecast_and_spread(model, p.val))
    truth = p.truth(p.test)
    pred, spread = task.forecast_and_spread(model, p.test)
    true_mean = mean[p.test.origins + 1][:, None, None]
    for level in (80, 95):
        lower, upper = task.bounds(pred, spread, level, widths)
        assert (lower == np.round(lower)).all() and (upper == np.round(upper)).all()
        assert (lower >= 0).all()
        covered = np.mean((lower <= truth) & (truth <= upper))
        low = poisson.ppf((1 - level / 100) / 2, true_mean)
        high = poisson.ppf((1 + level / 100) / 2, true_mean)
        reference = np.mean((low <= truth) & (truth <= high))
        assert abs(covered - reference) <= 0.03, (level, covered, reference)
        assert covered >= level / 100 - 0.03, (level, covered)


@pytest.mark.slow
def test_a_count_model_serves_whole_numbers_and_refuses_what_are_not_counts(tmp_path,
                                                                            capsys):
    frame, _ = poisson_counts(96)
    frame.insert(0, "Month", pd.date_range("2015-01", periods=96, freq="MS"))
    model = ForecastModel("gru", target="y", time_col="Month", horizon=3, epochs=2,
                          loss="negative_binomial", hyperparameters={"units": 4}).fit(frame)
    out = model.predict(steps=5)
    assert list(out.columns) == ["Month", "y", "lower_80", "upper_80", "lower_95",
                                 "upper_95", "q2.5", "q10", "q50", "q90", "q97.5"]
    bounds = out.drop(columns=["Month", "y"]).to_numpy()
    np.testing.assert_array_equal(bounds, np.round(bounds))
    assert (bounds >= 0).all()
    assert (out["lower_95"] <= out["lower_80"]).all()
    assert (out["upper_80"] <= out["upper_95"]).all()
    db = tmp_path / "mlflow.db"
    for flags, said in (
            (["--data", "sine"], "forecasts counts (whole numbers >= 0); column 'value', row 1"),
            (["--data", "airline", "--transform", "log"],
             "--loss negative_binomial models the counts as they are; --transform log")):
        code = cli.main(["train", "--model", "gru", "--epochs", "1", "--loss",
                         "negative_binomial", "--tracking-uri", f"sqlite:///{db}", *flags])
        assert code == 2
        assert said in capsys.readouterr().err
        assert not db.exists()


@pytest.mark.slow
def test_sample_paths_simulate_the_spread_past_the_horizon(tmp_path):
    """A Normal head at horizon 1 on y_t = 0.6 y_(t-1) + e_t: 20 steps of
    simulated paths (each step drawn, appended, forecast again) spread as
    the process does, a standard deviation of 1 at step 1 and
    sqrt(1 / (1 - 0.36)) = 1.25 at step 20, where widening by the square
    root of the blocks would give 4.5. Served the same through the pyfunc."""
    import mlflow

    history = noisy_ar("normal", 3000)
    model = ForecastModel("gru", target="y", window=8, horizon=1, epochs=4, batch_size=128,
                          loss="normal", combine="none", val_size=500, test_size=200,
                          hyperparameters={"units": 4}).fit(history)
    paths = model.predict(steps=20, samples=4000, seed=1)
    assert list(paths.columns) == ["step", "sample", "y"] and len(paths) == 20 * 4000
    spread = paths.groupby("step")["y"].std().to_numpy()
    assert abs(spread[0] - 1.0) < 0.15, spread[0]
    assert abs(spread[-1] - 1.25) < 0.2, spread[-1]
    forecast = model.predict(steps=1)
    assert abs(paths[paths["step"] == paths["step"].min()]["y"].median()
               - forecast["y"].iloc[0]) < 0.1
    model.save(str(tmp_path / "normal"))
    served = mlflow.pyfunc.load_model(str(tmp_path / "normal")).predict(
        history.tail(50), params={"samples": 30, "steps": 3, "seed": 1})
    assert len(served) == 90 and set(served["sample"]) == set(range(30))


def test_samples_need_a_distribution_model():
    from experiments.forecasting.forecaster import Forecaster
    from experiments.forecasting.preprocessing import Preprocessor

    pre = Preprocessor(("y",), ("y",), 4, 1, (), 1, {"y": 0.0}, {"y": 1.0})
    history = pd.DataFrame({"y": np.arange(10.0)})
    for forecaster, said in ((Forecaster(pre, None, quantiles=(0.1, 0.5, 0.9)), "quantiles"),
                             (Forecaster(pre, None), "a mean")):
        with pytest.raises(ValueError, match=f"samples need a distribution model .* this "
                                             f"one forecasts {said}"):
            forecaster.sample_paths(None, history, samples=10)
    with pytest.raises(ValueError, match="samples must be an int from 1 to 10000"):
        Forecaster(pre, None, distribution="normal").sample_paths(None, history, samples=0)
