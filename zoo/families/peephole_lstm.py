"""Peephole LSTM (Gers & Schmidhuber, 2000): gates that also see the cell.

In the standard LSTM the gates read the input and the previous hidden
state only, so a gate cannot see the cell it guards while the output gate
is closed. Peephole connections add one weight vector per gate on the cell
state (elementwise)::

    i_t = sigmoid(W_i x_t + U_i h_{t-1} + p_i * c_{t-1} + b_i)
    f_t = sigmoid(W_f x_t + U_f h_{t-1} + p_f * c_{t-1} + b_f)
    c_t = f_t * c_{t-1} + i_t * tanh(W_c x_t + U_c h_{t-1} + b_c)
    o_t = sigmoid(W_o x_t + U_o h_{t-1} + p_o * c_t + b_o)
    h_t = o_t * tanh(c_t)

Gers & Schmidhuber used them to learn precise timings. cuDNN's LSTM kernel
has no peephole weights, so this family always runs the generic loop: on a
GPU it is several times slower than ``vanilla_lstm`` of the same size
(``make bench`` measures the cost on CPU).
"""

import keras
from keras import ops

from zoo.families.recurrent import depth, recurrent_stack
from zoo.registry import register
from zoo.space import Float, Int


@keras.saving.register_keras_serializable(package="zoo")
class PeepholeLSTMCell(keras.layers.LSTMCell):
    """An ``LSTMCell`` with peephole connections (see the module docstring).

    Takes ``keras.layers.LSTMCell``'s arguments; adds three trainable
    vectors of size ``units``: ``peephole_input``, ``peephole_forget`` and
    ``peephole_output`` (Glorot-uniform, as TensorFlow 1's
    ``PeepholeLSTMCell``). Wrap it in ``keras.layers.RNN``.
    """

    # Read by zoo.cudnn_report.
    cudnn_reason = ("PeepholeLSTMCell has no fused cuDNN kernel in Keras: cuDNN's "
                    "LSTM has no cell-to-gate (peephole) weights")

    def build(self, input_shape):
        super().build(input_shape)
        self.peephole_input, self.peephole_forget, self.peephole_output = (
            self.add_weight(shape=(self.units,), name=f"peephole_{gate}",
                            initializer="glorot_uniform")
            for gate in ("input", "forget", "output"))

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_tm1, self.recurrent_kernel)
        if self.use_bias:
            z = z + self.bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i + self.peephole_input * c_tm1)
        f = self.recurrent_activation(z_f + self.peephole_forget * c_tm1)
        c = f * c_tm1 + i * self.activation(z_c)
        # The output gate looks at the new cell, the others at the old one.
        o = self.recurrent_activation(z_o + self.peephole_output * c)
        h = o * self.activation(c)
        return h, [h, c]


def peephole_lstm_layer(units, *, dropout=0.0, recurrent_dropout=0.0,
                        return_sequences=False, name=None):
    """A ``keras.layers.RNN`` over a ``PeepholeLSTMCell``: the drop-in
    counterpart of ``keras.layers.LSTM(units, ...)``."""
    cell = PeepholeLSTMCell(units, dropout=dropout, recurrent_dropout=recurrent_dropout)
    return keras.layers.RNN(cell, return_sequences=return_sequences, name=name)


SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(1, 3, default=1),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("peephole_lstm", space=SPACE)
def build_peephole_lstm(input_shape, outputs, *, head="forecast", units=32,
                        num_layers=1, dropout=0.0, recurrent_dropout=0.0,
                        mask_value=None, autoregressive=False,
                        name="peephole_lstm"):
    """``num_layers`` chained peephole LSTM layers followed by an output head.

    Not cuDNN-eligible on a GPU (no fused kernel has peepholes):
    ``zoo.cudnn_report`` says so for each layer.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: see ``zoo.build_model``.
        head: ``"forecast"`` (default), ``"classification"`` or
            ``"language_model"``.
        units: size of each layer's state. Default 32.
        num_layers: how many layers, at least 1. Default 1.
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
    where = "build_peephole_lstm"
    return recurrent_stack(
        peephole_lstm_layer, [f"peephole_lstm_{i + 1}" for i in range(depth(where, num_layers))],
        input_shape, outputs, head=head, units=units, dropout=dropout,
        recurrent_dropout=recurrent_dropout, mask_value=mask_value,
        autoregressive=autoregressive, name=name, where=where)
