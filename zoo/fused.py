"""Fused ConvLSTM gates: one convolution per time step instead of eight.

Keras' ``ConvLSTMCell`` computes each of the four gates with its own input
convolution and its own recurrent convolution: eight small convolutions per
step. The four input kernels and the four recurrent kernels are slices of two
weight tensors, so all of them equal one convolution of the input and the
previous hidden state stacked along channels,

    [i f c o] = conv([x_t, h_{t-1}], [kernel; recurrent_kernel]) + bias

which is what hand-written PyTorch ConvLSTMs do. ``fuse_conv_lstm`` makes a
model's ``ConvLSTM2D`` layers compute that way. Weights, config and saved
files do not change (the layer stays a ``ConvLSTM2D``; only how its cell
computes does), so a fused model saves and loads as plain Keras. ``train``
and ``tune`` apply it before compiling.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo import compat

ConvLSTMCell = compat.conv_lstm_cell_class()


class _FusedConvLSTMCell(ConvLSTMCell):
    """A ``ConvLSTMCell`` whose step is one convolution (see the module)."""

    def call(self, inputs, states, training=False):
        dropping = training and (0.0 < self.dropout < 1.0
                                 or 0.0 < self.recurrent_dropout < 1.0)
        if dropping:  # per-gate dropout masks need the per-gate convolutions
            return super().call(inputs, states, training=training)
        h_tm1, c_tm1 = states[0], states[1]
        channels = -1 if self.data_format == "channels_last" else 1
        # kernel: (*kernel_size, in, 4*filters); recurrent: (*kernel_size, filters, 4*filters)
        kernel = ops.concatenate([self.kernel, self.recurrent_kernel], axis=self.rank)
        z = ops.conv(ops.concatenate([inputs, h_tm1], axis=channels), kernel,
                     strides=1, padding="same", data_format=self.data_format)
        if self.use_bias:
            shape = ((1,) * (self.rank + 1) + (-1,) if channels == -1
                     else (1, -1) + (1,) * self.rank)
            z = z + ops.reshape(self.bias, shape)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=channels)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_tm1 + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]


def _fusable(cell) -> bool:
    # One convolution over [x, h] needs both to be convolved alike: stride 1,
    # no dilation, 'same' padding (the recurrent convolution always is).
    return (type(cell) is ConvLSTMCell and cell.padding == "same"
            and all(s == 1 for s in cell.strides)
            and all(d == 1 for d in cell.dilation_rate))


def fuse_conv_lstm(model: keras.Model) -> int:
    """Make every eligible ``ConvLSTM2D`` in ``model`` (nested models too)
    compute its gates with one convolution per step. Call before training
    starts (before the first ``fit``/``predict`` traces the model).

    Returns:
        How many layers were switched. Layers with strides, dilation or
        'valid' padding are left as they are.
    """
    fused = 0
    for layer in compat.all_layers(model):
        cell = getattr(layer, "cell", None)
        if isinstance(layer, keras.layers.ConvLSTM2D) and _fusable(cell):
            # Same object, same weights and config; only `call` differs.
            cell.__class__ = _FusedConvLSTMCell
            fused += 1
    return fused
