"""The quantile and distribution heads (zoo.quantiles, zoo.distributions):
ordered by construction, for every forecasting family, and the losses they
train with."""

import keras
import numpy as np
import pytest

import zoo
from experiments.forecasting import metrics
from zoo.distributions import DistributionLoss
from zoo.quantile_levels import (
    DISTRIBUTIONS,
    MIN_DF,
    MIN_DISPERSION,
    MIN_SCALE,
    distribution_quantiles,
)
from zoo.quantiles import QuantileLoss

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@pytest.mark.slow  # forty models built: the full suite's, not test-fast's
@pytest.mark.parametrize("head", ["quantiles", "normal", "student_t", "negative_binomial"])
@pytest.mark.parametrize("family", zoo.list_models(head="forecast"))
def test_quantiles_never_cross_for_any_weights_and_inputs(family, head):
    """Random inputs far outside the training range, and every weight of the
    network redrawn at random (the spread's too): the quantiles stay ordered,
    a distribution's scale positive, Student-t's degrees of freedom above 2,
    a negative binomial's dispersion positive and its quantiles whole counts."""
    shape, _ = zoo.get(family).example_input
    block = (3, 1) if family == "es_rnn" else (3, 2)
    probabilistic = ({"quantiles": (0.95, 0.5, 0.05, 0.25, 0.75)} if head == "quantiles"
                     else {"distribution": head})
    model = zoo.build_model(family, shape, block, **probabilistic)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 3, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    out = model.predict_on_batch(rng.normal(0, 10, (64, *shape)).astype("float32"))
    assert np.isfinite(out).all()
    if head != "quantiles":
        assert model.output_shape == (None, *block, len(DISTRIBUTIONS[head]))
        assert (out[..., 1] >= (MIN_DISPERSION if head == "negative_binomial"
                                else MIN_SCALE)).all()
        assert head != "student_t" or (out[..., 2] >= MIN_DF).all()
        out = distribution_quantiles(out, head, QUANTILES, center=20.0, scale=5.0)
        if head == "negative_binomial":
            counts = 20.0 + 5.0 * out
            np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
            assert (np.round(counts) >= 0).all()
    assert out.shape[-1] == len(QUANTILES)
    assert (np.diff(out, axis=-1) >= 0).all(), family
    keras.backend.clear_session()


def test_the_distribution_losses_are_scipys_negative_log_likelihoods():
    from scipy import stats

    y = np.random.default_rng(3).standard_t(3, (2000, 2, 1)).astype("float32")
    ones = np.ones_like(y)
    for name, params, logpdf in (
            ("normal", [0 * ones, 2 * ones], stats.norm.logpdf(y, 0, 2)),
            ("student_t", [0 * ones, 2 * ones, 3 * ones], stats.t.logpdf(y, 3, 0, 2))):
        value = DistributionLoss(name)(y, np.stack(params, -1))
        np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), -logpdf.mean(),
                                   rtol=1e-5)


@pytest.mark.parametrize("dispersion", [0.002, 0.3, 4.0])  # near Poisson to very wide
def test_the_count_loss_is_scipys_negative_binomial_on_standardised_counts(dispersion):
    """Counts given standardised (as the network reads them, (y - 30) / 12)
    and the mean's location in the same units: the loss is scipy's
    negative log-likelihood of the counts themselves."""
    from scipy import stats

    rng = np.random.default_rng(4)
    counts = rng.poisson(30, (500, 3, 1)).astype("float64")
    loc = rng.normal(0, 0.5, counts.shape)
    mean = np.logaddexp(0, 30 + 12 * loc)  # softplus
    size = 1 / dispersion
    expected = -stats.nbinom.logpmf(counts, size, size / (size + mean)).mean()
    y_pred = np.stack([loc, np.full_like(loc, dispersion)], -1).astype("float32")
    loss = DistributionLoss("negative_binomial", center=30.0, scale=12.0)
    value = loss(((counts - 30) / 12).astype("float32"), y_pred)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), expected, rtol=1e-4)
    with pytest.raises(ValueError, match="`center` is for a count distribution"):
        DistributionLoss("normal", center=30.0)


def test_pinball_loss_is_numpys_and_is_least_at_the_quantiles():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(4000, 2, 1)).astype("float32")
    levels = (0.1, 0.5, 0.9)
    loss = QuantileLoss(levels)
    at = np.quantile(y, levels)  # the empirical quantiles, as constant forecasts
    pred = np.broadcast_to(at, (*y.shape, 3)).astype("float32")
    value = float(keras.ops.convert_to_numpy(loss(y, pred)))
    np.testing.assert_allclose(value, metrics.pinball(y, pred, levels).mean(), rtol=1e-5)
    for shift in (-0.2, 0.2):  # anywhere else scores worse
        assert float(keras.ops.convert_to_numpy(loss(y, pred + shift))) > value


@pytest.mark.parametrize("head", ["quantiles", "student_t", "negative_binomial"])
def test_a_probabilistic_model_saves_and_loads_with_its_head(tmp_path, head):
    if head == "quantiles":
        model = zoo.build_model("gru", (8, 1), 2, quantiles=(0.1, 0.5, 0.9), units=4)
        model.compile("adam", loss=QuantileLoss((0.1, 0.5, 0.9)))
    else:
        model = zoo.build_model("gru", (8, 1), 2, distribution=head, units=4)
        scaling = {"center": [3.0], "scale": [2.0]} if head == "negative_binomial" else {}
        model.compile("adam", loss=DistributionLoss(head, **scaling))
    x = np.random.default_rng(2).normal(size=(16, 8, 1)).astype("float32")
    model.fit(x, x[:, -2:, 0], epochs=1, verbose=0)
    model.save(tmp_path / "q.keras")
    again = zoo.load_model(tmp_path / "q.keras")
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x),
                               rtol=1e-6)
    assert again.loss.get_config() == model.loss.get_config()


@pytest.mark.parametrize("quantiles, said", [
    ((0.1, 0.9), "must include the median, 0.5"),
    ((0.0, 0.5), "strictly between 0 and 1"),
    ((0.5, 1.2), "`quantiles` must be"),
    ("0.5", "must be a sequence of levels"),
])
def test_bad_quantiles_are_named(quantiles, said):
    with pytest.raises(ValueError, match="build_gru: ") as err:
        zoo.build_model("gru", (8, 1), 2, quantiles=quantiles)
    assert said in str(err.value)


def test_quantiles_take_the_forecast_head_only():
    with pytest.raises(ValueError, match="`quantiles` takes head='forecast' only"):
        zoo.build_model("gru", (8, 3), 4, head="classification", quantiles=(0.1, 0.5, 0.9))
    with pytest.raises(ValueError, match="unknown hyperparameter 'quantiles'"):
        zoo.build_model("conv_lstm", (4, 8, 8, 1), 1, quantiles=(0.1, 0.5, 0.9))
    with pytest.raises(ValueError, match="not both"):
        zoo.build_model("gru", (8, 1), 2, quantiles=(0.1, 0.5, 0.9), distribution="normal")
    with pytest.raises(ValueError, match="`distribution` must be one of"):
        zoo.build_model("gru", (8, 1), 2, distribution="poisson")
