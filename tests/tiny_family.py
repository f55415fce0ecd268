"""A family that exists only in tests, to show that registering one is all it
takes: the CLI's flags, the tuner and the registry-wide tests pick it up.

Used in-process through ``zoo.registered`` (tests/experiments/test_structure.py) and as a
pytest plugin (``-p tests.tiny_family``) that registers it before the
registry-wide tests of tests/zoo/test_zoo.py are collected.
"""

import keras

from zoo.families.recurrent import depth, recurrent_stack
from zoo.space import Float, Int

NAME = "tiny_test"
SPACE = {
    "units": Int(2, 8, default=4),
    "num_layers": Int(1, 2, default=1),
    "dropout": Float(0.0, 0.2, default=0.0),
    "extra_width": Int(0, 2, default=0),  # a hyperparameter no real family has
}


def build_tiny(input_shape, outputs, *, head="forecast", units=4, num_layers=1,
               dropout=0.0, recurrent_dropout=0.0, extra_width=0, name="tiny_test"):
    """Tiny GRU stack for tests; ``extra_width`` adds units to each layer."""
    where = "build_tiny"
    layers = [f"gru_{i + 1}" for i in range(depth(where, num_layers))]
    return recurrent_stack(keras.layers.GRU, layers, input_shape, outputs, head=head,
                           units=units + extra_width, dropout=dropout,
                           recurrent_dropout=recurrent_dropout, name=name, where=where)


def pytest_configure(config):
    import zoo

    zoo.register(NAME, space=SPACE)(build_tiny)
