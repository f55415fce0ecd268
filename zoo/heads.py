"""Inputs and output heads shared by every family, so no builder repeats them.

Each head is named after the task that uses it (the task's kind in
``experiments.tasks``):

``forecast``        Dense forecast of ``outputs`` values (int) or an
                    ``outputs``-shaped block such as ``(horizon, targets)``.
``classification``  softmax over ``outputs`` classes, one label per sequence.
``language_model``  softmax over ``outputs`` classes at every time step, e.g.
                    the next character of a character-level language model
                    (or any per-step labelling).
``frames``          the next ``outputs`` frames of a video, from a
                    convolutional head over the last ConvLSTM state.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from zoo import checks

# Each head's last layer computes in float32 whatever the global dtype policy:
# under mixed precision (float16 or bfloat16 inside the model) the outputs a
# loss and a forecast are computed from keep float32's precision.
OUTPUT_DTYPE = "float32"

HEADS = ("forecast", "classification", "language_model", "frames")

# The layer holding the linear part's weights (see start_autoregressive).
AUTOREGRESSIVE_LAYER = "autoregressive"
# The least-squares start of an autoregressive layer: a ridge penalty of this
# fraction of the inputs' mean sum of squares (scale-free), enough to keep a
# window longer than the data has rows from giving a singular system, too
# little to move a well-determined fit; and at most this many windows, evenly
# spaced (the solve is O(rows x inputs^2)).
AUTOREGRESSIVE_RIDGE = 1e-2
AUTOREGRESSIVE_MAX_ROWS = 20_000


def sequence_input(input_shape, mask_value=None, where=""):
    """The model's input and the tensor its first layer reads.

    With ``mask_value`` (right-padded sequences of different lengths), a
    ``keras.layers.Masking`` layer marks the steps whose features all equal
    it, and the recurrent layers above skip them: each sequence's state is
    the one after its last real step. Returns ``(inputs, x)``; ``where``
    names the builder in errors.
    """
    inputs = keras.Input(input_shape, name="sequence")
    if mask_value is None:
        return inputs, inputs
    mask_value = checks.check_float(where, "mask_value", mask_value,
                                    low=-math.inf, high=math.inf)
    return inputs, keras.layers.Masking(mask_value, name="padding_mask")(inputs)


def autoregressive_input(where, autoregressive, head, inputs):
    """The tensor a linear autoregressive term reads (the model's input
    window), or ``None`` when ``autoregressive`` is off. It needs the
    forecast head and a window of fixed length."""
    if not isinstance(autoregressive, bool):
        raise ValueError(f"{where}: `autoregressive` must be True or False; "
                         f"received autoregressive={autoregressive!r}")
    if not autoregressive:
        return None
    if head != "forecast":
        raise ValueError(f"{where}: `autoregressive` takes head='forecast' only; "
                         f"received autoregressive=True with head={head!r}")
    if inputs.shape[1] is None:
        raise ValueError(f"{where}: `autoregressive` needs a window of fixed length; "
                         f"received input_shape with time=None")
    return inputs


def returns_sequences(head: str) -> bool:
    """Whether the last recurrent layer must keep its time axis."""
    return head == "language_model"


@keras.saving.register_keras_serializable(package="zoo")
class RepeatLastFrame(keras.layers.Layer):
    """``(batch, time, rows, cols, channels)`` -> the last frame, ``frames``
    times: ``(batch, frames, rows, cols, channels)``. Any input length."""

    def __init__(self, frames, **kwargs):
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, inputs):
        return keras.ops.repeat(inputs[:, -1:], self.frames, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


def attach(x, head: str, outputs, *, input_shape=None, last_frame=None, window=None):
    """Put head ``head`` on encoder output ``x`` and return the model output.

    Args:
        x: the encoder's output: ``(batch, units)``, ``(batch, time, units)``
            for ``language_model``, ``(batch, rows, cols, filters)`` for
            ``frames``.
        head: one of ``HEADS``.
        outputs: see ``zoo.build_model``.
        input_shape: the model's input shape; ``frames`` reads the number of
            channels from it.
        last_frame: for ``frames``, the model's input: the head then predicts
            the change from its last frame (clipped to [0, 1]) instead of
            the frames themselves.
        window: for ``forecast``, the model's input (see
            ``autoregressive_input``): the forecast is then a linear
            function of the whole window (layer ``"autoregressive"``) plus
            the network's output, whose weights start at zero: started with
            ``start_autoregressive``, a model begins as the least-squares
            linear autoregression and the network learns what it misses.
    """
    if head == "forecast":
        if window is None:
            return _dense_forecast(x, outputs, "forecast")
        network = _dense_forecast(x, outputs, "forecast", kernel_initializer="zeros")
        flat = keras.layers.Flatten(name="window")(window)
        linear = _dense_forecast(flat, outputs, AUTOREGRESSIVE_LAYER)
        return keras.layers.Add(name="network_plus_autoregressive",
                                dtype=OUTPUT_DTYPE)([network, linear])
    if head in ("classification", "language_model"):
        # Dense acts on the last axis, so the same layer serves one label per
        # sequence and one label per time step.
        return keras.layers.Dense(outputs, activation="softmax", name="classes",
                                  dtype=OUTPUT_DTYPE)(x)
    if head == "frames":
        rows, cols, channels = input_shape[-3:]
        # One 3x3 convolution emits every future frame's channels at once;
        # sigmoid because frames are intensities scaled to [0, 1], or tanh
        # for a change in [-1, 1] added to the last frame.
        change = last_frame is not None
        x = keras.layers.Conv2D(
            outputs * channels, 3, padding="same",
            activation="tanh" if change else "sigmoid",
            name="frame_changes" if change else "next_frames",
        )(x)
        x = keras.layers.Reshape((rows, cols, outputs, channels),
                                 name="split_frames")(x)
        if not change:
            return keras.layers.Permute((3, 1, 2, 4), name="frames", dtype=OUTPUT_DTYPE)(x)
        x = keras.layers.Permute((3, 1, 2, 4), name="changes")(x)
        x = keras.layers.Add(name="last_frame_plus_change")(
            [RepeatLastFrame(outputs, name="last_frame")(last_frame), x])
        # clipped to [0, 1]
        return keras.layers.ReLU(max_value=1.0, name="frames", dtype=OUTPUT_DTYPE)(x)
    raise ValueError(f"`head` must be one of {list(HEADS)}; received head={head!r}")


def _dense_forecast(x, outputs, name, **dense_kwargs):
    """``outputs`` forecast values (int), or an ``outputs``-shaped block."""
    if isinstance(outputs, tuple):
        x = keras.layers.Dense(math.prod(outputs), name=name, **dense_kwargs)(x)
        return keras.layers.Reshape(outputs, name=f"{name}_shape", dtype=OUTPUT_DTYPE)(x)
    return keras.layers.Dense(outputs, name=name, dtype=OUTPUT_DTYPE, **dense_kwargs)(x)


def start_autoregressive(model, x, y) -> bool:
    """Start ``model``'s linear autoregressive layer (``autoregressive=True``,
    see ``zoo.heads.attach``) at the ridge least-squares fit of ``y`` on the
    flattened windows ``x``: the model then begins as the best linear
    autoregression of the training windows, and training moves it only
    where the network finds more (its own output starts at zero).

    Call it on the training windows before ``fit`` (``lstm-zoo`` does).
    Gradient descent alone gets there slowly: the lags of a window are
    strongly correlated, and early stopping on a short validation period
    ends it first (airline at horizon 1: test RMSE 15.8 from Adam, 13.5
    from this start). Returns whether the model had such a layer.
    """
    try:
        layer = model.get_layer(AUTOREGRESSIVE_LAYER)
    except ValueError:
        return False
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    y = np.asarray(y, dtype=float).reshape(len(y), -1)
    if len(x) > AUTOREGRESSIVE_MAX_ROWS:
        rows = np.linspace(0, len(x) - 1, AUTOREGRESSIVE_MAX_ROWS).astype(int)
        x, y = x[rows], y[rows]
    # Centred, so that the bias is fitted and not penalised.
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    x, y = x - mean_x, y - mean_y
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += AUTOREGRESSIVE_RIDGE * np.trace(gram) / len(gram)
    coef = np.linalg.solve(gram, x.T @ y)
    kernel, bias = layer.get_weights()
    layer.set_weights([coef.astype(kernel.dtype),
                       (mean_y - mean_x @ coef).astype(bias.dtype)])
    return True
