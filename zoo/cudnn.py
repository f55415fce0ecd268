"""Which recurrent layers of a model can run on the fused cuDNN kernels.

Keras picks the fused kernel at run time, silently, when a layer's
configuration allows it and a GPU is present; otherwise it falls back to a
generic loop that is several times slower. ``cudnn_report`` makes that choice
visible before training: it checks each layer's configuration (not whether
a GPU is present).
"""

from __future__ import annotations

import dataclasses

import keras

from zoo import compat


@dataclasses.dataclass(frozen=True)
class CudnnStatus:
    """The cuDNN verdict for one recurrent layer.

    Attributes:
        layer: the layer's name (``"bidirectional/forward_lstm"`` for the
            halves of a ``Bidirectional`` wrapper).
        kind: the layer class, e.g. ``"LSTM"``.
        has_fused_kernel: whether Keras has a fused kernel for this kind of
            layer at all (LSTM and GRU do; ConvLSTM and SimpleRNN do not).
        eligible: whether this layer's configuration qualifies.
        reasons: why not, one entry per failed condition; empty if eligible.
        conditions: what the data must also satisfy at run time for an
            eligible layer to use the kernel (masked input: right padding).
    """

    layer: str
    kind: str
    has_fused_kernel: bool
    eligible: bool
    reasons: tuple[str, ...]
    conditions: tuple[str, ...] = ()

    def __str__(self):
        verdict = "eligible" if self.eligible else "not eligible"
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        if self.eligible and self.conditions:
            why = f" if {'; '.join(self.conditions)}"
        return f"{self.layer} [{self.kind}]: {verdict}{why}"


# Keras checks at run time that a mask is "right padded" before it takes the
# fused kernel, and silently runs the generic loop otherwise.
RIGHT_PADDING = ("the masked input's padding is on the right in every sequence "
                 "(lstm-zoo pads on the right); otherwise Keras runs the generic loop")


def _activation_name(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def _check_layer(layer, path) -> CudnnStatus:
    kind = type(layer).__name__
    if not isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
        cell = getattr(layer, "cell", None)
        if type(layer) is keras.layers.RNN and cell is not None:
            kind = f"RNN({type(cell).__name__})"  # a custom cell says more than "RNN"
        # A custom cell may say why it has no kernel (``cudnn_reason``).
        reason = getattr(cell, "cudnn_reason", f"{kind} has no fused cuDNN kernel in Keras")
        return CudnnStatus(path, kind, False, False, (reason,))
    cell = layer.cell
    reasons = []
    if _activation_name(cell.activation) != "tanh":
        reasons.append(
            f"activation={_activation_name(cell.activation)!r} (needs 'tanh')")
    if _activation_name(cell.recurrent_activation) != "sigmoid":
        reasons.append(
            "recurrent_activation="
            f"{_activation_name(cell.recurrent_activation)!r} (needs 'sigmoid')")
    if cell.recurrent_dropout:
        reasons.append(
            f"recurrent_dropout={cell.recurrent_dropout} (needs 0)")
    if layer.unroll:
        reasons.append("unroll=True (needs False)")
    if not cell.use_bias:
        reasons.append("use_bias=False (needs True)")
    if isinstance(layer, keras.layers.GRU) and not cell.reset_after:
        reasons.append("reset_after=False (needs True)")
    if layer.use_cudnn is False:
        reasons.append("use_cudnn=False")
    return CudnnStatus(path, kind, True, not reasons, tuple(reasons))


def _recurrent_layers(layers, prefix=""):
    for layer in layers:
        if isinstance(layer, keras.layers.Bidirectional):
            for half in (layer.forward_layer, layer.backward_layer):
                yield half, f"{prefix}{layer.name}/{half.name}"
        elif isinstance(layer, keras.layers.RNN):  # ConvLSTM* included
            yield layer, f"{prefix}{layer.name}"
        else:
            yield from _recurrent_layers(compat.child_layers(layer), f"{prefix}{layer.name}/")


def cudnn_report(model: keras.Model) -> list[CudnnStatus]:
    """List each recurrent layer of ``model`` and whether cuDNN can run it.

    Args:
        model: any Keras model (nested models are searched too).

    Returns:
        One ``CudnnStatus`` per recurrent layer, in model order; ``str()`` of
        an entry reads like ``"lstm [LSTM]: not eligible (recurrent_dropout=
        0.2 (needs 0))"``.
    """
    masked = any(isinstance(layer, keras.layers.Masking) for layer in compat.all_layers(model))
    report = [_check_layer(inner, path) for inner, path in _recurrent_layers(model.layers)]
    if masked:
        report = [dataclasses.replace(r, conditions=(RIGHT_PADDING,)) if r.eligible else r
                  for r in report]
    return report
