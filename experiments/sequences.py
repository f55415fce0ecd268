"""Sequences of different lengths as one padded array (sequence
classification: the task that trains and the served model that predicts)."""

from __future__ import annotations

import numpy as np

# What padding becomes once the data is scaled: far outside any scaled value,
# and the value the model's Masking layer skips.
PAD_VALUE = -1e4


def pad(sequences, max_length=None):
    """Sequences of any lengths as one right-padded array.

    Padding goes after each sequence's last step (right padding, which keeps
    the fused cuDNN kernels usable on a GPU) and holds NaN until the task
    scales the data. With ``max_length``, longer sequences keep their last
    ``max_length`` steps, the ones nearest the label.

    Returns:
        ``(x, lengths, cut)``: the ``(n, longest, features)`` array, each
        sequence's real length after truncation, and how many were cut.
    """
    import keras

    lengths = np.array([len(seq) for seq in sequences])
    longest = int(lengths.max()) if max_length is None else int(max_length)
    x = keras.utils.pad_sequences(sequences, maxlen=longest, dtype="float32",
                                  padding="post", truncating="pre", value=np.nan)
    return x, np.minimum(lengths, longest), int((lengths > longest).sum())
