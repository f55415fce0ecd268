"""Vanilla LSTM: a single LSTM layer and a head.

The LSTM (Hochreiter & Schmidhuber, 1997) carries a cell state through time
and learns input, forget and output gates that decide what to write, keep and
read. One layer is the classic baseline and often enough for short series.
"""

import keras

from zoo.families.recurrent import recurrent_stack
from zoo.registry import register
from zoo.space import Float, Int

SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("vanilla_lstm", space=SPACE)
def build_vanilla_lstm(input_shape, outputs, *, head="forecast", units=32,
                       dropout=0.0, recurrent_dropout=0.0, mask_value=None,
                       autoregressive=False, name="vanilla_lstm"):
    """One LSTM layer followed by an output head.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: see ``zoo.build_model``.
        head: ``"forecast"`` (default), ``"classification"`` or
            ``"language_model"``.
        units: size of the hidden and cell state. Default 32.
        dropout: dropout on the layer's inputs, in [0, 1). Keeps cuDNN.
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
    return recurrent_stack(
        keras.layers.LSTM, ["lstm"], input_shape, outputs, head=head, units=units,
        dropout=dropout, recurrent_dropout=recurrent_dropout, mask_value=mask_value,
        autoregressive=autoregressive, name=name, where="build_vanilla_lstm")
