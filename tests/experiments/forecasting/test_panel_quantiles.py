"""A global model with a quantile head (``--loss quantile`` on a panel) or a
distribution head (``--loss normal``, ``student_t``): quantiles on each
series' own scale, intervals calibrated by conformalized quantile
regression pooled over series, served with q columns."""

import numpy as np
import pandas as pd
import pytest

from experiments.config import RunConfig
from experiments.data import frame_panel, make_panel
from experiments.errors import ConfigError
from experiments.forecasting.forecast_model import ForecastModel
from experiments.forecasting.panel_forecaster import interval_bounds
from experiments.tasks import load_tasks
from experiments.training import fitting

QUANTILE_MODEL = dict(target="y", time_col="ds", id_col="unique_id", window=12, horizon=6,
                      epochs=2, hyperparameters={"units": 8}, loss="quantile")
QUANTILE_COLUMNS = ["q2.5", "q10", "q50", "q90", "q97.5"]


@pytest.fixture(scope="module")
def fitted():
    """``fitted(loss, calendar)``: a panel model of that head (and calendar
    covariates) on one generated panel, trained once per module."""
    models = {}

    def get(loss, calendar=()):
        if (loss, calendar) not in models:
            covariates = {"calendar": list(calendar)} if calendar else {}
            models[loss, calendar] = ForecastModel(
                "gru", **{**QUANTILE_MODEL, "loss": loss}, **covariates).fit(
                make_panel(8, seed=4).frame)
        return models[loss, calendar]
    return get


@pytest.mark.parametrize("loss, calendar", [
    ("quantile", ()), ("quantile", ("month",)), ("normal", ()), ("student_t", ("month",))])
