"""The plain recurrent stack behind ``vanilla_lstm``, ``stacked_lstm``, ``gru``,
``simple_rnn`` and ``peephole_lstm``.

Those families differ only in the recurrent layer and the depth they
default to, so one private builder does the work, the way
``keras.applications`` builds ResNet50 and ResNet101 over one ``ResNet``.
Each family stays a public, documented, registered function of its own.
"""

import keras

from zoo import checks, heads


def recurrent_stack(layer_class, layer_names, input_shape, outputs, *, head, units,
                    dropout, recurrent_dropout, name, where, mask_value=None,
                    autoregressive=False):
    """``len(layer_names)`` chained ``layer_class`` layers and an output head.

    Args:
        layer_class: ``keras.layers.LSTM``, ``GRU``, ``SimpleRNN``, or any callable
            taking ``(units, dropout=, recurrent_dropout=, return_sequences=,
            name=)`` and returning a recurrent layer.
        layer_names: one name per layer, bottom first (their count is the depth).
        input_shape, outputs, head: as ``zoo.build_model``.
        units, dropout, recurrent_dropout, mask_value, autoregressive: as the
            public builders document them.
        name: the model's name.
        where: the public builder's name, for error messages.
    """
    args = checks.check_arguments(where, units=units, dropout=dropout,
                                  recurrent_dropout=recurrent_dropout)
    # === Encoder ===
    inputs, x = heads.sequence_input(input_shape, mask_value, where)
    window = heads.autoregressive_input(where, autoregressive, head, inputs)
    for i, layer_name in enumerate(layer_names):
        last = i == len(layer_names) - 1
        x = layer_class(
            args["units"], dropout=args["dropout"],
            recurrent_dropout=args["recurrent_dropout"],
            # Lower layers hand their whole sequence up; the top one keeps
            # it only when the head predicts at every step.
            return_sequences=not last or heads.returns_sequences(head),
            name=layer_name,
        )(x)
    # === Head ===
    return keras.Model(inputs, heads.attach(x, head, outputs, window=window),
                       name=name)


def depth(where, num_layers) -> int:
    """``num_layers`` checked against the shared constraints."""
    return checks.check_arguments(where, num_layers=num_layers)["num_layers"]
