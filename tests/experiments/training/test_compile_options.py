"""How train and tune compile: XLA only where it pays back (on a CPU)."""

import pytest


@pytest.mark.parametrize("steps, epochs, xla", [
    (64, 200, True),    # the bench's small model, train's default epochs
    (64, None, True),   # unknown length counts as long
    (64, 2, False),     # a short trial: compiling would cost more than it saves
    (3, 200, False),    # airline: 3 batches per epoch
    (None, None, False),
])
def test_xla_only_for_long_trainings_with_many_batches(steps, epochs, xla):
    import keras

    from experiments.training.fitting import compile_options

    options = compile_options(steps, epochs=epochs)
    assert options["steps_per_execution"] >= 1
    on_cpu_tf = keras.config.backend() == "tensorflow"
    assert options.get("jit_compile", False) == (xla and on_cpu_tf)


def test_never_xla_for_conv_lstm():
    import zoo
    from experiments.training.fitting import compile_options

    model = zoo.build_model("conv_lstm", (4, 8, 8, 1), 1, units=4)
    assert "jit_compile" not in compile_options(64, model, epochs=200)


@pytest.mark.parametrize("steps, expected", [
    (None, 16), (3, 3), (16, 16), (64, 16), (50, 10), (96, 16), (97, 16), (26, 13)])
def test_steps_per_execution_divides_the_epoch_where_it_can(steps, expected):
    from experiments.training.fitting import steps_per_execution

    assert steps_per_execution(steps) == expected
