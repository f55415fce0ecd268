"""Distribution heads: any forecasting family's point forecast as the
location of a Normal or Student-t distribution, with a scale (and degrees of
freedom) of its own, trained by likelihood (as DeepAR's heads are).

>>> model = build_model("gru", (24, 1), (12, 1), distribution="student_t")
>>> model.output_shape                     # (batch, horizon, targets, parameters)
(None, 12, 1, 3)                           # location, scale, degrees of freedom
>>> model.compile("adam", loss=DistributionLoss("student_t"))

The scale is ``softplus`` of a dense layer of what the family's forecast
layer reads (as ``zoo.quantiles`` spreads its quantiles), plus a floor, so it
is positive for any weights; Student-t's degrees of freedom are above 2, so
its variance is finite. ``zoo.quantile_levels.distribution_quantiles`` turns
the parameters into quantiles.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from zoo import checks
from zoo.quantile_levels import DISTRIBUTIONS, MIN_DF, MIN_SCALE
from zoo.quantiles import spread_features

PARAMETER_LAYER = "distribution"


def check_distribution(where, distribution) -> str:
    return checks.check_choice(where, "distribution", distribution, tuple(DISTRIBUTIONS))


@keras.saving.register_keras_serializable(package="zoo")
class DistributionParameters(keras.layers.Layer):
    """``[location (batch, *block), raw (batch, *block, parameters - 1)]``
    -> ``(batch, *block, parameters)``: the location, a positive scale and,
    for Student-t, degrees of freedom above ``MIN_DF``."""

    def __init__(self, distribution, **kwargs):
        super().__init__(**kwargs)
        self.distribution = check_distribution("DistributionParameters", distribution)

    def call(self, inputs):
        loc, raw = inputs
        parts = [keras.ops.expand_dims(loc, -1),
                 keras.ops.softplus(raw[..., :1]) + MIN_SCALE]
        if self.distribution == "student_t":
            parts.append(keras.ops.softplus(raw[..., 1:2]) + MIN_DF)
        return keras.ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0], len(DISTRIBUTIONS[self.distribution]))

    def get_config(self):
        return {**super().get_config(), "distribution": self.distribution}


@keras.saving.register_keras_serializable(package="zoo")
class DistributionLoss(keras.losses.Loss):
    """The negative log-likelihood of ``y_true`` ``(batch, *block)`` under
    the distributions ``y_pred`` ``(batch, *block, parameters)``."""

    def __init__(self, distribution, name="negative_log_likelihood", **kwargs):
        super().__init__(name=name, **kwargs)
        self.distribution = check_distribution("DistributionLoss", distribution)

    def call(self, y_true, y_pred):
        y_pred = keras.ops.convert_to_tensor(y_pred)
        y = keras.ops.cast(y_true, y_pred.dtype)
        loc, scale = y_pred[..., 0], y_pred[..., 1]
        z = (y - loc) / scale
        if self.distribution == "normal":
            nll = keras.ops.log(scale) + 0.5 * z * z + 0.5 * math.log(2 * math.pi)
        else:
            df = y_pred[..., 2]
            nll = (keras.ops.log(scale) + 0.5 * keras.ops.log(df * math.pi)
                   + _lgamma(df / 2) - _lgamma((df + 1) / 2)
                   + (df + 1) / 2 * keras.ops.log1p(z * z / df))
        return keras.ops.mean(keras.ops.reshape(nll, (keras.ops.shape(nll)[0], -1)), -1)

    def get_config(self):
        return {**super().get_config(), "distribution": self.distribution}


def _lgamma(x):
    """log Gamma(x) for x >= 1 in ``keras.ops`` (which has none): Stirling's
    series at x + 3 (error below 1e-8 there), shifted back by
    Gamma(x + 3) = x (x + 1) (x + 2) Gamma(x)."""
    z = x + 3.0
    series = (1 / (12 * z) - 1 / (360 * z ** 3) + 1 / (1260 * z ** 5))
    stirling = (z - 0.5) * keras.ops.log(z) - z + 0.5 * math.log(2 * math.pi) + series
    return stirling - keras.ops.log(x * (x + 1.0) * (x + 2.0))


def with_distribution(model, distribution, where="with_distribution"):
    """``model`` (a point forecaster, output ``(batch, *block)``) with a
    distribution head: output ``(batch, *block, parameters)``, its own
    output the location. The scale starts at 0.5 in the units the network
    forecasts in (scaled data), Student-t's degrees of freedom at 10."""
    distribution = check_distribution(where, distribution)
    point = model.output
    block = tuple(point.shape[1:])
    starts = [0.5 - MIN_SCALE] + ([10.0 - MIN_DF] if distribution == "student_t" else [])
    bias = np.log(np.expm1(np.array(starts)))  # softplus^-1
    raw = keras.layers.Dense(
        math.prod(block) * len(starts), name="distribution_raw", kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(np.tile(bias, math.prod(block))),
    )(spread_features(model))
    raw = keras.layers.Reshape((*block, len(starts)), name="distribution_shape")(raw)
    out = DistributionParameters(distribution, name=PARAMETER_LAYER, dtype="float32")(
        [point, raw])
    return keras.Model(model.inputs, out, name=model.name)
