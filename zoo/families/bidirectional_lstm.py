"""Bidirectional LSTM: one LSTM reads the window forwards, another backwards.

Each step then sees context from both sides, which helps when the whole
window is known at prediction time (a forecast from a complete lookback
window, a label for a whole sequence). Not for streaming, step-by-step
prediction, and not for a causal language model: the backward half would
see the characters it must predict.
"""

import keras

from zoo import checks, heads
from zoo.registry import register
from zoo.space import Choice, Float, Int

MERGE_MODES = ("concat", "sum", "mul", "ave")

SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(1, 3, default=1),
    "dropout": Float(0.0, 0.5, default=0.0),
    "merge_mode": Choice(MERGE_MODES, default="concat"),
}


@register("bidirectional_lstm", space=SPACE,
          heads=("forecast", "classification"))
def build_bidirectional_lstm(input_shape, outputs, *, head="forecast",
                             units=32, num_layers=1, dropout=0.0,
                             recurrent_dropout=0.0, merge_mode="concat",
                             mask_value=None, autoregressive=False,
                             name="bidirectional_lstm"):
    """``num_layers`` Bidirectional LSTM layers followed by an output head.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: see ``zoo.build_model``.
        head: ``"forecast"`` (default) or ``"classification"``.
        units: state size of each direction. Default 32.
        num_layers: how many bidirectional layers, at least 1. Default 1.
        dropout: dropout on each layer's inputs, in [0, 1). Keeps cuDNN.
        recurrent_dropout: dropout on the recurrent state, in [0, 1).
            Anything above 0 rules out the fused cuDNN kernel.
        merge_mode: how the two directions combine: ``"concat"`` (default,
            doubles the width), ``"sum"``, ``"mul"`` or ``"ave"``.
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
    where = "build_bidirectional_lstm"
    args = checks.check_arguments(where, units=units, num_layers=num_layers,
                                  dropout=dropout, recurrent_dropout=recurrent_dropout)
    units, num_layers = args["units"], args["num_layers"]
    dropout, recurrent_dropout = args["dropout"], args["recurrent_dropout"]
    merge_mode = checks.check_choice(where, "merge_mode", merge_mode,
                                     MERGE_MODES)

    # === Encoder ===
    inputs, x = heads.sequence_input(input_shape, mask_value, where)
    window = heads.autoregressive_input(where, autoregressive, head, inputs)
    for i in range(num_layers):
        last = i == num_layers - 1
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(
                units, dropout=dropout, recurrent_dropout=recurrent_dropout,
                return_sequences=not last,
            ),
            merge_mode=merge_mode,
            name=f"bidirectional_{i + 1}",
        )(x)
    # === Head ===
    return keras.Model(inputs, heads.attach(x, head, outputs, window=window),
                       name=name)
