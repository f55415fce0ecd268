"""Data-parallel training on ``tf.distribute``: one model, its batches split
over the devices this process sees (``train --data-parallel``, and each
trial of ``tune --data-parallel``).

``MirroredStrategy`` keeps a copy of the model on each device and averages
their gradients every step. The devices are the GPUs, or where there are
none the logical CPU devices (one unless configured, e.g. for a test, with
``tf.config.set_logical_device_configuration``).
"""

from __future__ import annotations

import contextlib

from experiments.errors import ConfigError


def mirrored_strategy():
    """A ``tf.distribute.MirroredStrategy`` over this process' GPUs, else its
    logical CPU devices; a ``ConfigError`` on another Keras backend."""
    import keras

    if keras.config.backend() != "tensorflow":
        raise ConfigError("--data-parallel uses tf.distribute.MirroredStrategy and "
                          "needs the TensorFlow backend; unset KERAS_BACKEND")
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices())


def devices() -> list[str]:
    """The devices ``mirrored_strategy`` trains on: the GPUs, else the
    logical CPU devices."""
    import tensorflow as tf

    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [d.name for d in found]


def data_parallel_scope(data_parallel: bool):
    """Where to build and compile a model: a ``mirrored_strategy()``'s scope
    (the model then trains on every device), or nothing."""
    return mirrored_strategy().scope() if data_parallel else contextlib.nullcontext()


def distributed() -> bool:
    """Whether a ``tf.distribute`` strategy's scope is open here."""
    import keras

    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy()
