"""Statistical baselines (ETS, SARIMA) and transforms chosen from the data."""

import numpy as np
import pytest

from experiments import cli
from experiments.config import RunConfig
from experiments.forecasting import metrics, statistical
from experiments.tasks import load_tasks
from tests.helpers import all_runs


@pytest.fixture(scope="module")
def airline_task():
    _, tasks = load_tasks(RunConfig(data="airline", horizon=3, test_size=24, val_size=24))
    return tasks[-1]


def test_baselines_forecast_the_models_test_windows_from_the_past_only(airline_task):
    """ETS and SARIMA give one forecast per test window of the network, and
    each depends only on the data up to its origin: changing everything
    after an origin leaves that origin's forecast as it was."""
    p = airline_task.prepared
    values = p.series.frame[["Passengers"]].to_numpy(float)
    forecasts, notes, _ = airline_task.statistical()
    assert set(forecasts) == {"ets", "sarima"}
    assert "on logs" in notes["sarima"] and "season 12" in notes["ets"]
    for pred in forecasts.values():
        assert pred.shape == (len(p.test.origins), p.horizon, 1)
    origin = int(p.test.origins[5])
    changed = values.copy()
    changed[origin + 1:] *= 3.0
    again, _, _ = statistical.forecasts(changed, p.n_train, p.test.origins[5:6], p.horizon,
                                     p.season)
    for name, pred in forecasts.items():
        np.testing.assert_allclose(again[name][0], pred[5], rtol=1e-6, err_msg=name)
    # Scored like the model: on the same truth, with the same metric code.
    scores = metrics.evaluate_forecasts(p, forecasts["ets"], p.test, forecasts)
    truth = p.truth(p.test)
    assert scores["ets_rmse"] == pytest.approx(
        np.sqrt(np.mean((forecasts["ets"] - truth) ** 2)))
    assert scores["rmse"] == pytest.approx(scores["ets_rmse"])  # the "model" is ETS
    best = metrics.best_baseline(scores, ["naive", "seasonal_naive", "ets", "sarima"])
    assert scores["skill_vs_best_baseline"] == pytest.approx(
        1 - scores["rmse"] / scores[f"{best}_rmse"])


def test_automatic_sarima_matches_the_box_jenkins_airline_reference():
    """The stepwise search on logs, fitted on the first 120 months and
    filtered through the last 24, forecasts one step ahead as well as Box and
    Jenkins' SARIMA(0,1,1)(0,1,1)12 (test RMSE 15.28), with one seasonal
    difference and the orders it tried named."""
    from experiments.data import load_airline

    values = load_airline().frame["Passengers"].to_numpy(float)
    origins = np.arange(119, 143)
    pred, label, form = statistical.sarima(values, 120, origins, 1, 12)
    rmse = np.sqrt(np.mean((pred[:, 0] - values[origins + 1]) ** 2))
    assert label.startswith("SARIMA(") and ",1," in label.split(")(")[1]
    assert "stepwise by AICc over" in label and label.endswith("on logs")
    assert rmse == pytest.approx(15.28, abs=0.5)
    # Given the form it chose, it fits those orders again and searches no further.
    again, again_label, _ = statistical.sarima(values, 120, origins, 1, 12, form=form)
    np.testing.assert_allclose(again, pred, rtol=1e-6)
    assert again_label.split(",")[:-1] == label.split(",")[:-1]
    assert "over 1 fits" in again_label


def test_the_stepwise_search_finds_a_simulated_process():
    """A random walk whose steps are AR(1) (phi 0.7): one difference, and
    the AR order of one, from the four starting models and their neighbours."""
    from statsmodels.tsa.arima_process import ArmaProcess

    rng = np.random.default_rng(0)
    steps = ArmaProcess([1, -0.7], [1]).generate_sample(400, distrvs=rng.standard_normal)
    series = 50 + np.cumsum(steps)
    with statistical._quiet():
        d, big_d = statistical.differences(series, 0)
        fit, orders, tried = statistical.stepwise_orders(series, d, big_d, 0)
    assert (d, big_d) == (1, 0)
    assert orders == (1, 0, 0, 0)
    assert 4 <= tried <= statistical.MAX_FITS
    assert fit.params[0] == pytest.approx(0.7, abs=0.1)


def test_a_baseline_that_cannot_fit_is_reported_skipped_with_the_reason():
    values = np.linspace(10, 20, 40)[:, None] + np.sin(np.arange(40))[:, None]
    forecasts, notes, _ = statistical.forecasts(values, 30, np.arange(30, 38), 2, 20)
    assert "ets" not in forecasts
    assert notes["ets"] == "skipped: ets: 30 training rows hold fewer than two seasons of 20"
    assert "sarima" in forecasts and "non-seasonal" in notes["sarima"]


