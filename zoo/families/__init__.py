"""One module per model family; importing them registers the builders."""

from zoo.families import (  # noqa: F401
    bidirectional_lstm,
    conv_lstm,
    gru,
    stacked_lstm,
    vanilla_lstm,
)
