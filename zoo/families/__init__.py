"""One module per model family; importing them registers the builders."""

from zoo.families import (  # noqa: F401
    attention_lstm,
    bidirectional_lstm,
    cnn_lstm,
    conv_lstm,
    es_rnn,
    gru,
    peephole_lstm,
    seq2seq_lstm,
    simple_rnn,
    stacked_lstm,
    vanilla_lstm,
)
