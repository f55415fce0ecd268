"""What ``model.fit`` trains on, for any task's part: the arrays
(``experiments.training.feed``), or a panel's windows drawn by index
(``experiments.forecasting.window_index``), batches assembled as they are
trained on, never the whole ``(n, window, features)`` array."""

from __future__ import annotations

import math

import keras
import numpy as np

from experiments.forecasting.window_index import WindowIndex
from experiments.training.feed import fit_arguments, index_batches, validation_feed
from zoo.distributions import start_spread
from zoo.heads import AUTOREGRESSIVE_MAX_ROWS, start_autoregressive


def split_arguments(split, batch_size: int, shuffle: bool = True, validation=None,
                    steps_per_execution: int = 1) -> dict:
    """Keyword arguments for ``model.fit`` that train on ``split`` (a
    task's ``Split``, or a panel's ``PanelWindows``, which is drawn by
    index and always shuffled), validated on ``validation`` ``(x, y)``."""
    if not split.drawn_by_index:
        return fit_arguments(split.x, split.y, batch_size, shuffle, validation,
                             steps_per_execution)
    args = training_batches(split.index, batch_size)
    if validation is not None:
        args["validation_data"] = validation_feed(
            validation, batch_size, pipeline=keras.config.backend() == "tensorflow")
    return args


def start_heads(model, split) -> None:
    """Start the model's linear autoregressive term and its distribution's
    spread at their least-squares fits (``zoo.start_autoregressive``,
    ``zoo.start_spread``) on at most ``AUTOREGRESSIVE_MAX_ROWS`` of
    ``split``'s windows: evenly spaced, or for a panel drawn at random
    across every series."""
    x, y = split.sample(AUTOREGRESSIVE_MAX_ROWS)
    start_autoregressive(model, x, y)
    start_spread(model, x, y)


def training_batches(index: WindowIndex, batch_size: int):
    """Keyword arguments for ``model.fit`` that train on ``index``'s windows:
    ``ceil(n / batch_size)`` batches an epoch, a new order across every
    series each epoch (from NumPy's global generator, so
    ``keras.utils.set_random_seed`` makes it reproducible), each batch
    assembled as it is needed.

    On TensorFlow one ``tf.data`` pipeline through every epoch, the next
    batches assembled while this one trains. Where the model's
    ``steps_per_execution`` does not divide the batches per epoch, Keras
    runs its last call of an epoch on into the next order (fewer than
    ``steps_per_execution`` batches): every window is still drawn once per
    order. On JAX and PyTorch a ``keras.utils.PyDataset``.
    """
    if keras.config.backend() != "tensorflow":
        return {"x": WindowBatches(index, batch_size), "shuffle": False}
    return {"x": _drawn_batches(index, batch_size),
            "steps_per_epoch": math.ceil(len(index) / batch_size), "shuffle": False}


def _drawn_batches(index: WindowIndex, batch_size: int):
    """``index``'s windows in batches without end, each epoch a new order
    (``feed.index_batches``), each batch assembled by ``WindowIndex.take``."""
    import tensorflow as tf

    def assemble(rows):
        x, y = tf.numpy_function(index.take, [rows], (tf.float32, tf.float32),
                                 stateful=False)
        x.set_shape((None, *index.input_shape))
        y.set_shape((None, index.horizon))
        return x, y

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    # Two batches assembled ahead, in parallel with training.
    return index_batches(len(index), batch_size, shuffle=True, repeat=True) \
        .map(assemble).prefetch(2).with_options(options)


class WindowBatches(keras.utils.PyDataset):
    """``index``'s windows in batches, a new order every epoch."""

    def __init__(self, index: WindowIndex, batch_size: int):
        super().__init__()
        self.index, self.batch_size = index, batch_size
        self.rng = np.random.default_rng(int(np.random.randint(2**31 - 1)))
        self.order = self.rng.permutation(len(index))

    def __len__(self):
        return math.ceil(len(self.index) / self.batch_size)

    def __getitem__(self, i):
        return self.index.take(self.order[i * self.batch_size:(i + 1) * self.batch_size])

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.index))
