"""Stacked LSTM: several LSTM layers, each reading the whole output sequence
of the one below.

Every layer but the last returns its full sequence (``return_sequences``) so
the next one has a sequence to read; depth lets the upper layers model slower
patterns built from the lower layers' features.
"""

import keras

from zoo.families.recurrent import depth, recurrent_stack
from zoo.registry import register
from zoo.space import Float, Int

SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(2, 4, default=2),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("stacked_lstm", space=SPACE)
def build_stacked_lstm(input_shape, outputs, *, head="forecast", units=32,
                       num_layers=2, dropout=0.0, recurrent_dropout=0.0,
                       mask_value=None, autoregressive=False, name="stacked_lstm"):
    """``num_layers`` chained LSTM layers followed by an output head.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: see ``zoo.build_model``.
        head: ``"forecast"`` (default), ``"classification"`` or
            ``"language_model"``.
        units: size of each layer's state. Default 32.
        num_layers: how many LSTM layers, at least 1. Default 2.
        dropout: dropout on each layer's inputs, in [0, 1). Keeps cuDNN.
        recurrent_dropout: dropout on the recurrent state, in [0, 1).
            Anything above 0 rules out the fused cuDNN kernel.
        mask_value: the value right-padding steps hold, for sequences of
            different lengths padded to one; steps whose features all equal
            it are skipped. ``None`` (default): every step is real.
        autoregressive: add a linear autoregression on the whole window to
            the forecast (``head="forecast"`` only; see ``zoo.heads.attach``).
            Default False.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    where = "build_stacked_lstm"
    return recurrent_stack(
        keras.layers.LSTM, [f"lstm_{i + 1}" for i in range(depth(where, num_layers))],
        input_shape, outputs, head=head, units=units, dropout=dropout,
        recurrent_dropout=recurrent_dropout, mask_value=mask_value,
        autoregressive=autoregressive, name=name, where=where)
