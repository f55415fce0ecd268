"""CNN-LSTM: a Conv1D front end that turns raw steps into local features,
read by an LSTM.

The usual model for sensor and activity sequences (accelerometers, ECG):
the convolution finds short motifs (a stride, a beat) and pooling shortens
the sequence, so the LSTM spends its memory on how motifs follow one
another rather than on raw samples. The convolution is causal (step ``t``
sees steps ``<= t``); the LSTM keeps its cuDNN kernel.
"""

import keras

from zoo import checks, heads
from zoo.registry import register
from zoo.space import Choice, Float, Int

SPACE = {
    "filters": Int(8, 64, step=8, default=32),
    "kernel_size": Choice((3, 5), default=3),
    "pool_size": Choice((1, 2), default=2),
    "units": Int(8, 128, step=8, default=32),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("cnn_lstm", space=SPACE, heads=("forecast", "classification"))
def build_cnn_lstm(input_shape, outputs, *, head="forecast", filters=32,
                   kernel_size=3, pool_size=2, units=32, dropout=0.0,
                   recurrent_dropout=0.0, autoregressive=False, name="cnn_lstm"):
    """Conv1D (ReLU, causal), max pooling over time, one LSTM, a head.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: see ``zoo.build_model``.
        head: ``"forecast"`` (default) or ``"classification"``.
        filters: feature maps of the convolution. Default 32.
        kernel_size: steps the convolution spans, in [1, 11]. Default 3.
        pool_size: steps merged by max pooling (1: no pooling). Default 2.
        units: size of the LSTM's state. Default 32.
        dropout: dropout on the LSTM's inputs, in [0, 1). Keeps cuDNN.
        recurrent_dropout: dropout on the recurrent state, in [0, 1).
            Anything above 0 rules out the fused cuDNN kernel.
        autoregressive: add a linear autoregression on the whole window to
            the forecast (``head="forecast"`` only; see ``zoo.heads.attach``).
            Default False.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    args = checks.check_arguments(
        "build_cnn_lstm", filters=filters, kernel_size=kernel_size,
        pool_size=pool_size, units=units, dropout=dropout,
        recurrent_dropout=recurrent_dropout)
    # === Front end: local motifs ===
    inputs = keras.Input(input_shape, name="sequence")
    window = heads.autoregressive_input("build_cnn_lstm", autoregressive, head, inputs)
    x = keras.layers.Conv1D(args["filters"], args["kernel_size"], padding="causal",
                            activation="relu", name="conv")(inputs)
    if args["pool_size"] > 1:
        # 'same' keeps a window shorter than the pool from vanishing.
        x = keras.layers.MaxPooling1D(args["pool_size"], padding="same", name="pool")(x)
    # === Encoder ===
    x = keras.layers.LSTM(args["units"], dropout=args["dropout"],
                          recurrent_dropout=args["recurrent_dropout"], name="lstm")(x)
    # === Head ===
    return keras.Model(inputs, heads.attach(x, head, outputs, window=window),
                       name=name)
