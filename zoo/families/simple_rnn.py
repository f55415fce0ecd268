"""Simple RNN (Elman, 1990): ``h_t = tanh(W x_t + U h_{t-1} + b)``, stackable.

The recurrence every gated cell improves on. Its gradient through time is a
product of one Jacobian per step, so it vanishes (or explodes) over long
spans: ``lstm-zoo compare --data memory`` shows it at chance on a recall
task that LSTM and GRU solve. Keep it as the baseline that shows why gates
exist; Keras has no fused cuDNN kernel for it.
"""

import keras

from zoo.families.recurrent import depth, recurrent_stack
from zoo.registry import register
from zoo.space import Float, Int

SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(1, 3, default=1),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("simple_rnn", space=SPACE)
def build_simple_rnn(input_shape, outputs, *, head="forecast", units=32,
                     num_layers=1, dropout=0.0, recurrent_dropout=0.0,
                     mask_value=None, autoregressive=False, name="simple_rnn"):
    """``num_layers`` chained SimpleRNN layers followed by an output head.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: see ``zoo.build_model``.
        head: ``"forecast"`` (default), ``"classification"`` or
            ``"language_model"``.
        units: size of each layer's state. Default 32.
        num_layers: how many SimpleRNN layers, at least 1. Default 1.
        dropout: dropout on each layer's inputs, in [0, 1).
        recurrent_dropout: dropout on the recurrent state, in [0, 1).
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
    where = "build_simple_rnn"
    return recurrent_stack(
        keras.layers.SimpleRNN,
        [f"simple_rnn_{i + 1}" for i in range(depth(where, num_layers))],
        input_shape, outputs, head=head, units=units, dropout=dropout,
        recurrent_dropout=recurrent_dropout, mask_value=mask_value,
        autoregressive=autoregressive, name=name, where=where)
