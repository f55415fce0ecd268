"""Panels: many series in one long table, one network trained over all of
them (``experiments.data.panel``, ``experiments.forecasting.panel_*``,
``experiments.tasks.panel``)."""

import numpy as np
import pandas as pd
import pytest

from experiments.data import DataError, frame_panel, load_panel_csv, make_panel
from experiments.forecasting import panel_scores
from experiments.forecasting.panel_forecaster import PanelForecaster
from experiments.forecasting.panel_windows import prepare_panel, scaled_inputs

COLUMNS = dict(id_col="unique_id", time_col="ds", target="y")


def small_panel(n_series=6, seed=3):
    return make_panel(n_series, seed=seed).frame


def write(frame, path):
    frame.to_csv(path, index=False)
    return path


def test_generated_panel_differs_in_scale_length_and_shape():
    panel = make_panel(30, seed=0)
    sizes = panel.frame.groupby("unique_id").size()
    levels = panel.frame.groupby("unique_id")["y"].mean()
    assert panel.freq == "MS" and panel.season == 12 and len(panel.ids) == 30
    assert sizes.min() >= 48 and sizes.max() <= 144 and sizes.nunique() > 10
    assert levels.max() / levels.min() > 100
    assert (panel.frame.groupby("unique_id")["ds"].max() == pd.Timestamp("2024-12-01")).all()


def test_a_csv_panel_in_any_row_order_is_sorted_per_series(tmp_path):
    frame = small_panel().sample(frac=1.0, random_state=0)
    frame["ds"] = frame["ds"].dt.strftime("%Y-%m")
    panel = load_panel_csv(write(frame, tmp_path / "p.csv"), **COLUMNS)
    for _, (times, _) in panel.groups().items():
        assert times.is_monotonic_increasing
    assert panel.freq == "MS" and panel.name == "p"
    # A file already in order is read without sorting it: the same panel.
    ordered = frame.sort_values(["unique_id", "ds"])
    again = load_panel_csv(write(ordered, tmp_path / "p.csv"), **COLUMNS)
    pd.testing.assert_frame_equal(again.frame, panel.frame)
    assert again.season == panel.season == 12


@pytest.mark.parametrize("break_it, message", [
    (lambda f: pd.concat([f, f.iloc[[5]]]),
     r"series 'S000', line 116: timestamp .* duplicates the one on line 7"),
    (lambda f: f.assign(y=f["y"].astype(object).where(f.index != 70, "")),
     r"series 'S001', column 'y', line 72: missing value"),
    (lambda f: f.assign(y=f["y"].astype(object).where(f.index != 3, "many")),
     r"column 'y', line 5: 'many' is not a number"),
    (lambda f: f.drop(index=80),
     r"series 'S001', line \d+: .* follows .*, but every series must be spaced 'MS'"),
    # Every date of one series on the 15th: its first is where it goes wrong.
    (lambda f: f.assign(ds=f["ds"].where(f["unique_id"] == "S000",
                                         f["ds"] + pd.Timedelta(days=14))),
     r"series 'S001', line 59: its first timestamp 2015-01-15 00:00:00 is not on the "
     r"panel's spacing 'MS' \(the next one that is: 2015-02-01"),
    (lambda f: f.assign(ds=f["ds"].dt.strftime("%Y-%m-%d").where(f.index != 9, "2015-02-30")),
     r"column 'ds', line 11: '2015-02-30' is not an ISO 8601 date"),
    (lambda f: f.assign(unique_id=f["unique_id"].where(f.index != 2, " ")),
     r"column 'unique_id', line 4: missing series id"),
    (lambda f: f.drop(columns="ds"), r"no column 'ds'"),
])
def test_bad_panel_files_are_named_by_series_and_line(tmp_path, break_it, message):
    times = pd.date_range("2015-01-01", periods=57, freq="MS")
    frame = pd.concat([pd.DataFrame({"unique_id": key, "ds": times,
                                     "y": np.arange(57.0) + k}) for k, key in
                       enumerate(("S000", "S001"))], ignore_index=True)
    with pytest.raises(DataError, match=message):
        load_panel_csv(write(break_it(frame), tmp_path / "bad.csv"), **COLUMNS)


