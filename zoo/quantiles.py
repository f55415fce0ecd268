"""The quantile head: any forecasting family's point forecast, widened into
quantiles that cannot cross, and the pinball loss it trains with.

>>> model = build_model("gru", (24, 1), (12, 1), quantiles=(0.1, 0.5, 0.9))
>>> model.output_shape                     # (batch, horizon, targets, quantiles)
(None, 12, 1, 3)
>>> model.compile("adam", loss=QuantileLoss((0.1, 0.5, 0.9)))

The family's own forecast is the median. Every other quantile is the median
plus (above) or minus (below) a sum of softplus increments, one per quantile
between it and the median, so the quantiles are ordered by construction,
whatever the weights. The increments are a dense layer of what the family's
forecast layer reads (its encoder state), or of the input window for a
family whose forecast comes from elsewhere (``seq2seq_lstm``'s decoder,
``es_rnn``'s smoothing): the spread depends on the input, as a series'
noise often does on its level.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from zoo.quantile_levels import check_quantiles, median_index

# The layer whose output is the quantiles, and the one they spread from.
QUANTILE_LAYER = "quantiles"
SPREAD_LAYER = "quantile_spread"
# The family layer whose input is the encoder state (zoo.heads).
FORECAST_LAYER = "forecast"


@keras.saving.register_keras_serializable(package="zoo")
class OrderedQuantiles(keras.layers.Layer):
    """``[median (batch, *block), raw (batch, *block, quantiles - 1)]`` ->
    ``(batch, *block, quantiles)``: the median in its place, each quantile
    above it the one below plus ``softplus`` of its raw value, each below
    it the one above minus one. Ordered for any input."""

    def __init__(self, quantiles, **kwargs):
        super().__init__(**kwargs)
        self.quantiles = tuple(float(q) for q in quantiles)

    def call(self, inputs):
        median, raw = inputs
        m = median_index(self.quantiles)
        steps = keras.ops.softplus(raw)
        below = -keras.ops.flip(keras.ops.cumsum(keras.ops.flip(steps[..., :m], -1), -1), -1)
        above = keras.ops.cumsum(steps[..., m:], -1)
        centre = keras.ops.expand_dims(median, -1)
        return keras.ops.concatenate([centre + below, centre, centre + above], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0], len(self.quantiles))

    def get_config(self):
        return {**super().get_config(), "quantiles": list(self.quantiles)}


@keras.saving.register_keras_serializable(package="zoo")
class QuantileLoss(keras.losses.Loss):
    """The pinball loss averaged over ``quantiles``: ``y_true`` is the
    block ``(batch, *block)``, ``y_pred`` the quantiles
    ``(batch, *block, quantiles)``. Its minimiser is each quantile of the
    conditional distribution; at 0.5 it is half the absolute error."""

    def __init__(self, quantiles, name="pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.quantiles = tuple(float(q) for q in quantiles)

    def call(self, y_true, y_pred):
        y_pred = keras.ops.convert_to_tensor(y_pred)
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        if len(y_true.shape) == len(y_pred.shape) - 1:
            y_true = keras.ops.expand_dims(y_true, -1)
        levels = keras.ops.convert_to_tensor(np.asarray(self.quantiles), dtype=y_pred.dtype)
        error = y_true - y_pred
        loss = keras.ops.maximum(levels * error, (levels - 1.0) * error)
        # One value per sample, as Keras' reductions expect.
        return keras.ops.mean(keras.ops.reshape(loss, (keras.ops.shape(loss)[0], -1)), -1)

    def get_config(self):
        return {**super().get_config(), "quantiles": list(self.quantiles)}


def with_quantiles(model, quantiles, where="with_quantiles"):
    """``model`` (a point forecaster, output ``(batch, *block)``) with a
    quantile head: output ``(batch, *block, len(quantiles))``, the median
    its own output, the others spread from it (see the module docstring).

    The spread's weights start at zero and its biases at half a standard
    normal's quantile gaps, in the units the network forecasts in (scaled
    data): training moves them to the data's.
    """
    quantiles = check_quantiles(where, quantiles)
    point = model.output
    block = tuple(point.shape[1:])
    if len(quantiles) == 1:  # the median alone: the model trained by absolute error
        out = keras.layers.Reshape((*block, 1), name=QUANTILE_LAYER, dtype="float32")(point)
        return keras.Model(model.inputs, out, name=model.name)
    gaps = _normal_gaps(quantiles)
    raw = keras.layers.Dense(
        math.prod(block) * (len(quantiles) - 1), name=SPREAD_LAYER,
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(np.tile(gaps, math.prod(block))),
    )(spread_features(model))
    raw = keras.layers.Reshape((*block, len(quantiles) - 1), name="spread_shape")(raw)
    out = OrderedQuantiles(quantiles, name=QUANTILE_LAYER, dtype="float32")([point, raw])
    return keras.Model(model.inputs, out, name=model.name)


def spread_features(model):
    """What a head's spread reads: the input of the family's dense forecast
    layer (its encoder state), or else the flattened input window."""
    try:
        layer = model.get_layer(FORECAST_LAYER)
    except ValueError:
        layer = None
    if isinstance(layer, keras.layers.Dense):
        return layer.input
    return keras.layers.Flatten(name="spread_window")(model.inputs[0])


def _normal_gaps(quantiles) -> np.ndarray:
    """The raw values whose softplus is half the gap between neighbouring
    quantiles of a standard normal, ordered as ``OrderedQuantiles`` reads them."""
    from statistics import NormalDist

    z = np.array([NormalDist().inv_cdf(q) for q in quantiles])
    m = median_index(quantiles)
    gaps = np.concatenate([z[1:m + 1] - z[:m], z[m + 1:] - z[m:-1]])
    half = np.maximum(gaps / 2, 1e-3)
    return np.log(np.expm1(half)).astype("float32")  # softplus^-1
