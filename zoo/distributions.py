"""Distribution heads: any forecasting family's point forecast as the
location of a Normal or Student-t distribution, with a scale (and degrees of
freedom) of its own, or of a negative binomial's mean count, with a
dispersion, trained by likelihood (as DeepAR's heads are).

>>> model = build_model("gru", (24, 1), (12, 1), distribution="student_t")
>>> model.output_shape                     # (batch, horizon, targets, parameters)
(None, 12, 1, 3)                           # location, scale, degrees of freedom
>>> model.compile("adam", loss=DistributionLoss("student_t"))

The scale is ``softplus`` of a dense layer of what the family's forecast
layer reads (as ``zoo.quantiles`` spreads its quantiles), plus a floor, so it
is positive for any weights; Student-t's degrees of freedom are above 2, so
its variance is finite. ``zoo.quantile_levels.distribution_quantiles`` turns
the parameters into quantiles.

A count head (``"negative_binomial"``) forecasts whole numbers >= 0: its mean
count is ``softplus(center + scale * location)`` and its variance
``mean * (1 + dispersion * mean)``. ``center`` and ``scale`` belong to the
loss, not the network: a network reading standardised counts takes the
standardisation's mean and deviation (``DistributionLoss("negative_binomial",
center=m, scale=s)``), one reading raw counts the defaults 0 and 1.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from zoo import checks
from zoo.quantile_levels import (
    COUNT_DISTRIBUTIONS,
    DISTRIBUTIONS,
    MIN_DF,
    MIN_DISPERSION,
    MIN_SCALE,
)
from zoo.quantiles import spread_features

PARAMETER_LAYER = "distribution"


def check_distribution(where, distribution) -> str:
    return checks.check_choice(where, "distribution", distribution, tuple(DISTRIBUTIONS))


@keras.saving.register_keras_serializable(package="zoo")
class DistributionParameters(keras.layers.Layer):
    """``[location (batch, *block), raw (batch, *block, parameters - 1)]``
    -> ``(batch, *block, parameters)``: the location, a positive scale and,
    for Student-t, degrees of freedom above ``MIN_DF``; for a count
    distribution, the location and a dispersion above ``MIN_DISPERSION``."""

    def __init__(self, distribution, **kwargs):
        super().__init__(**kwargs)
        self.distribution = check_distribution("DistributionParameters", distribution)

    def call(self, inputs):
        loc, raw = inputs
        floor = MIN_DISPERSION if self.distribution in COUNT_DISTRIBUTIONS else MIN_SCALE
        parts = [keras.ops.expand_dims(loc, -1), keras.ops.softplus(raw[..., :1]) + floor]
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
    the distributions ``y_pred`` ``(batch, *block, parameters)``.

    ``center``, ``scale``: a count distribution's standardisation, a number
    or one per target (the last axis of ``y_true``): the counts are
    ``center + scale * y_true`` (rounded), the mean count
    ``softplus(center + scale * location)``."""

    def __init__(self, distribution, center=0.0, scale=1.0, name="negative_log_likelihood",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.distribution = check_distribution("DistributionLoss", distribution)
        for arg, value, default in (("center", center, 0.0), ("scale", scale, 1.0)):
            if self.distribution not in COUNT_DISTRIBUTIONS and value != default:
                raise ValueError(f"DistributionLoss: `{arg}` is for a count distribution "
                                 f"{COUNT_DISTRIBUTIONS}; received {arg}={value!r} with "
                                 f"distribution={self.distribution!r}")
        self.center = [float(v) for v in center] if np.ndim(center) else float(center)
        self.scale = [float(v) for v in scale] if np.ndim(scale) else float(scale)

    def call(self, y_true, y_pred):
        y_pred = keras.ops.convert_to_tensor(y_pred)
        y = keras.ops.cast(y_true, y_pred.dtype)
        loc, scale = y_pred[..., 0], y_pred[..., 1]
        if self.distribution in COUNT_DISTRIBUTIONS:
            nll = self._count_nll(y, loc, scale)
            return keras.ops.mean(keras.ops.reshape(nll, (keras.ops.shape(nll)[0], -1)), -1)
        z = (y - loc) / scale
        if self.distribution == "normal":
            nll = keras.ops.log(scale) + 0.5 * z * z + 0.5 * math.log(2 * math.pi)
        else:
            df = y_pred[..., 2]
            nll = (keras.ops.log(scale) + 0.5 * keras.ops.log(df * math.pi)
                   + _lgamma(df / 2) - _lgamma((df + 1) / 2)
                   + (df + 1) / 2 * keras.ops.log1p(z * z / df))
        return keras.ops.mean(keras.ops.reshape(nll, (keras.ops.shape(nll)[0], -1)), -1)

    def _count_nll(self, y, loc, dispersion):
        """The negative binomial's: counts ``y`` (standardised), mean
        ``softplus(center + scale * loc)``, size ``1 / dispersion``."""
        dtype = loc.dtype
        center = keras.ops.convert_to_tensor(self.center, dtype)
        scale = keras.ops.convert_to_tensor(self.scale, dtype)
        counts = keras.ops.maximum(keras.ops.round(center + scale * y), 0.0)
        mean = keras.ops.softplus(center + scale * loc)
        size = 1.0 / dispersion
        log_total = keras.ops.log(size + mean)
        return (_lgamma(size) + _lgamma(counts + 1.0) - _lgamma(counts + size)
                - size * (keras.ops.log(size) - log_total)
                - counts * (keras.ops.log(mean + 1e-12) - log_total))

    def get_config(self):
        config = {**super().get_config(), "distribution": self.distribution}
        if self.distribution in COUNT_DISTRIBUTIONS:
            config.update(center=self.center, scale=self.scale)
        return config


def _lgamma(x):
    """log Gamma(x) for x > 0 in ``keras.ops`` (which has none): Stirling's
    series at x + 3 (error below 3e-7 there), shifted back by
    Gamma(x + 3) = x (x + 1) (x + 2) Gamma(x)."""
    z = x + 3.0
    series = (1 / (12 * z) - 1 / (360 * z ** 3) + 1 / (1260 * z ** 5))
    stirling = (z - 0.5) * keras.ops.log(z) - z + 0.5 * math.log(2 * math.pi) + series
    return stirling - keras.ops.log(x * (x + 1.0) * (x + 2.0))


def with_distribution(model, distribution, where="with_distribution"):
    """``model`` (a point forecaster, output ``(batch, *block)``) with a
    distribution head: output ``(batch, *block, parameters)``, its own
    output the location. The scale starts at 0.5 in the units the network
    forecasts in (scaled data), Student-t's degrees of freedom at 10, a
    count distribution's dispersion at 0.01 (near Poisson: the likelihood is
    flat there for Poisson counts, steep for wider ones, which it widens to)."""
    distribution = check_distribution(where, distribution)
    point = model.output
    block = tuple(point.shape[1:])
    if distribution in COUNT_DISTRIBUTIONS:
        starts = [0.01 - MIN_DISPERSION]
    else:
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


def start_spread(model, x, y) -> bool:
    """Start a distribution head's spread at what the training windows
    ``x`` show around the least-squares fit of ``y`` on them, per output:
    a Normal's scale at the residuals' standard deviation, a Student-t's
    so that its variance is theirs (at its starting degrees of freedom), a
    count head's dispersion at the variance left beyond a Poisson's,
    ``(residual variance - mean) / mean(fit ** 2)`` (at least
    ``MIN_DISPERSION``).

    Call it on the training windows before ``fit``, once the model is
    compiled with its ``DistributionLoss`` (a count head's ``center`` and
    ``scale`` give the counts). Gradient descent alone moves the spread
    slowly (measured: a dispersion started at 0.01 stayed there over 64
    steps where the counts' was 0.5, and a Normal's scale reached 0.78 of
    the noise's): early stopping on a short series ends it first. Returns
    whether the model had a distribution head.
    """
    loss = model.loss
    if not isinstance(loss, DistributionLoss):
        return False
    x = np.asarray(x, dtype="float64").reshape(len(x), -1)
    y = np.asarray(y, dtype="float64")
    counting = loss.distribution in COUNT_DISTRIBUTIONS
    if counting:
        y = np.asarray(loss.center) + np.asarray(loss.scale) * y
    y = y.reshape(len(y), -1)
    rows = np.linspace(0, len(x) - 1, min(len(x), _START_ROWS)).astype(int)
    design = np.column_stack([x[rows], np.ones(len(rows))])
    fit = design @ np.linalg.lstsq(design, y[rows], rcond=None)[0]
    variance = ((y[rows] - fit) ** 2).mean(0)
    layer = model.get_layer("distribution_raw")
    kernel, bias = layer.get_weights()
    bias = bias.reshape(y.shape[1], -1)  # (outputs, parameters - 1)
    if counting:
        excess = variance - y[rows].mean(0)
        spread = np.clip(excess / np.maximum((fit ** 2).mean(0), 1e-6),
                         2 * MIN_DISPERSION, _MAX_START_DISPERSION)
        floor = MIN_DISPERSION
    else:
        df = np.log1p(np.exp(bias[:, 1])) + MIN_DF if loss.distribution == "student_t" else None
        spread = np.sqrt(variance) * (1.0 if df is None else np.sqrt((df - 2) / df))
        spread = np.maximum(spread, 2 * MIN_SCALE)
        floor = MIN_SCALE
    bias[:, 0] = np.log(np.expm1(spread - floor))  # softplus^-1
    layer.set_weights([kernel, bias.ravel().astype(kernel.dtype)])
    return True


# Rows the start fits on (evenly spaced), and its largest dispersion.
_START_ROWS = 20_000
_MAX_START_DISPERSION = 10.0
