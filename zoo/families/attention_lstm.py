"""Attention LSTM: an LSTM encoder whose states are pooled by attention.

A plain LSTM forecasts from its last state alone, so whatever it needs from
early in the window must survive every step in between. Here the encoder
keeps all its states and the head reads a weighted average of them, the
weights scored against the last state (Luong et al., 2015; Bahdanau et
al., 2015 for the additive score). The weights say which steps a prediction
looked at: ``attention_weights(model, x)`` returns them, and ``train`` logs
them as a heat map.

For ``head="language_model"`` every step attends to itself and the steps
before it (a causal mask), so no step sees the characters it must predict.
The recurrent layers are plain ``keras.layers.LSTM`` and keep cuDNN.
"""

import keras
import numpy as np

from zoo import checks, heads
from zoo.families.recurrent import depth
from zoo.registry import register
from zoo.space import Choice, Float, Int

# ``dot``: Luong's score, q . k; ``additive``: Bahdanau's, v . tanh(q + k).
SCORES = ("dot", "additive")
LAYER = "attention"

SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(1, 2, default=1),
    "attention": Choice(SCORES, default="dot"),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("attention_lstm", space=SPACE)
def build_attention_lstm(input_shape, outputs, *, head="forecast", units=32,
                         num_layers=1, attention="dot", dropout=0.0,
                         recurrent_dropout=0.0, mask_value=None, autoregressive=False,
                         name="attention_lstm"):
    """LSTM states pooled by attention (dot or additive) into the head.

    The pooled context is concatenated with the last state before the head.

    Args:
        input_shape: ``(time, features)``; ``time`` may be ``None``.
        outputs: see ``zoo.build_model``.
        head: ``"forecast"`` (default), ``"classification"`` or
            ``"language_model"``.
        units: size of each LSTM layer's state. Default 32.
        num_layers: how many LSTM layers under the attention. Default 1.
        attention: the score, ``"dot"`` (Luong, ``keras.layers.Attention``)
            or ``"additive"`` (Bahdanau, ``keras.layers.AdditiveAttention``).
        dropout: dropout on each LSTM layer's inputs, in [0, 1). Keeps cuDNN.
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
        An uncompiled ``keras.Model``; its layer ``"attention"`` holds the
        weights (see ``attention_weights``).
    """
    where = "build_attention_lstm"
    args = checks.check_arguments(where, units=units, dropout=dropout,
                                  recurrent_dropout=recurrent_dropout)
    checks.check_choice(where, "attention", attention, SCORES)
    layers = depth(where, num_layers)
    # === Encoder: every state kept ===
    inputs, x = heads.sequence_input(input_shape, mask_value, where)
    window = heads.autoregressive_input(where, autoregressive, head, inputs)
    for i in range(layers):
        last_layer = i == layers - 1
        x = keras.layers.LSTM(args["units"], dropout=args["dropout"],
                              recurrent_dropout=args["recurrent_dropout"],
                              return_sequences=True, return_state=last_layer,
                              name=f"lstm_{i + 1}")(x)
    states, last, _ = x
    # === Attention ===
    score = (keras.layers.Attention(name=LAYER) if attention == "dot"
             else keras.layers.AdditiveAttention(name=LAYER))
    # The scores are asked for so that ``attention_weights`` can read them
    # off the graph; the model's output does not use them.
    if heads.returns_sequences(head):
        # Each step queries itself and the steps before it.
        context, _ = score([states, states], use_causal_mask=True,
                           return_attention_scores=True)
        features = keras.layers.Concatenate(name="context_and_state")([context, states])
    else:
        # One query, the last state: "which steps matter for what comes next".
        context, _ = score([keras.layers.Reshape((1, args["units"]), name="query")(last),
                            states], return_attention_scores=True)
        context = keras.layers.Flatten(name="context")(context)
        features = keras.layers.Concatenate(name="context_and_state")([context, last])
    # === Head ===
    return keras.Model(inputs, heads.attach(features, head, outputs, window=window),
                       name=name)


def attention_weights(model: keras.Model, x) -> np.ndarray:
    """The attention weights ``model`` gives each step of each sequence in ``x``.

    Args:
        model: an ``attention_lstm`` model (built, trained or loaded).
        x: a batch of inputs, ``(batch, time, features)``.

    Returns:
        ``(batch, queries, time)`` weights, each row summing to 1: one query
        (the last state) for the forecast and classification heads, one per
        step for the language model.
    """
    try:
        layer = model.get_layer(LAYER)
    except ValueError:
        raise ValueError(
            f"attention_weights: model {model.name!r} has no layer {LAYER!r}; "
            f"it takes an attention_lstm model") from None
    scores = layer.output[1]  # (context, scores): see the builder
    return keras.Model(model.inputs, scores).predict_on_batch(np.asarray(x, "float32"))
