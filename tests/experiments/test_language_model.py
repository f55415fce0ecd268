"""The character model's windows, evaluation and stateful training."""

import keras
import numpy as np
import pytest

import zoo
from experiments.config import RunConfig
from experiments.errors import ConfigError
from experiments.tasks import language_model as text
from experiments.training.stateful import ResetStates, stateful_copy, streams


def test_training_windows_start_every_stride_characters():
    x, y = text.windows_of(np.arange(20), window=8, stride=2)
    np.testing.assert_array_equal(x[:, 0], [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(y, x + 1)  # each step's next character


def test_evaluation_scores_each_character_once_with_half_a_window_before_it():
    task = text.LanguageModelTask("t", "t", "abcdefghij" * 40, window=8, val_size=0.25,
                                  test_size=0.25)
    assert task.params()["stride"] == 2  # window // 4 by default
    scored = task.scored(len(task.test))
    # Target position of every scored step: window k starts at 4k.
    rows, cols = np.nonzero(scored)
    targets = 4 * rows + cols
    assert len(set(targets)) == len(targets)  # none twice
    np.testing.assert_array_equal(np.sort(targets), np.arange(len(targets)))  # no gap
    assert (cols[rows > 0] >= 4).all()  # after the first window, 4+ chars of context
    assert len(targets) > 100 * 0.25 - 1 - 4  # all but the last stride's tail


def test_streams_continue_each_other_batch_after_batch():
    ids = np.arange(1, 42)
    x, y = streams(ids, window=4, batch_size=3)
    assert x.shape == (9, 4)  # 3 windows of 4 per stream of 13, for 3 streams
    np.testing.assert_array_equal(y, x + 1)
    for j in range(2):  # row b of batch j+1 starts where row b of batch j ended
        np.testing.assert_array_equal(x[3 * (j + 1):3 * (j + 2), 0],
                                      x[3 * j:3 * (j + 1), -1] + 1)


def test_stateful_copy_carries_the_state_until_reset():
    model = zoo.build_model("gru", (None, 5), 5, head="language_model", units=4)
    copy = stateful_copy(model, batch_size=2)
    np.testing.assert_array_equal(copy.get_weights()[0], model.get_weights()[0])
    batch = np.random.default_rng(0).random((2, 3, 5), dtype=np.float32)
    first = copy.predict_on_batch(batch)
    assert not np.allclose(copy.predict_on_batch(batch), first)  # the state went on
    reset = ResetStates()
    reset.set_model(copy)
    reset.on_epoch_begin(0)
    np.testing.assert_allclose(copy.predict_on_batch(batch), first, atol=1e-6)
    # The stateless original is untouched: same output as the copy's first.
    np.testing.assert_allclose(model.predict_on_batch(batch), first, atol=1e-6)


@pytest.mark.slow
def test_stateful_train_records_the_mode_and_beats_unigram(tmp_path, timemachine):
    from experiments.train import run_training

    result = run_training(RunConfig(
        model="gru", text=str(timemachine), stateful=True, window=32, batch_size=8,
        epochs=4, clipnorm=1.0, hyperparameters={"units": 32},
        tracking_uri=f"sqlite:///{tmp_path / 'm.db'}"))
    m = result.metrics
    assert m["test_perplexity"] < m["test_unigram_perplexity"]
    # Trained on the stateful copy, evaluated on the ordinary model.
    assert not any(getattr(layer, "stateful", False) for layer in result.model.layers)
    from tests.helpers import client_for

    params = client_for(tmp_path / "m.db").get_run(result.run_id).data.params
    assert params["stateful"] == "True"
    keras.backend.clear_session()


def test_tune_and_other_tasks_refuse_stateful(tmp_path, timemachine):
    from experiments.tasks import load_tasks

    with pytest.raises(ConfigError, match="--stateful is for `train` and `compare`"):
        load_tasks(RunConfig(text=str(timemachine), stateful=True), "tune")
    with pytest.raises(ConfigError, match="--stateful is not used by the forecast task"):
        load_tasks(RunConfig(data="sine", stateful=True), "train")


def test_stateful_needs_enough_text_per_stream():
    from experiments.data import DataError

    with pytest.raises(DataError, match=r"too few for 64 streams \(--batch-size\)"):
        streams(np.arange(100), window=8, batch_size=64)
