"""ConvLSTM (Shi et al., 2015): an LSTM whose gates are convolutions.

Input and state are images, so the recurrence keeps spatial structure: the
model for video and other gridded sequences such as radar or next-frame
prediction. Keras has no cuDNN kernel for it.
"""

import keras

from zoo import checks, heads
from zoo.registry import register
from zoo.space import Choice, Float, Int

# "change": the head adds a change to the last input frame (a model that has
# learnt nothing copies the last frame); "frame": it draws each frame anew.
PREDICTS = ("change", "frame")

SPACE = {
    "units": Int(8, 64, step=8, default=16),
    "num_layers": Int(1, 3, default=2),
    "kernel_size": Choice((3, 5), default=3),
    "dropout": Float(0.0, 0.5, default=0.0),
    "predict": Choice(PREDICTS, default="change"),
}


@register("conv_lstm", space=SPACE, heads=("frames",),
          input_axes=("time", "rows", "cols", "channels"))
def build_conv_lstm(input_shape, outputs, *, head="frames", units=16,
                    num_layers=2, kernel_size=3, dropout=0.0,
                    recurrent_dropout=0.0, predict="change", name="conv_lstm"):
    """A ConvLSTM2D stack predicting the next ``outputs`` frames.

    Args:
        input_shape: ``(time, rows, cols, channels)``; ``time`` may be
            ``None``.
        outputs: how many future frames to predict.
        head: ``"frames"``; the output has shape
            ``(outputs, rows, cols, channels)`` with values in [0, 1].
        units: number of filters in each ConvLSTM layer. Default 16.
        num_layers: how many ConvLSTM2D layers, at least 1. Default 2.
        kernel_size: odd size of the square convolution kernel, in [1, 11].
            Default 3.
        dropout: dropout on each layer's inputs, in [0, 1).
        recurrent_dropout: dropout on the recurrent state, in [0, 1).
        predict: ``"change"`` (default): each future frame is the last input
            frame plus a predicted change, clipped to [0, 1], so the model
            starts from the copy-last-frame baseline and learns the motion;
            ``"frame"``: a sigmoid draws every frame anew.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    where = "build_conv_lstm"
    args = checks.check_arguments(where, units=units, num_layers=num_layers,
                                  kernel_size=kernel_size, dropout=dropout,
                                  recurrent_dropout=recurrent_dropout)
    units, num_layers, kernel_size = args["units"], args["num_layers"], args["kernel_size"]
    dropout, recurrent_dropout = args["dropout"], args["recurrent_dropout"]
    checks.check_choice(where, "predict", predict, PREDICTS)
    if kernel_size % 2 == 0:
        raise ValueError(
            f"{where}: `kernel_size` must be odd so 'same' padding keeps the "
            f"frame centred; received kernel_size={kernel_size}")

    # === Encoder ===
    inputs = keras.Input(input_shape, name="frames_in")
    x = inputs
    for i in range(num_layers):
        x = keras.layers.ConvLSTM2D(
            units, kernel_size, padding="same", dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            return_sequences=i < num_layers - 1,
            name=f"conv_lstm_{i + 1}",
        )(x)
    # === Head ===
    y = heads.attach(x, head, outputs, input_shape=input_shape,
                     last_frame=inputs if predict == "change" else None)
    return keras.Model(inputs, y, name=name)
