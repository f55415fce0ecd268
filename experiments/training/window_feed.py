"""What ``model.fit`` trains on, for any task's part: the arrays
(``experiments.training.feed``), or a panel's windows drawn by index
(``experiments.forecasting.window_index``), batches assembled as they are
trained on, never the whole ``(n, window, features)`` array."""

from __future__ import annotations

import math

import keras
import numpy as np

from experiments.forecasting.window_index import WindowIndex
from experiments.training.feed import fit_arguments, validation_feed
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
    ``ceil(n / batch_size)`` full batches an epoch from a new order across
    every series each epoch (``EpochOrder``; from NumPy's global generator,
    so ``keras.utils.set_random_seed`` makes it reproducible), each batch
    assembled as it is needed.

    On TensorFlow one ``tf.data`` pipeline through every epoch, the next
    batches assembled while this one trains; on JAX and PyTorch a
    ``keras.utils.PyDataset``.
    """
    if keras.config.backend() != "tensorflow":
        return {"x": WindowBatches(index, batch_size), "shuffle": False}
    order = EpochOrder(len(index), batch_size)
    return {"x": _drawn_batches(index, order), "steps_per_epoch": order.steps,
            "shuffle": False}


class EpochOrder:
    """Batches drawn from a new order of ``n`` windows each epoch, one order
    after another: every batch full, every window drawn once per order.

    The orders run on as one stream, so the batch that ends one order takes
    its last rows from the start of the next: a batch of another size would
    make a compiled (XLA) training step compile again, and its memory stay.
    Each order is shuffled in place from the last (as uniformly random as a
    shuffle of ``0..n-1``): one int32 array, 40 MB for ten million windows,
    however many epochs are drawn. Batches must be asked for in order, as
    one sequential ``tf.data`` map or ``fit`` asks. Without a ``seed``, the
    orders come from NumPy's global generator (which
    ``keras.utils.set_random_seed`` seeds).
    """

    def __init__(self, n: int, batch_size: int, seed: int | None = None):
        if seed is None:
            seed = int(np.random.randint(2**31 - 1))
        # A panel smaller than a batch is one batch of every window.
        self.n, self.batch_size = n, min(batch_size, n)
        self.steps = math.ceil(n / self.batch_size)
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(n, dtype="int32" if n < 2**31 else "int64")
        self.epoch = -1

    def batch(self, step: int) -> np.ndarray:
        """The windows of batch ``step`` (counted from the first order's
        first batch)."""
        first = int(step) * self.batch_size
        epoch, start = divmod(first, self.n)
        self._move_to(epoch)
        end = start + self.batch_size
        if end <= self.n:
            return self.order[start:end].copy()
        tail = self.order[start:].copy()
        self._move_to(epoch + 1)
        return np.concatenate([tail, self.order[:end - self.n]])

    def _move_to(self, epoch: int) -> None:
        while self.epoch < epoch:
            self.rng.shuffle(self.order)
            self.epoch += 1


def _drawn_batches(index: WindowIndex, order: EpochOrder):
    """``index``'s windows in ``order``'s batches without end, each batch
    assembled by ``WindowIndex.take``."""
    import tensorflow as tf

    def assemble(step):
        x, y = tf.numpy_function(lambda s: index.take(order.batch(s)), [step],
                                 (tf.float32, tf.float32), stateful=True)
        x.set_shape((None, *index.input_shape))
        y.set_shape((None, index.horizon))
        return x, y

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    # One step after another (the order moves on with them); two batches
    # assembled ahead, in parallel with training.
    return tf.data.Dataset.counter().map(assemble).prefetch(2).with_options(options)


class WindowBatches(keras.utils.PyDataset):
    """``index``'s windows in batches, a new order every epoch."""

    def __init__(self, index: WindowIndex, batch_size: int):
        super().__init__()
        self.index = index
        self.order = EpochOrder(len(index), batch_size)
        self.epoch = 0

    def __len__(self):
        return self.order.steps

    def __getitem__(self, i):
        return self.index.take(self.order.batch(self.epoch * self.order.steps + i))

    def on_epoch_end(self):
        self.epoch += 1
