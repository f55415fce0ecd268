"""A panel's windows drawn by index (``experiments.forecasting.window_index``,
``experiments.training.window_feed``): never copied out of the panel, every
window trained on once per order, across series, in full batches."""

import keras
import numpy as np

from experiments.data import make_panel
from experiments.forecasting.panel_windows import prepare_panel
from experiments.training.window_feed import WindowBatches, training_batches


def prepared(n_series=8, seed=1):
    return prepare_panel(make_panel(n_series, seed=seed), window=12, horizon=6,
                         val_size=6, test_size=6)


def sorted_rows(y):
    return y[np.lexsort(y.T[::-1])]


def epochs_of(batches, steps, epochs):
    """Each epoch's targets, in the order they were fed."""
    it = iter(batches)
    return [np.concatenate([np.asarray(next(it)[1]) for _ in range(steps)])
            for _ in range(epochs)]


def test_the_index_points_into_the_panel_and_copies_no_window():
    p = prepared()
    index = p.train.index
    assert np.shares_memory(index.values, p.panel.frame["y"].to_numpy())
    assert index.starts.ndim == 1 and index.starts.dtype.kind == "i"
    # Nothing is materialised until the arrays are asked for.
    assert "_arrays" not in vars(p.train)
    assert p.train.x.shape == (len(p.train), 12, 1) and "_arrays" in vars(p.train)


def test_drawn_batches_are_full_and_every_order_is_every_window_once():
    p = prepared()
    batch = 32
    n = len(p.train)
    steps = -(-n // batch)
    assert n % batch, "the panel must leave a partial batch to be a test of it"
    keras.utils.set_random_seed(3)
    args = training_batches(p.train.index, batch)
    assert args["steps_per_epoch"] == steps
    it = iter(args["x"])
    batches = [np.asarray(next(it)[1]) for _ in range(2 * steps + 1)]
    # Every batch full: no batch of another shape for a compiled step.
    assert {len(b) for b in batches} == {batch}
    drawn = np.concatenate(batches)
    first, second = drawn[:n], drawn[n:2 * n]
    for order in (first, second):
        np.testing.assert_allclose(sorted_rows(order), sorted_rows(p.train.y), rtol=1e-6)
    assert not np.allclose(first, second)
    # keras.utils.set_random_seed makes the order reproducible.
    keras.utils.set_random_seed(3)
    again = epochs_of(training_batches(p.train.index, batch)["x"], steps, 1)[0]
    np.testing.assert_array_equal(again, drawn[:steps * batch])


def test_the_py_dataset_feed_shuffles_every_epoch_too():
    p = prepared()
    feed = WindowBatches(p.train.index, 32)
    n = len(p.train)
    drawn = []
    for _ in range(2):
        drawn += [feed[i][1] for i in range(len(feed))]
        feed.on_epoch_end()
    assert {len(b) for b in drawn} == {32}
    drawn = np.concatenate(drawn)
    first, second = drawn[:n], drawn[n:2 * n]
    np.testing.assert_allclose(sorted_rows(first), sorted_rows(p.train.y), rtol=1e-6)
    np.testing.assert_allclose(sorted_rows(second), sorted_rows(first))
    assert not np.allclose(first, second)


def test_the_least_squares_start_draws_across_every_series():
    p = prepared(n_series=40, seed=2)
    rows = p.train.index.sample_rows(200)
    drawn = p.train.index.subset(rows).series
    # The first 200 windows would be the first few series.
    assert len(set(drawn.tolist())) >= 30 and len(set(p.train.series[:200].tolist())) <= 6


def test_a_panel_trains_without_materialising_its_training_windows(monkeypatch):
    from experiments.config import RunConfig, budget
    from experiments.tasks.panel import PanelTask
    from experiments.training import fitting

    patience = []
    stop = fitting.early_stopping
    monkeypatch.setattr(fitting, "early_stopping", lambda p: patience.append(p) or stop(p))
    task = PanelTask(prepared())
    # A config made in a notebook: no patience given.
    cfg = RunConfig(model="gru", epochs=2, batch_size=64, verbose=0, seed=0,
                    learning_rate=1e-3)
    model, history = fitting.train_network(
        cfg, task, {"units": 4, **task.builder_arguments("gru"), "head": task.head})
    assert np.isfinite(history["loss"]).all() and len(history["val_loss"]) == 2
    assert "_arrays" not in vars(task.train)
    # Early stopping on the patience train would choose for this much data.
    assert patience == [budget(len(task.train), 64)[1]]