def test_a_probabilistic_panel_model_serves_ordered_quantiles_on_each_series_scale(
        loss, calendar, fitted, tmp_path):
    import mlflow

    model = fitted(loss, calendar)
    assert model.network_.output_shape[-1] == {"quantile": 5, "normal": 2,
                                               "student_t": 3}[loss]
    history = model.history_.copy()
    before = model.predict(history, steps=9)  # past the horizon: a second block
    assert list(before.columns) == ["unique_id", "ds", "y", "lower_80", "upper_80",
                                    "lower_95", "upper_95", *QUANTILE_COLUMNS]
    quantiles = before[QUANTILE_COLUMNS].to_numpy()
    assert (np.diff(quantiles, axis=1) >= 0).all()
    np.testing.assert_allclose(before["q50"], before["y"])  # the median is the forecast
    assert (before["lower_95"] <= before["y"]).all() and (before["y"] <= before["upper_95"]).all()
    first = history["unique_id"] == "S000"
    history.loc[first, "y"] *= 1000
    after = model.predict(history, steps=9)
    mine, was = after[after.unique_id == "S000"], before[before.unique_id == "S000"]
    for col in ("y", "lower_80", "upper_95", *QUANTILE_COLUMNS):
        np.testing.assert_allclose(mine[col].to_numpy(), 1000 * was[col].to_numpy(),
                                   rtol=1e-4)
    path = model.save(str(tmp_path / "quantile-panel"))
    served = mlflow.pyfunc.load_model(path).predict(model.history_, params={"steps": 9})
    pd.testing.assert_frame_equal(served.reset_index(drop=True),
                                  before.reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize("settings, said", [
    ({"loss": "negative_binomial"},
     "a panel model trains with --loss mse, quantile, normal, student_t, or tune chooses "
     "among them with --loss search; received --loss negative_binomial (a count "
     "distribution is for one series at a time"),
    ({"loss": "search"}, "--loss search lets tune choose the head"),
    ({"quantiles": (0.1, 0.5, 0.9)}, "--quantiles needs --loss quantile"),
    ({"loss": "quantile", "quantiles": (0.1, 0.5, 0.9), "intervals": (80, 95)},
     "--intervals 95 needs the quantiles (0.025, 0.975)"),
])
def test_bad_panel_heads_are_refused_before_training(settings, said):
    model = ForecastModel("gru", target="y", time_col="ds", id_col="unique_id", window=12,
                          horizon=6, epochs=1, **settings)
    with pytest.raises(ConfigError) as err:
        model.fit(make_panel(3, seed=0).frame)
    assert said in str(err.value)
    assert model.network_ is None


def ar_panel(n_series: int, steps: int, seed: int = 0) -> pd.DataFrame:
    """Series y_t = 0.6 y_(t-1) + e_t around levels and scales of their own
    (1 to 1,000), e_t standard normal: known noise, pooled across series
    only in each series' own units."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("1990-01-01", periods=steps, freq="D")
    frames = []
    for k in range(n_series):
        e, y = rng.standard_normal(steps), np.zeros(steps)
        for t in range(1, steps):
            y[t] = 0.6 * y[t - 1] + e[t]
        scale = 10.0 ** rng.uniform(0, 3)
        frames.append(pd.DataFrame({"unique_id": f"s{k:02d}", "ds": dates,
                                    "y": scale * (5.0 + y)}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["quantile", "normal"])
def test_panel_intervals_cover_as_stated_on_5000_new_windows(loss):
    """40 series: trained on their first 260 days, calibrated on the next
    100 of every series (4,000 windows, pooled in each window's own scale),
    scored on 125 more (5,000 windows) one step ahead: 80% and 95%
    intervals cover within 3 points, from a quantile head and from a
    Normal one."""
    frame = ar_panel(40, 8 + 260 + 100 + 125)
    panel = frame_panel(frame, id_col="unique_id", time_col="ds", target="y")
    cfg = RunConfig(model="gru", id_col="unique_id", time_col="ds", target=("y",),
                    loss=loss, window=8, horizon=1, val_size=100, test_size=125,
                    combine="none", epochs=4, batch_size=128,
                    hyperparameters={"units": 4})
    resolved, (task,) = load_tasks(cfg, "train", series=panel)
    hp = fitting.resolve_hyperparameters("gru", {"units": 4}, task)
    model, _ = fitting.train_network(resolved, task, hp)
    p = task.prepared
    assert len(p.test) == 5000 and len(p.val) == 4000
    widths = task.interval_widths(model, None)
    pred = task.network_outputs(model, p.test)
    spread = task.spread(model, p.test)
    truth = p.truth(p.test)
    for level in (80, 95):
        lower, upper = interval_bounds(pred, np.asarray(widths[str(level)])[None, :], spread,
                                       task.quantiles, level)
        lower, upper = p.test.to_original(lower), p.test.to_original(upper)
        covered = np.mean((lower <= truth) & (truth <= upper))
        assert abs(covered - level / 100) <= 0.03, (level, covered)


def test_a_panel_search_chooses_the_head_by_validation_crps():
    """``tune --loss search`` on a panel: each trial a point, quantile or
    distribution head, on the same windows, compared by the CRPS of its
    validation forecasts with each series divided by its own scale."""
    frame = make_panel(4, seed=5).frame
    cfg = RunConfig(model="gru", id_col="unique_id", time_col="ds", target=("y",),
                    window=24, horizon=12, loss="search")
    _, (task,) = load_tasks(cfg, "tune", series=frame_panel(
        frame, id_col="unique_id", time_col="ds", target="y"))
    assert task.data_space()["loss"].values == ("mse", "quantile", "normal", "student_t")
    assert task.loss == "mse" and task.params()["loss_function"] == "search"
    quantile = task.variant(loss="quantile")
    assert quantile.prepared is task.prepared and quantile.quantiles == (0.025, 0.1, 0.5,
                                                                        0.9, 0.975)
    assert quantile.builder_arguments("gru")["quantiles"] == quantile.quantiles
    assert quantile.params()["loss_function"] == "quantile"
    assert task.variant(loss="mse") is task
    truth = task.val.y
    # A point forecast's CRPS is its absolute error; quantiles all at the
    # truth score 0, and spread around it more than 0 but less than a point
    # forecast that misses by as much.
    assert task.validation_crps(truth) == pytest.approx(0.0, abs=1e-6)
    missed = task.validation_crps(truth + 0.5)
    spread = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    assert quantile.validation_crps(np.repeat(truth[..., None], 5, axis=-1)) == \
        pytest.approx(0.0, abs=1e-6)
    assert 0 < quantile.validation_crps(truth[..., None] + spread) < missed
    # One series a thousand times larger: the same scores for the same outputs.
    bigger = frame.assign(y=frame.y.where(frame.unique_id != "S001", 1000 * frame.y))
    _, (big,) = load_tasks(cfg, "tune", series=frame_panel(
        bigger, id_col="unique_id", time_col="ds", target="y"))
    assert big.validation_crps(truth + 0.5) == pytest.approx(missed, rel=1e-6)
    # A Normal head is scored by its distribution's quantiles: centred on the
    # truth with almost no spread, almost 0; wider, more; its point is its location.
    normal = task.variant(loss="normal")
    assert normal.builder_arguments("gru")["distribution"] == "normal"
    assert normal.quantiles == quantile.quantiles and normal.params()["loss_function"] == \
        "normal"
    narrow, wide = (np.stack([truth, np.full_like(truth, s)], axis=-1) for s in (1e-6, 0.5))
    assert normal.validation_crps(narrow) == pytest.approx(0.0, abs=1e-4)
    assert 0 < normal.validation_crps(wide) < missed
    assert normal.validation_rmse(wide) == pytest.approx(task.validation_rmse(truth), abs=1e-9)


@pytest.mark.slow
def test_tune_searches_the_head_of_a_panel_model(tmp_path):
    from tuning.search import SearchConfig, run_search

    path = tmp_path / "panel.csv"
    make_panel(4, seed=7).frame.assign(ds=lambda f: f.ds.dt.strftime("%Y-%m-%d")).to_csv(
        path, index=False)
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_search(SearchConfig(
        run=RunConfig(csv=str(path), id_col="unique_id", time_col="ds", target=("y",),
                      window=12, horizon=6, tracking_uri=db, seed=3, epochs=1,
                      loss="search", refit=False, combine="none"),
        tuner="random", max_trials=3, models=("gru",), directory=str(tmp_path / "tuner"),
        fresh=True))
    assert result.objective == "val_crps"
    heads = [t["loss"] for t in result.trials]
    assert len(heads) == 3 and len(set(heads)) > 1  # seed 3 proposes more than one head
    assert set(heads) <= {"mse", "quantile", "normal", "student_t"}
    assert all(np.isfinite(t["score"]) for t in result.trials)
    best = min(result.trials, key=lambda t: t["score"])
    # The served model is the best trial's head: quantile columns only for a quantile one.
    import mlflow

    mlflow.set_tracking_uri(db)
    served = mlflow.pyfunc.load_model(f"models:/{'/'.join(map(str, result.registered))}")
    table = served.predict(make_panel(4, seed=7).frame)
    assert ("q50" in table.columns) == (best["loss"] != "mse")
    assert ("test_scaled_pinball" in result.test_metrics) == (best["loss"] != "mse")


class SpreadQuantiles:
    """A stand-in quantile network: the last scaled input as the median,
    its 2.5/10/90/97.5% quantiles 2 and 1 below and above it."""

    def predict_on_batch(self, x):
        median = np.repeat(x[:, -1:, 0], 3, axis=1)
        return median[..., None] + np.array([-2.0, -1.0, 0.0, 1.0, 2.0])


def test_intervals_corrected_level_by_level_are_served_nested():
    """CQR corrects each level on its own: a 95% band moved inward (-1.5)
    and an 80% one outward (+1) would cross; the served 95% band holds the
    80% one."""
    from experiments.forecasting.forecaster import nested
    from experiments.forecasting.panel_forecaster import PanelForecaster
    from tests.experiments.forecasting.test_panel import history

    reader = PanelForecaster("store", "week", "sales", "W-MON", 6, 3,
                             {"80": [1.0] * 3, "95": [-1.5] * 3},
                             quantiles=(0.025, 0.1, 0.5, 0.9, 0.975))
    table = reader.forecast(SpreadQuantiles(), history(), steps=5)
    assert (table["lower_95"] <= table["lower_80"]).all()
    assert (table["upper_80"] <= table["upper_95"]).all()
    np.testing.assert_allclose(table["upper_95"], table["upper_80"])  # held, not its own
    assert (table["upper_80"] > table["sales"]).all()  # the 80% band: 2 scaled units out
    inner, outer = (np.array([1.0, 2.0]), np.array([3.0, 4.0])), \
        (np.array([1.5, 1.0]), np.array([2.5, 5.0]))
    got = nested({"95": outer, "80": inner})
    np.testing.assert_array_equal(got["80"][0], [1.0, 2.0])
    np.testing.assert_array_equal(got["95"][0], [1.0, 1.0])
    np.testing.assert_array_equal(got["95"][1], [3.0, 5.0])


def test_a_panel_distribution_model_draws_sample_paths_on_each_series_scale(fitted,
                                                                             tmp_path):
    """``samples``: simulated futures per series, past the horizon too; at
    each step within it their quantiles are the served (uncalibrated)
    quantiles, the combination with the seasonal naive included; one series
    times 1,000 multiplies its paths by 1,000; the served pyfunc draws the
    same paths."""
    import mlflow

    model = fitted("normal")
    assert 0 < model.forecaster_.combination["network"] < 1  # the draws move with it
    history = model.history_.copy()
    paths = model.predict(history, steps=9, samples=4000, seed=1)
    assert list(paths.columns) == ["unique_id", "ds", "sample", "y"]
    assert len(paths) == 8 * 9 * 4000 and np.isfinite(paths["y"]).all()
    table = model.predict(history, steps=6)
    drawn = paths[paths.ds <= table.ds.max()].groupby(["unique_id", "ds"])["y"]
    for column, q in (("q10", 0.1), ("q50", 0.5), ("q90", 0.9)):
        got = drawn.quantile(q).reindex(pd.MultiIndex.from_frame(table[["unique_id", "ds"]]))
        spread = (table["q90"] - table["q10"]).to_numpy()
        assert np.all(np.abs(got.to_numpy() - table[column].to_numpy()) < 0.08 * spread)
    first = history["unique_id"] == "S000"
    history.loc[first, "y"] *= 1000
    bigger = model.predict(history, steps=9, samples=50, seed=1)
    before = model.predict(model.history_, steps=9, samples=50, seed=1)
    mine = bigger.unique_id == "S000"
    np.testing.assert_allclose(bigger.loc[mine, "y"], 1000 * before.loc[mine, "y"], rtol=1e-4)
    np.testing.assert_allclose(bigger.loc[~mine, "y"], before.loc[~mine, "y"], rtol=1e-6)
    served = mlflow.pyfunc.load_model(model.save(str(tmp_path / "normal-panel")))
    pd.testing.assert_frame_equal(
        served.predict(model.history_, params={"steps": 9, "samples": 50, "seed": 1}),
        before, check_dtype=False)
    with pytest.raises(ValueError, match="samples must be an int from 1 to"):
        model.predict(samples=0)


def test_sample_paths_need_a_distribution_panel_model_without_covariates(fitted):
    with pytest.raises(ValueError, match="samples need a distribution model .* this one "
                                         "forecasts quantiles"):
        fitted("quantile").predict(samples=10)
    with pytest.raises(ValueError, match="with covariates serves its quantiles"):
        fitted("student_t", ("month",)).predict(samples=10)
