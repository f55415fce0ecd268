"""experiments.training.feed: what train and tune give fit on TensorFlow."""

import numpy as np
import pytest


def test_repeated_batches_cover_every_sample_once_per_epoch_in_a_new_order():
    import keras

    from experiments.training.feed import batches

    keras.utils.set_random_seed(3)
    x = np.arange(10, dtype=np.float32)[:, None]
    y = 2 * x
    it = iter(batches(x, y, 4, shuffle=True, repeat=True))
    orders = []
    for _ in range(3):
        epoch = [next(it) for _ in range(3)]  # ceil(10 / 4)
        assert [len(bx) for bx, _ in epoch] == [4, 4, 2]
        for bx, by in epoch:  # inputs and targets stay paired
            np.testing.assert_array_equal(by.numpy(), 2 * bx.numpy())
        order = np.concatenate([bx.numpy().ravel() for bx, _ in epoch])
        assert sorted(order) == list(range(10))
        orders.append(order.tolist())
    assert len({tuple(o) for o in orders}) == 3  # reshuffled every epoch
    # The same seed gives the same orders.
    keras.utils.set_random_seed(3)
    again = iter(batches(x, y, 4, shuffle=True, repeat=True))
    assert np.concatenate([next(again)[0].numpy().ravel() for _ in range(3)]).tolist() \
        == orders[0]


def test_validation_batches_are_in_order_and_end():
    from experiments.training.feed import batches

    x = np.arange(5, dtype=np.float32)[:, None]
    got = [bx.numpy().ravel().tolist() for bx, _ in batches(x, x, 2, shuffle=False)]
    assert got == [[0, 1], [2, 3], [4]]


def test_fit_arguments_train_the_same_as_arrays():
    """A model fitted through fit_arguments sees every sample each epoch:
    without shuffling it ends with exactly the weights fit on arrays gives."""
    import keras

    from experiments.training.feed import fit_arguments

    rng = np.random.default_rng(0)
    x = rng.random((70, 6, 2), dtype=np.float32)
    y = rng.random((70, 1), dtype=np.float32)

    def trained(**data):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6, 2)), keras.layers.LSTM(4),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        history = model.fit(**data, epochs=3, verbose=0).history
        return model.get_weights(), history

    fed = fit_arguments(x, y, 32, shuffle=False, validation=(x[:10], y[:10]))
    assert fed["steps_per_epoch"] == 3
    w_fed, h_fed = trained(**fed)
    w_arr, h_arr = trained(x=x, y=y, batch_size=32, shuffle=False,
                           validation_data=(x[:10], y[:10]))
    for a, b in zip(w_fed, w_arr, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert h_fed["val_loss"] == pytest.approx(h_arr["val_loss"], rel=1e-5)


def test_batch_size_must_be_positive():
    from experiments.training.feed import batches

    x = np.zeros((3, 1), np.float32)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        batches(x, x, 0)


@pytest.mark.parametrize("samples", [70, 96, 32 * 50, 32 * 97])
def test_every_epoch_is_one_pass_over_the_data_as_train_compiles(samples):
    """train's steps_per_execution and the feed together run exactly
    ceil(n / batch) optimizer steps per epoch, whatever n is: Keras would
    run a whole execution past the end of an epoch on an endless input."""
    import keras

    import zoo
    from experiments.training.feed import fit_arguments
    from experiments.training.fitting import compile_fast

    steps = -(-samples // 32)
    x = np.zeros((samples, 4, 1), np.float32)
    y = np.zeros((samples, 1), np.float32)
    model = zoo.build_model("vanilla_lstm", (4, 1), 1, units=2)
    compile_fast(model, keras.optimizers.SGD(0.01), "mse", steps, epochs=3)
    model.fit(**fit_arguments(x, y, 32, steps_per_execution=model.steps_per_execution),
              epochs=3, verbose=0)
    assert int(model.optimizer.iterations) == 3 * steps


def test_fit_with_validation_runs_without_warnings():
    import warnings

    import keras

    from experiments.training.feed import fit_arguments

    x = np.zeros((50, 3, 1), np.float32)
    model = keras.Sequential([keras.Input((3, 1)), keras.layers.LSTM(2),
                              keras.layers.Dense(1)])
    model.compile("sgd", "mse", steps_per_execution=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(**fit_arguments(x, x[:, 0], 16, validation=(x[:20], x[:20, 0]),
                                            steps_per_execution=2), epochs=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
