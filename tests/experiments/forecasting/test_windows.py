"""Splits, scaling and windows: no leakage, exact inverse transforms."""

import numpy as np
import pytest

from experiments import data
from experiments.forecasting import metrics, windows


def random_settings(rng):
    return dict(window=int(rng.integers(2, 20)), horizon=int(rng.integers(1, 8)),
                val_size=float(rng.uniform(0.1, 0.25)),
                test_size=int(rng.integers(8, 30)),
                transforms=tuple(t for t in windows.TRANSFORMS if rng.random() < 0.4))


@pytest.mark.parametrize("seed", range(12))
def test_no_training_target_reaches_validation_and_scaler_sees_train_only(seed):
    rng = np.random.default_rng(seed)
    series = data.make_sine(length=int(rng.integers(200, 400)), seed=seed)
    # A trend, so that a scaler fitted on everything would differ.
    series.frame["value"] += np.linspace(2, 8, len(series))
    s = random_settings(rng)
    p = windows.prepare(series, **s)
    assert len(p.train) and len(p.val) and len(p.test)
    last_train_target = p.train.origins.max() + p.horizon
    first_val_target = p.val.origins.min() + 1
    assert last_train_target < p.n_train <= first_val_target
    assert p.val.origins.max() + p.horizon < p.n_train + p.n_val
    assert p.test.origins.min() + 1 >= p.n_train + p.n_val
    assert p.test.origins.max() + p.horizon == len(series) - 1
    # Scaler statistics equal those of the transformed training slice.
    raw = series.frame["value"].to_numpy()
    z = np.log(raw) if "log" in s["transforms"] else raw.copy()
    lost = 0
    for step in s["transforms"]:
        if step != "log":
            lag = 1 if step == "diff" else p.season
            z = z[lag:] - z[:-lag]
            lost += lag
    train_slice = z[: p.n_train - lost]
    assert p.mean["value"] == pytest.approx(train_slice.mean(), rel=1e-9)
    assert p.std["value"] == pytest.approx(train_slice.std(), rel=1e-9)
    # Inverse transforms give the original values back exactly.
    for part in (p.train, p.val, p.test):
        np.testing.assert_allclose(p.to_original(part.y, part.origins),
                                   p.truth(part), rtol=1e-5)


def test_windows_match_the_rows_they_came_from():
    series = data.make_sine(length=120, seed=0)
    p = windows.prepare(series, window=5, horizon=3, val_size=20, test_size=20)
    scaled = (series.frame["value"] - p.mean["value"]) / p.std["value"]
    for part in (p.train, p.val, p.test):
        for x, y, o in zip(part.x[:5], part.y[:5], part.origins[:5], strict=True):
            np.testing.assert_allclose(x[:, 0], scaled[o - 4: o + 1], rtol=1e-5)
            np.testing.assert_allclose(y, scaled[o + 1: o + 4], rtol=1e-5)


def test_split_sizes_as_fraction_count_and_date():
    series = data.load_airline()
    p = windows.prepare(series, window=12, horizon=6, val_size=0.1,
                        test_size="1960-01-01")
    assert p.n_test == 12
    assert p.n_val == round(132 * 0.1)
    with pytest.raises(data.DataError, match=r"not a fraction, a count or a date"):
        windows.prepare(series, window=12, horizon=6, val_size=12, test_size="soon")


def test_metrics_and_baselines_on_known_numbers():
    truth = np.array([[[10.0], [20.0]]])
    pred = np.array([[[12.0], [16.0]]])
    m = metrics.forecast_metrics(truth, pred, scale=np.array([2.0]))
    assert m["mae"] == 3.0
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 16) / 2))
    assert m["mape"] == pytest.approx(100 * (0.2 + 0.2) / 2)
    assert m["smape"] == pytest.approx(100 * (2 * 2 / 22 + 2 * 4 / 36) / 2)
    assert m["mase"] == pytest.approx(1.5)
    values = np.arange(30, dtype=float)[:, None]
    np.testing.assert_array_equal(metrics.naive(values, np.array([9]), 3)[0, :, 0],
                                  [9, 9, 9])
    # season 4, origin 9: steps 10..14 repeat 6, 7, 8, 9, then 6 again.
    snaive = metrics.seasonal_naive(values, np.array([9]), 5, 4)[0, :, 0]
    np.testing.assert_array_equal(snaive, [6, 7, 8, 9, 6])
    assert metrics.skill(5.0, 10.0) == 0.5 and metrics.skill(20.0, 10.0) == -1.0


def test_interval_crps_is_the_absolute_error_of_a_point_and_proper_with_intervals():
    rng = np.random.default_rng(0)
    truth, point = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    # With no intervals the forecast is its median alone: CRPS is |error| / scale.
    assert metrics.interval_crps(truth, point, {}, 2.0) == pytest.approx(
        np.mean(np.abs(truth - point)) / 2.0)
    # Scale-free: the data and its scale multiplied alike leave it unchanged.
    bounds = {80: (point - 1, point + 1)}
    assert metrics.interval_crps(10 * truth, 10 * point, {80: (10 * point - 10, 10 * point + 10)},
                                 10.0) == pytest.approx(metrics.interval_crps(truth, point,
                                                                              bounds, 1.0))
    # Proper: on N(0, 1) draws the true quantiles score best, against bands
    # too narrow or too wide, and against a shifted median.
    draws = rng.normal(size=20_000)
    z80, z95 = 1.2816, 1.9600

    def score(center=0.0, stretch=1.0):
        zero = np.zeros_like(draws) + center
        return metrics.interval_crps(draws, zero, {
            80: (zero - stretch * z80, zero + stretch * z80),
            95: (zero - stretch * z95, zero + stretch * z95)}, 1.0)

    assert score() < min(score(stretch=0.5), score(stretch=2.0), score(center=0.5))


def test_interval_scores_are_m4s_msis_worked_by_hand():
    """80% bounds [8, 12] around three values: one inside, one 2 below, one 1
    above. Each miss costs 2 / 0.2 = 10 times its distance (M4's MSIS)."""
    truth = np.array([10.0, 6.0, 13.0])
    got = metrics.interval_scores(truth, np.full(3, 8.0), np.full(3, 12.0), 80, scale=2.0)
    assert got["coverage"] == pytest.approx(1 / 3)
    assert got["width"] == pytest.approx(4 / 2)
    assert got["msis"] == pytest.approx((4 + (4 + 10 * 2) + (4 + 10 * 1)) / 3 / 2)
