"""Feeding in-memory arrays to ``model.fit`` fast.

Given NumPy arrays, Keras builds a fresh ``tf.data`` pipeline iterator every
epoch (about 10 ms on a 2-core CPU) and slices batches in a parallel map
whose threads compete with training for the cores. For the small models and
short epochs of time series that overhead is a third of the training time
(see ``make bench``). ``fit_arguments`` builds the pipeline once instead: an
endless dataset of batches, each epoch a fresh permutation, sliced with one
gather per batch, and tells ``fit`` how many batches make an epoch, so the
same iterator runs through every epoch. What is trained on is what Keras'
own ``shuffle=True`` gives: every sample once per epoch, in a new order each
epoch, in batches of ``batch_size`` with a smaller last one. That needs the
model's ``steps_per_execution`` to divide the batches per epoch (see
``fit_arguments``); ``experiments.train.steps_per_execution`` picks one that does.

On the JAX and PyTorch backends the arrays are passed to ``fit`` unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def fit_arguments(x, y, batch_size: int, shuffle: bool = True,
                  validation: tuple | None = None,
                  steps_per_execution: int = 1) -> dict[str, Any]:
    """Keyword arguments for ``model.fit`` that train on ``(x, y)``.

    Args:
        x, y: the training inputs and targets (arrays, or nested lists,
            tuples or dicts of arrays with the same first dimension).
        batch_size: samples per batch.
        shuffle: a new order every epoch (from NumPy's global generator, so
            ``keras.utils.set_random_seed`` makes it reproducible).
        validation: optional ``(x_val, y_val)``, evaluated after every epoch.
        steps_per_execution: the model's (``model.steps_per_execution``).
            Keras runs that many batches per call even past the end of an
            epoch if the input goes on, so one pipeline runs through all
            epochs only when it divides the batches per epoch; otherwise
            the arrays go to ``fit`` as they are.

    Returns:
        ``x`` (and ``y`` and ``batch_size``), ``shuffle``, ``steps_per_epoch``
        and ``validation_data`` as ``fit`` takes them. ``epochs``,
        callbacks and the rest are the caller's.
    """
    import keras

    steps = math.ceil(_length(x) / batch_size)
    if keras.config.backend() != "tensorflow" or steps % steps_per_execution:
        args = {"x": x, "y": y, "batch_size": batch_size, "shuffle": shuffle}
        if validation is not None:
            args["validation_data"] = validation_feed(validation, batch_size, pipeline=False)
        return args
    args = {"x": batches(x, y, batch_size, shuffle=shuffle, repeat=True),
            "steps_per_epoch": steps,
            # The dataset shuffles itself; fit's own shuffle (on by default)
            # would only warn that it cannot shuffle a dataset.
            "shuffle": False}
    if validation is not None:
        args["validation_data"] = validation_feed(validation, batch_size, pipeline=True)
    return args


def validation_feed(validation: tuple, batch_size: int, pipeline: bool):
    """What ``fit`` validates on after every epoch: ``(x_val, y_val)`` as one
    in-order ``tf.data`` pipeline when training goes through one (on
    TensorFlow), else the arrays as they are."""
    return in_order(*validation, batch_size) if pipeline else tuple(validation)


def in_order(x, y, batch_size: int):
    """A ``tf.data.Dataset`` of ``(x, y)`` batches in their order, for
    evaluation: ``fit`` makes a new iterator of it every epoch, and this
    plain slice-and-batch pipeline starts in under 1 ms where ``batches``'
    shuffling one takes about 10 ms (measured on a 2-core CPU): on a short
    series that was a fifth of a search's time."""
    import tensorflow as tf

    data = tf.nest.map_structure(tf.convert_to_tensor, (x, y))
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return (tf.data.Dataset.from_tensor_slices(data).batch(batch_size)
            .with_options(options))


def batches(x, y, batch_size: int, shuffle: bool = True, repeat: bool = False):
    """A ``tf.data.Dataset`` of ``(x, y)`` batches: ``ceil(n / batch_size)``
    per epoch, the last one smaller when ``batch_size`` does not divide n.

    With ``shuffle`` every epoch is a new permutation (a stateless shuffle
    seeded from NumPy's global generator and the epoch's number, so a
    repeated dataset does not repeat its order). With ``repeat`` it runs
    through epoch after epoch without end; give ``fit`` ``steps_per_epoch``.
    """
    import tensorflow as tf

    data = tf.nest.map_structure(tf.convert_to_tensor, (x, y))

    def gather(indices):
        return tf.nest.map_structure(lambda part: tf.gather(part, indices), data)

    return index_batches(_length(x), batch_size, shuffle, repeat).map(gather) \
        .apply(_ahead(repeat))


def index_batches(n: int, batch_size: int, shuffle: bool = True, repeat: bool = False):
    """A ``tf.data.Dataset`` of batches of sample indices ``0..n-1``, as
    ``batches`` draws them: ``ceil(n / batch_size)`` per epoch, each epoch a
    new permutation with ``shuffle``, without end with ``repeat``, its
    length known otherwise. Map it to what a batch is made of."""
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if n == 0:
        raise ValueError("there are no samples to make batches of")
    full, rest = divmod(n, batch_size)
    seed = int(np.random.randint(2**31 - 1))

    def epoch_indices(epoch):
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        # Whole batches as rows of a matrix, the remainder after them: one
        # slice per batch instead of one per sample.
        each = tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[:full * batch_size], (full, batch_size)))
        if rest:
            each = each.concatenate(
                tf.data.Dataset.from_tensors(order[full * batch_size:]))
        return each

    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    dataset = epochs.flat_map(epoch_indices)
    if not repeat:
        # flat_map hides the length; without it Keras takes the end of the
        # data for a shortfall and warns "Your input ran out of data".
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(full + bool(rest)))
    return dataset


def _ahead(repeat: bool):
    """The last stages of a batch pipeline: with ``repeat`` the next batch
    made while this one trains. Not for a finite (validation) dataset: fit
    makes a new iterator for it every epoch, and stopping a prefetching one
    costs milliseconds each time."""
    import tensorflow as tf

    def finish(dataset):
        if repeat:
            dataset = dataset.prefetch(1)
        options = tf.data.Options()
        # tf.data's graph rewrites would serialize the captured arrays on
        # every iterator; they gain nothing for a gather (Keras' own adapter
        # does this too).
        options.experimental_optimization.apply_default_optimizations = False
        return dataset.with_options(options)

    return finish


def _length(x) -> int:
    import keras

    return int(keras.tree.flatten(x)[0].shape[0])
