"""Seq2seq LSTM (Sutskever et al., 2014): an encoder-decoder for multi-step
forecasts.

The encoder reads the window; its final states initialise a decoder LSTM
that emits the horizon one step at a time, each step reading the value
before it. That is the structure forecasters reach for when a single dense
layer over the last state (the other families' head) plateaus on long
horizons. Two ways to feed the decoder, the ``decoder`` hyperparameter:

``"teacher_forcing"``  In training the decoder reads the *true* previous
                       value (Williams & Zipser, 1989), which trains fast
                       and stably; at inference it reads its own previous
                       forecast (autoregressive). Only the autoregressive
                       path is what ``predict``, evaluation and serving run;
                       teacher forcing lives in ``Seq2SeqForecaster.compute_loss``.
``"repeat_context"``   The decoder reads the encoder's last state at every
                       step (Keras' ``RepeatVector``): no feedback, the same
                       computation in training and inference.

Validation loss is always the autoregressive forecast's. All LSTMs keep cuDNN.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo import checks
from zoo.families.recurrent import depth
from zoo.heads import OUTPUT_DTYPE
from zoo.registry import register
from zoo.space import Choice, Float, Int

DECODERS = ("teacher_forcing", "repeat_context")


@keras.saving.register_keras_serializable(package="zoo")
class AutoregressiveDecoder(keras.layers.Layer):
    """An LSTM decoder that emits ``horizon`` steps of ``targets`` values.

    ``decoder([h, c])`` decodes autoregressively: step ``t`` reads the
    forecast of step ``t - 1`` (zeros before the first).
    ``decoder([h, c], previous=y)`` is teacher forcing: step ``t`` reads the
    true ``y[:, t - 1]``, all steps in one LSTM call.

    Args:
        units: the LSTM's state size (the encoder's).
        horizon: steps to emit.
        targets: values per step.
        dropout, recurrent_dropout: the LSTM's.
    """

    def __init__(self, units, horizon, targets, dropout=0.0, recurrent_dropout=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.units, self.horizon, self.targets = units, horizon, targets
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.lstm = keras.layers.LSTM(units, dropout=dropout,
                                      recurrent_dropout=recurrent_dropout,
                                      return_sequences=True, return_state=True,
                                      name="decoder_lstm")
        self.project = keras.layers.Dense(targets, name="decoder_output")

    def build(self, states_shape):
        self.lstm.build((None, None, self.targets))
        self.project.build((None, None, self.units))

    def call(self, states, previous=None, training=None):
        h, c = states
        # The first step reads zeros: "nothing forecast yet".
        start = ops.zeros_like(ops.expand_dims(h[:, :1], 1))
        start = ops.repeat(start, self.targets, axis=-1)
        if previous is not None:
            steps = ops.concatenate([start, previous[:, :-1]], axis=1)
            out, _, _ = self.lstm(steps, initial_state=[h, c], training=training)
            return self.project(out)
        forecast, step = [], start
        for _ in range(self.horizon):  # the horizon is short and fixed: unrolled
            out, h, c = self.lstm(step, initial_state=[h, c], training=training)
            step = self.project(out)
            forecast.append(step)
        return ops.concatenate(forecast, axis=1)

    def compute_output_shape(self, states_shape):
        return (states_shape[0][0], self.horizon, self.targets)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "horizon": self.horizon,
                "targets": self.targets, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout}


@keras.saving.register_keras_serializable(package="zoo")
class Seq2SeqForecaster(keras.Model):
    """A functional encoder-decoder trained with teacher forcing.

    Its graph (what ``predict`` runs) decodes autoregressively. Only the
    training loss differs: ``compute_loss`` decodes again from the same
    encoder states with the true previous values, and that loss is the one
    minimised. Evaluation (``training=False``) scores the graph's forecast.
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        if training and y is not None:
            h, c = self.get_layer("encoder")(x, training=True)
            decoder = self.get_layer("decoder")
            truth = ops.reshape(ops.cast(y, self.compute_dtype),
                                (-1, decoder.horizon, decoder.targets))
            y_pred = ops.reshape(decoder([h, c], previous=truth, training=True),
                                 ops.shape(y))
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)


SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(1, 2, default=1),
    "decoder": Choice(DECODERS, default="teacher_forcing"),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("seq2seq_lstm", space=SPACE, heads=("forecast",))
def build_seq2seq_lstm(input_shape, outputs, *, head="forecast", units=32,
                       num_layers=1, decoder="teacher_forcing", dropout=0.0,
                       recurrent_dropout=0.0, name="seq2seq_lstm"):
    """An LSTM encoder and an LSTM decoder that emits the horizon step by step.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: the horizon (int), or ``(horizon, targets)``.
        head: ``"forecast"``, the only one.
        units: state size of the encoder's layers and the decoder. Default 32.
        num_layers: encoder LSTM layers. Default 1.
        decoder: ``"teacher_forcing"`` (default) or ``"repeat_context"``;
            see the module docstring.
        dropout: dropout on each LSTM's inputs, in [0, 1). Keeps cuDNN.
        recurrent_dropout: dropout on the recurrent state, in [0, 1).
            Anything above 0 rules out the fused cuDNN kernel.
        name: the model's name.

    Returns:
        An uncompiled ``Seq2SeqForecaster`` (teacher forcing) or
        ``keras.Model`` (repeated context).
    """
    where = "build_seq2seq_lstm"
    args = checks.check_arguments(where, units=units, dropout=dropout,
                                  recurrent_dropout=recurrent_dropout)
    checks.check_choice(where, "decoder", decoder, DECODERS)
    layers = depth(where, num_layers)
    if isinstance(outputs, tuple) and len(outputs) != 2:  # before unpacking it
        raise ValueError(f"{where}: `outputs` must be a horizon or (horizon, targets); "
                         f"received outputs={outputs!r}")
    horizon, targets = outputs if isinstance(outputs, tuple) else (outputs, 1)
    lstm = {"dropout": args["dropout"], "recurrent_dropout": args["recurrent_dropout"]}
    # === Encoder: the window into two state vectors ===
    inputs = keras.Input(input_shape, name="sequence")
    x = inputs
    for i in range(layers):
        last_layer = i == layers - 1
        x = keras.layers.LSTM(args["units"], return_sequences=not last_layer,
                              return_state=last_layer, name=f"encoder_{i + 1}", **lstm)(x)
    _, h, c = x
    # === Decoder: the horizon step by step ===
    if decoder == "repeat_context":
        steps = keras.layers.RepeatVector(horizon, name="repeat_context")(h)
        y = keras.layers.LSTM(args["units"], return_sequences=True, name="decoder_lstm",
                              **lstm)(steps, initial_state=[h, c])
        y = keras.layers.Dense(targets, name="decoder_output")(y)
        model_class = keras.Model
    else:
        encoder = keras.Model(inputs, [h, c], name="encoder")
        y = AutoregressiveDecoder(args["units"], horizon, targets, name="decoder",
                                  **lstm)(encoder(inputs))
        model_class = Seq2SeqForecaster
    # === Head: the forecast's shape ===
    shape = outputs if isinstance(outputs, tuple) else (outputs,)
    y = keras.layers.Reshape(shape, name="forecast", dtype=OUTPUT_DTYPE)(y)
    return model_class(inputs, y, name=name)
