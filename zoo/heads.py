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

from zoo import checks
from zoo.space import Choice

# Each head's last layer computes in float32 whatever the global dtype policy:
# under mixed precision (float16 or bfloat16 inside the model) the outputs a
# loss and a forecast are computed from keep float32's precision.
OUTPUT_DTYPE = "float32"

HEADS = ("forecast", "classification", "language_model", "frames")

# Searched for every family that forecasts: the forecast becomes a linear
# autoregression on the window plus the network's correction (the
# "highway" of LSTNet, Lai et al., 2018). On short series the linear part
# carries what a few dozen windows can teach (see ``attach``).
AUTOREGRESSIVE = Choice((False, True), default=False)
# Hyperparameters that only one head takes: a search for another head
# leaves them out (``zoo.search_space(name, head=...)``).
HEAD_ONLY = {"autoregressive": "forecast"}
# The layer holding the linear part's weights; ``experiments.fitting``
# starts it at the least-squares fit of the training windows.
AUTOREGRESSIVE_LAYER = "autoregressive"


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
            the network's output, whose weights start at zero, so that a
            model starts as the linear autoregression and the network
            learns what it misses.
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