@pytest.mark.parametrize("kind, expected", [
    ("stationary", ()), ("trend", ("diff",)), ("random_walk", ("diff",)),
    ("multiplicative", ("log", "diff")),
])
def test_transforms_are_chosen_from_the_training_rows(kind, expected):
    rng = np.random.default_rng(0)
    t = np.arange(240)
    season = 12 * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
    series = {
        "stationary": 50 + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(size=240),
        "trend": 100 + 0.8 * t + rng.normal(size=240),
        "random_walk": 100 + np.cumsum(rng.normal(size=240)),
        "multiplicative": (100 + 2 * t) * season / 12 * np.exp(rng.normal(0, 0.02, 240)),
    }[kind]
    chosen, reason = statistical.choose_transforms(series, 180, 12)
    assert chosen == expected, reason
    assert reason


@pytest.mark.slow
def test_train_on_a_trending_csv_differences_it_and_reports_why(tmp_path, capsys):
    t = np.arange(90)
    rows = ["quarter,gdp"] + [f"{1990 + i // 4}Q{i % 4 + 1},{1000 + 12 * i + 3 * np.sin(i):.2f}"
                              for i in t]
    path = tmp_path / "gdp.csv"
    path.write_text("\n".join(rows) + "\n")
    db = tmp_path / "mlflow.db"
    common = ["train", "--model", "gru", "--csv", str(path), "--target", "gdp",
              "--time-col", "quarter", "--window", "8", "--epochs", "3", "--units", "4",
              "--tracking-uri", f"sqlite:///{db}"]
    assert cli.main(common) == 0
    out = capsys.readouterr().out
    assert "transforms chosen from the training rows: diff: KPSS rejects" in out
    for name in ("naive", "seasonal naive", "ETS", "SARIMA"):
        assert f"\n{name} " in out, name
    assert "skill vs the best baseline" in out
    (run,) = all_runs(db)
    assert run.data.params["transforms"] == "diff"
    assert run.data.tags["transforms_chosen"].startswith("diff: KPSS")
    for key in ("test_ets_rmse", "test_sarima_rmse", "test_skill_vs_best_baseline"):
        assert np.isfinite(run.data.metrics[key]), key
    # --transform still decides: none means none.
    assert cli.main([*common, "--transform", "none", "--experiment", "given"]) == 0
    given = [r for r in all_runs(db) if r.info.run_id != run.info.run_id][0]
    assert given.data.params["transforms"] == "none"
    assert given.data.tags["transforms_chosen"] == "given"


def test_searched_windows_and_transforms_use_scalers_fitted_on_training_rows(airline_task):
    """The data settings a search varies: every variant is cut from the same
    rows, scaled with statistics of its own training rows only, keeps its
    training targets out of validation, and is scored on the same test
    rows as the task it came from."""
    space = airline_task.data_space()
    assert set(space) == {"window", "transforms"}  # airline's defaults are not pinned
    assert {12, 24, 36} <= set(space["window"].values)
    # Airline trends: the data say difference, so no undifferenced choice.
    assert "none" not in space["transforms"].values and "log" not in space["transforms"].values
    assert {"log,diff", "log,seasonal_diff", "log,diff,seasonal_diff"} <= set(
        space["transforms"].values)
    raw = airline_task.series.frame["Passengers"].to_numpy(float)
    n_train = airline_task.prepared.n_train
    shapes = set()
    for window in space["window"].values:
        for transforms in space["transforms"].values:
            task = airline_task.variant(window=window, transforms=transforms)
            p = task.prepared
            assert p.window == window and ",".join(p.transforms) == transforms
            z = raw[:n_train]
            for step in transforms.split(","):  # in order, on the training rows only
                z = {"log": np.log, "diff": np.diff,
                     "seasonal_diff": lambda v: v[12:] - v[:-12]}[step](z)
            assert p.preprocessor.mean["Passengers"] == pytest.approx(z.mean())
            assert p.preprocessor.std["Passengers"] == pytest.approx(z.std(), rel=1e-3)
            assert (p.train.origins + p.horizon < n_train).all()
            np.testing.assert_array_equal(p.test.origins, airline_task.prepared.test.origins)
            assert task.statistical() is airline_task.statistical()  # the same baselines
            assert airline_task.variant(window=window, transforms=transforms) is task
            shapes.add(task.input_shape)
    assert len(shapes) == len(space["window"].values)


def test_a_pinned_window_or_transform_is_not_searched():
    _, (task,) = load_tasks(RunConfig(data="airline", window=12, transforms=("log", "diff"),
                                      test_size=24, val_size=24))
    assert task.data_space() == {}
    _, (task,) = load_tasks(RunConfig(data="airline", window=12, test_size=24,
                                      val_size=24))
    assert set(task.data_space()) == {"transforms"}