def test_the_same_column_for_id_and_target_is_refused():
    with pytest.raises(DataError, match="three different columns"):
        frame_panel(small_panel(), id_col="y", time_col="ds", target="y")


def test_windows_stay_within_a_series_and_parts_share_dates():
    panel = make_panel(8, seed=1)
    prepared = prepare_panel(panel, window=12, horizon=6, val_size=6, test_size=6)
    for part in (prepared.train, prepared.val, prepared.test):
        truth = prepared.truth(part)
        # Each window's inputs are its own series' rows before its origin.
        for i in range(0, len(part), max(1, len(part) // 7)):
            values = prepared.values[prepared.ids[part.series[i]]]
            o = part.origins[i]
            x = part.x[i, :, 0] * part.scale[i] + part.loc[i]
            np.testing.assert_allclose(x, values[o - 11:o + 1], rtol=1e-5)
            np.testing.assert_allclose(truth[i], values[o + 1:o + 7])
    # One test window per series, its origin the last date before the test part.
    assert len(prepared.test) == len(prepared.ids) == 8
    assert str(prepared.test_start.date()) == "2024-07-01"
    assert str(prepared.val_start.date()) == "2024-01-01"


def test_a_series_too_short_for_a_training_window_is_left_out_by_name():
    frame = small_panel(6, seed=5)
    frame = frame[frame.groupby("unique_id")["y"].transform("size") >= 60]
    assert frame["unique_id"].nunique() == 4
    short = pd.DataFrame({"unique_id": "tiny", "ds": pd.date_range("2022-06-01", periods=31,
                                                                   freq="MS"),
                          "y": np.arange(31.0) + 5})
    panel = frame_panel(pd.concat([frame, short]), **COLUMNS)
    prepared = prepare_panel(panel, window=24, horizon=12, val_size=12, test_size=12)
    assert "tiny" not in prepared.ids and len(prepared.ids) == 4
    (note,) = prepared.left_out
    assert note.startswith("series 'tiny': 7 rows before the validation period")
    with pytest.raises(DataError, match="no series has 132 rows before the validation"):
        prepare_panel(panel, window=120, horizon=12, val_size=12, test_size=12)


def test_window_scaling_is_exactly_equivariant():
    x = np.random.default_rng(0).normal(50, 5, size=(4, 10))
    a, loc_a, scale_a = scaled_inputs(x)
    b, loc_b, scale_b = scaled_inputs(1000 * x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loc_b, 1000 * loc_a)
    np.testing.assert_allclose(scale_b, 1000 * scale_a)
    # A flat window is not divided by zero.
    flat, _, scale = scaled_inputs(np.full((1, 5), 7.0))
    assert np.isfinite(flat).all() and scale[0] > 0


def searched_task(frame):
    from experiments.tasks.panel import PanelTask, frame_panel

    panel = frame_panel(frame, **COLUMNS, name="p")
    settings = dict(window=24, horizon=12, val_size=12, test_size=12, id_embedding=False)
    return PanelTask(prepare_panel(panel, **settings), settings=settings,
                     searchable=("window", "id_embedding"))


def test_a_panel_search_varies_window_and_id_embedding_on_the_same_series(monkeypatch):
    """What tune searches on a panel: windows that keep every series the
    task keeps (so trials are scored on the same validation series), and
    the id as an input; trials compare on an error each series weighs the
    same in, whatever its scale."""
    frame = make_panel(4, seed=5).frame
    task = searched_task(frame)
    space = task.data_space()
    assert space["id_embedding"].values == (False, True)
    for window in space["window"].values:
        assert task.variant(window=window).prepared.ids == task.prepared.ids
    with_id = task.variant(id_embedding=True)
    assert with_id.input_shape == (36, 2 + 4) and task.variant(id_embedding=False) is task
    assert with_id.builder_arguments("es_rnn")["series_channels"] == 4
    perfect = task.validation_rmse(task.val.y)
    off = task.validation_rmse(task.val.y + 0.5)
    assert perfect == pytest.approx(0.0, abs=1e-5) and off > 0.1
    # One series a thousand times larger: the same score for the same outputs.
    bigger = searched_task(frame.assign(y=frame.y.where(frame.unique_id != "S001",
                                                        1000 * frame.y)))
    assert bigger.validation_rmse(task.val.y + 0.5) == pytest.approx(off, rel=1e-6)
    # Past a hundred series the embedding is asked for, not searched.
    import experiments.tasks.panel as panel_task

    monkeypatch.setattr(panel_task, "MAX_SEARCHED_ID_SERIES", len(task.prepared.ids) - 1)
    assert "id_embedding" not in task.data_space()


def test_per_series_scores_pick_the_best_baseline_and_share_of_wins():
    panel = make_panel(5, seed=2)
    prepared = prepare_panel(panel, window=24, horizon=12, val_size=12, test_size=12)
    baselines, notes = panel_scores.baseline_forecasts(prepared, prepared.test)
    assert set(baselines) == {"naive", "seasonal_naive", "ets"} and "AICc" in notes["ets"]
    truth = prepared.truth(prepared.test)
    table = panel_scores.per_series(prepared, prepared.test, truth, baselines)
    assert (table["mase"] == 0).all() and table["beats_best_baseline"].all()
    scores = panel_scores.aggregate(table, baselines)
    assert scores["share_beats_seasonal_naive"] == 1.0
    assert scores["series_scored"] == len(prepared.ids) == len(table)
    worse = panel_scores.per_series(prepared, prepared.test, baselines["naive"] * 1.5,
                                    baselines)
    assert not worse["beats_best_baseline"].any()


class Last:
    """A stand-in network: forecasts the last scaled input for every step."""

    def __init__(self, horizon):
        self.horizon = horizon

    def predict_on_batch(self, x):
        return np.repeat(x[:, -1:, 0], self.horizon, axis=1)


def served(window=6, horizon=3):
    return PanelForecaster("store", "week", "sales", "W-MON", window, horizon,
                           {"80": [0.5, 0.6, 0.7]})


def history(n=8):
    times = pd.date_range("2024-01-01", periods=n, freq="W-MON")
    return pd.concat([pd.DataFrame({"store": key, "week": times.strftime("%Y-%m-%d"),
                                    "sales": scale * (10 + np.arange(n) % 4)})
                      for key, scale in (("a", 1.0), ("b", 100.0))], ignore_index=True)


def test_the_served_reader_forecasts_every_series_in_its_units():
    table = served().forecast(Last(3), history(), steps=5)
    assert list(table.columns) == ["store", "week", "sales", "lower_80", "upper_80"]
    assert table.groupby("store").size().to_dict() == {"a": 5, "b": 5}
    a, b = table[table.store == "a"], table[table.store == "b"]
    np.testing.assert_allclose(b["sales"].to_numpy(), 100 * a["sales"].to_numpy())
    np.testing.assert_allclose(b["upper_80"] - b["sales"], 100 * (a["upper_80"] - a["sales"]))
    assert str(a["week"].iloc[0].date()) == "2024-02-26"  # the week after the last
    assert a["sales"].iloc[0] == pytest.approx(13.0)      # the last value: Last repeats it


@pytest.mark.parametrize("break_it, message", [
    (lambda h: pd.concat([h, h.iloc[[2]]]), r"series 'a', row 16: timestamp .* duplicates"),
    (lambda h: h.drop(index=3), r"series 'a', row 3: .* follows .*spaced 'W-MON'"),
    (lambda h: h[(h.store == "a") | (h.index > 12)],
     r"series 'b' has 3 rows; the model reads the last 6"),
    (lambda h: h.assign(sales=h["sales"].where(h.index != 9)),
     r"series 'b', column 'sales', row 9: missing value"),
    (lambda h: h.drop(columns="store"), r"no column 'store'"),
])
def test_the_served_reader_names_the_series_and_row_of_bad_input(break_it, message):
    with pytest.raises(ValueError, match=message):
        served().forecast(Last(3), break_it(history()))


@pytest.fixture(scope="module")
def panel_model():
    from experiments.forecasting.forecast_model import ForecastModel

    frame = make_panel(10, seed=4).frame
    model = ForecastModel("gru", target="y", time_col="ds", id_col="unique_id", window=12,
                          horizon=6, epochs=2, hyperparameters={"units": 8}).fit(frame)
    return model, frame


def test_a_panel_model_forecasts_each_series_on_its_own_scale(panel_model):
    """The issue's scale test: one series times 1,000 before predict, its
    forecast times 1,000 (relative 1e-4), every other series' unchanged; and
    a series never seen in training is forecast from its own history."""
    model, _ = panel_model
    history = model.history_.copy()
    assert model.supports_panels and history["unique_id"].nunique() == 10
    before = model.predict(history)
    first = history["unique_id"] == "S000"
    history.loc[first, "y"] *= 1000
    history.loc[history["unique_id"] == "S001", "unique_id"] = "never-seen"
    after = model.predict(history)
    assert after.groupby("unique_id").size().eq(6).all()
    mine, was = after[after.unique_id == "S000"], before[before.unique_id == "S000"]
    for col in ("y", "lower_80", "upper_95"):
        np.testing.assert_allclose(mine[col].to_numpy(), 1000 * was[col].to_numpy(),
                                   rtol=1e-4)
    np.testing.assert_allclose(
        after.loc[after.unique_id == "never-seen", "y"].to_numpy(),
        before.loc[before.unique_id == "S001", "y"].to_numpy(), rtol=1e-6)
    keep = ["unique_id", "ds", "y"]
    others = before[~before.unique_id.isin(["S000", "S001"])][keep].merge(
        after[keep], on=["unique_id", "ds"], suffixes=("", "_after"))
    assert len(others) == 8 * 6
    np.testing.assert_array_equal(others["y_after"], others["y"])


def test_a_panel_model_saves_and_loads_as_the_served_pyfunc(panel_model, tmp_path):
    import mlflow

    from experiments.forecasting.forecast_model import ForecastModel

    model, _ = panel_model
    path = model.save(str(tmp_path / "panel-model"))
    loaded = ForecastModel.load(path)
    assert loaded.settings["id_col"] == "unique_id"
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    served = mlflow.pyfunc.load_model(path).predict(model.history_, params={"steps": 9})
    assert served.groupby("unique_id").size().eq(9).all()


@pytest.mark.slow
def test_panel_cross_validation_cuts_every_series_at_the_same_date(panel_model):
    model, frame = panel_model
    cv = model.cross_validation(frame, n_windows=2, step=3)
    assert sorted(cv["cutoff"].astype(str).unique()) == ["2024-03-01", "2024-06-01"]
    assert cv.groupby(["cutoff", "unique_id"]).size().eq(6).all()
    assert cv["y_actual"].notna().all() and (cv["ds"] > cv["cutoff"]).all()


def promotions(n_series=6, weeks=120, seed=0):
    """y = 50 + 10 x + noise (sd 1), x random but known in advance (a promotion
    plan): the issue's known-answer panel, weekly, with a static region."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-01-06", periods=weeks, freq="W-MON")
    return pd.concat([pd.DataFrame({
        "store": f"s{k}", "week": dates, "promo": (x := rng.normal(size=weeks)),
        "sales": 50 + 5 * k + 10 * x + rng.normal(size=weeks),
        "region": "north" if k % 2 else "south"}) for k in range(n_series)],
        ignore_index=True)


COVARIATE_MODEL = dict(target="sales", time_col="week", id_col="store", window=12,
                       horizon=6, epochs=60, seed=1, hyperparameters={"units": 16},
                       static=["region"], calendar=["month"])


@pytest.fixture(scope="module")
def promo_models():
    from experiments.forecasting.forecast_model import ForecastModel

    frame = promotions()
    last = frame["week"].unique()[-6:]
    train, future = frame[~frame.week.isin(last)], frame[frame.week.isin(last)]
    known = ForecastModel("gru", future_features=["promo"], **COVARIATE_MODEL).fit(train)
    past = ForecastModel("gru", features=["promo"], **COVARIATE_MODEL).fit(train)
    return known, past, train, future


def rmse_on(table, future):
    got = table.merge(future[["store", "week", "sales"]], on=["store", "week"],
                      suffixes=("", "_true"))
    assert len(got) == len(future)
    return float(np.sqrt(np.mean((got["sales"] - got["sales_true"]) ** 2)))


@pytest.mark.slow
def test_a_future_feature_is_read_over_the_horizon_and_a_past_one_is_not(promo_models):
    """The issue's known-answer test: with x as a future feature the error
    is near the noise (sd 1); with x as a past-only feature the model
    cannot know it (an error near 10, x's effect)."""
    known, past, train, future = promo_models
    request = pd.concat([train, future.assign(sales=np.nan)])
    with_future = rmse_on(known.predict(request), future)
    without = rmse_on(past.predict(train), future)
    assert with_future < 2.5 and without > 7 and without > 3 * with_future
    # Past the horizon, each block reads its own future rows.
    cut = train[train.week < train.week.unique()[-6]]
    rest = pd.concat([train[train.week >= cut.week.max()].iloc[0:0],
                      train[~train.index.isin(cut.index)], future])
    rolled = known.predict(pd.concat([cut, rest.assign(sales=np.nan)]), steps=12)
    assert rmse_on(rolled, pd.concat([train[~train.index.isin(cut.index)], future])) < 3.5


@pytest.mark.slow
@pytest.mark.parametrize("break_it, message", [
    (lambda r: r[~((r.store == "s2") & (r.week == r.week.max()))],
     r"series 's2' has no row for 2022-04-18 with its future covariates \['promo'\]"),
    (lambda r: r.assign(promo=r.promo.where(~((r.store == "s1") & r.sales.isna()
                                              & (r.week == r.week.max())))),
     r"series 's1', column 'promo', row \d+: missing value"),
    (lambda r: r.assign(region=r.region.where(r.index != 7, "west")),
     r"series 's0', column 'region', row 7: 'west' differs from the series' first value"),
    (lambda r: r.assign(sales=r.sales.where(r.index != 30)),
     r"series 's0', row 30: missing sales; only the rows after a series' history"),
])
def test_bad_covariate_requests_are_named_by_series_and_row(promo_models, break_it, message):
    known, _, train, future = promo_models
    request = pd.concat([train, future.assign(sales=np.nan)], ignore_index=True)
    with pytest.raises(ValueError, match=message):
        known.predict(break_it(request))


@pytest.mark.slow
def test_an_unknown_static_category_is_forecast_as_the_unknown_one(promo_models, caplog):
    known, _, train, future = promo_models
    request = pd.concat([train, future.assign(sales=np.nan)], ignore_index=True)
    request.loc[request.store == "s3", "region"] = "east"
    table = known.predict(request)
    assert table["store"].nunique() == 6 and np.isfinite(table["sales"]).all()
    assert "'east' was not seen in training" in caplog.text


def test_a_served_combination_is_the_weighted_sum_of_network_and_seasonal_naive():
    import dataclasses

    reader = dataclasses.replace(served(), combination={"network": 0.3,
                                                        "seasonal_naive": 0.7}, season=4)
    table = reader.forecast(Last(3), history())
    network = served().forecast(Last(3), history())
    # The history repeats 10, 11, 12, 13: the seasonal naive continues it.
    for key, scale in (("a", 1.0), ("b", 100.0)):
        naive = scale * np.array([10.0, 11.0, 12.0])
        mine = table.loc[table.store == key, "sales"].to_numpy()
        alone = network.loc[network.store == key, "sales"].to_numpy()
        np.testing.assert_allclose(mine, 0.3 * alone + 0.7 * naive, rtol=1e-6)


def test_the_panel_combination_is_chosen_on_validation_and_logged(panel_model):
    model, _ = panel_model
    weights = model.forecaster_.combination
    assert set(weights) <= {"network", "seasonal_naive"} and sum(weights.values()) == \
        pytest.approx(1.0)
    assert model.forecaster_.season == 12


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(__import__("zoo").list_models()))
def test_every_family_that_forecasts_trains_on_a_panel_with_covariates(family):
    """One network over several series, reading the calendar, a static
    column and the series id beside the target: every family of the registry that can serve a
    forecast trains and forecasts every series; one that cannot says why.
    (The saved round trip is the gru's, above: saving is the zoo's, shared.)"""
    from experiments.errors import ConfigError
    from experiments.forecasting.forecast_model import ForecastModel

    frame = promotions(n_series=3, weeks=60)
    settings = dict(target="sales", time_col="week", id_col="store", window=8, horizon=3,
                    epochs=1, static=["region"], calendar=["month"], id_embedding=True,
                    refit=False)
    try:
        model = ForecastModel(family, **settings).fit(frame)
    except ConfigError as err:
        assert family == "conv_lstm" and "cannot serve the panel task" in str(err)
        return
    table = model.predict()
    assert table.groupby("store").size().eq(3).all() and np.isfinite(table["sales"]).all()


@pytest.mark.slow
def test_es_rnn_smooths_each_series_with_coefficients_of_its_own(tmp_path, caplog):
    """Smyl's M4 form on a panel: one LSTM, smoothing per series (the id's
    embedding, --id-embedding); it saves and loads, and a series never seen
    in training is forecast with the shared smoothing and a note."""
    from experiments.data.panel import make_panel
    from experiments.forecasting.forecast_model import ForecastModel

    frame = make_panel(n_series=4).frame
    model = ForecastModel("es_rnn", target="y", time_col="ds", id_col="unique_id", horizon=6,
                          epochs=3, id_embedding=True, refit=False, combine="none",
                          hyperparameters={"units": 8}).fit(frame)
    layer = model.network_.get_layer("exponential_smoothing")
    assert layer.series_channels == 4 and layer.history == model.forecaster_.window
    shared = layer.coefficients()
    for own in (layer.coefficients(np.eye(4)[k]) for k in range(4)):
        assert own["alpha"] != pytest.approx(shared["alpha"], abs=1e-6)
    table = model.predict(frame)
    model.save(str(tmp_path / "es"))
    again = ForecastModel.load(str(tmp_path / "es")).predict(frame)
    np.testing.assert_allclose(again["y"].to_numpy(), table["y"].to_numpy(), rtol=1e-6)
    stranger = frame[frame.unique_id == "S000"].assign(unique_id="new")
    assert np.isfinite(model.predict(stranger)["y"]).all()
    assert "'new' was not seen in training" in caplog.text


def test_compare_ranks_panel_runs_with_the_series_each_wins():
    from types import SimpleNamespace

    from experiments.compare import Entry, leaderboard

    task = SimpleNamespace(metrics_shown=("mase", "smape", "rmse"), rank_by="test_mase",
                           baselines=lambda: [("seasonal naive", "test_seasonal_naive_")])

    def scores(mase, won):
        return {"test_mase": mase, "test_smape": 10 * mase, "test_rmse": 5 * mase,
                "test_skill_vs_best_baseline": 1 - mase, "test_series_scored": 20.0,
                "test_share_beats_best_baseline": won / 20, "test_seasonal_naive_mase": 1.0,
                "test_seasonal_naive_smape": 10.0, "test_seasonal_naive_rmse": 5.0,
                "test_coverage_80": 0.7, "test_msis_80": 8 * mase, "test_msis_95": 9.0,
                "test_scaled_crps": 0.5 * mase}

    rows = leaderboard([Entry("gru", scores(1.2, 6), "a" * 32),
                        Entry("simple_rnn", scores(0.9, 13), "b" * 32)], task)
    assert rows[0] == ("rank", "model", "mase", "smape", "rmse", "skill", "series won",
                       "80% covered", "MSIS 80%", "CRPS", "run")
    assert rows[1][:3] == ("1", "simple_rnn", "0.9")
    assert rows[1][-5:] == ("13/20", "0.70", "7.2", "0.45", "bbbbbbbb")
    assert rows[2][1] == "(seasonal naive)" and rows[3][1] == "gru" and rows[3][-5] == "6/20"


def test_many_series_left_out_are_counted_in_one_note():
    from experiments.tasks.panel import PanelTask

    prepared = prepare_panel(make_panel(40, seed=0), window=24, horizon=12, val_size=12,
                             test_size=12)
    assert len(prepared.left_out) > 3
    (note,) = PanelTask(prepared).adjustments
    assert note.startswith(f"{len(prepared.left_out)} series have fewer than window 24")
    assert "left_out.txt in the run names them" in note