def test_epochs_and_patience_left_out_fit_the_data_size():
    """A short series gets more epochs (few batches each); a long one fewer;
    what the user names is kept."""
    from experiments.config import budget

    assert budget(60) == (300, 30)        # airline: 2 batches an epoch
    assert budget(100_000) == (50, 10)    # 3,125 batches an epoch
    assert budget(3200) == (50, 10)       # 100 batches: 30 epochs, raised to 50
    run, (task,) = load_tasks(RunConfig(data="airline"))
    assert (run.epochs, run.patience) == budget(len(task.train))
    run, _ = load_tasks(RunConfig(data="airline", epochs=7, patience=3))
    assert (run.epochs, run.patience) == (7, 3)


def test_autoregressive_layer_starts_at_the_least_squares_fit():
    """``zoo.start_autoregressive`` sets the linear term to the ridge
    least-squares fit of the training windows: on an AR(2) series the model
    then predicts as NumPy's least squares does, and its error is the noise's."""
    import keras

    import zoo
    from zoo import start_autoregressive

    rng = np.random.default_rng(0)
    series = np.zeros(700)
    for t in range(2, len(series)):
        series[t] = 1.2 * series[t - 1] - 0.5 * series[t - 2] + rng.normal(0, 0.1)
    window = 6
    x = np.stack([series[i:i + window] for i in range(len(series) - window)])[:, :, None]
    y = series[window:, None]
    keras.utils.set_random_seed(0)
    model = zoo.build_model("gru", (window, 1), 1, units=4, autoregressive=True)
    plain = zoo.build_model("gru", (window, 1), 1, units=4)
    assert start_autoregressive(model, x, y)
    assert not start_autoregressive(plain, x, y)  # no such layer: left as it is
    design = np.hstack([x[:, :, 0], np.ones((len(x), 1))])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    pred = model.predict_on_batch(x)
    # A light ridge: within a third of the noise of least squares' forecasts,
    # and as good a fit (the plain model's is far worse).
    np.testing.assert_allclose(pred, design @ coef, atol=0.033)
    rmse = np.sqrt(np.mean((pred - y) ** 2))
    assert rmse < 1.02 * np.sqrt(np.mean((design @ coef - y) ** 2)) < 0.11
    assert np.sqrt(np.mean((plain.predict_on_batch(x) - y) ** 2)) > 2 * rmse
    kernel, _ = model.get_layer("autoregressive").get_weights()
    np.testing.assert_allclose(kernel[-2:, 0], [-0.5, 1.2], atol=0.1)  # the true lags


@pytest.mark.slow
def test_forecasts_are_autoregressive_by_default_and_beat_sarima_on_airline(tmp_path):
    """`train` on airline, one step ahead over the last 24 months: the
    linear term (on by default), started at its least-squares fit, carries
    the airline model's structure, and the network scores below SARIMA (15.3
    is the Box-Jenkins reference fitted on 120 months). `--no-autoregressive`
    trains the network alone (about 18.5), and a family without the term
    (seq2seq_lstm) is trained without it."""
    db = tmp_path / "mlflow.db"
    common = ["train", "--data", "airline", "--horizon", "1", "--test-size", "24",
              "--val-size", "24", "--window", "24", "--units", "8", "--epochs", "5",
              "--tracking-uri", f"sqlite:///{db}"]
    assert cli.main([*common, "--model", "gru", "--run-name", "with"]) == 0
    assert cli.main([*common, "--model", "gru", "--no-autoregressive",
                     "--run-name", "without"]) == 0
    assert cli.main([*common, "--model", "seq2seq_lstm", "--epochs", "1",
                     "--run-name", "seq2seq"]) == 0
    runs = {r.info.run_name: r for r in all_runs(db)}
    assert runs["with"].data.params["autoregressive"] == "True"
    assert runs["without"].data.params["autoregressive"] == "False"
    assert "autoregressive" not in runs["seq2seq"].data.params
    m = runs["with"].data.metrics
    assert m["test_rmse"] < min(15.3, m["test_sarima_rmse"]), m["test_rmse"]
    assert runs["without"].data.metrics["test_rmse"] > m["test_rmse"] + 2


def test_ets_chooses_its_form_by_aicc_among_those_the_series_allows():
    """Trend (damped or none) times season (additive, and multiplicative
    only for a positive series): four forms for a positive seasonal series,
    two when it has negative values."""
    from experiments.forecasting import statistical

    t = np.arange(120)
    rng = np.random.default_rng(0)
    seasonal = 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 120)
    origins = np.arange(95, 108)
    out, label, _ = statistical.ets(100 + seasonal, 96, origins, 6, 12)
    assert out.shape == (13, 6) and np.isfinite(out).all()
    assert "chosen by AICc of 4" in label
    _, label, _ = statistical.ets(seasonal, 96, origins, 6, 12)
    assert "chosen by AICc of 2" in label and ",M)" not in label
