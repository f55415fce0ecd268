"""What each newer family promises beyond the registry-wide tests in
``test_zoo.py``: the peephole cell's arithmetic, teacher forcing in training
and autoregressive decoding at inference, readable attention weights."""

import keras
import numpy as np
import pytest
from keras import ops

import zoo
from zoo.families.attention_lstm import attention_weights
from zoo.families.peephole_lstm import PeepholeLSTMCell
from zoo.families.seq2seq_lstm import Seq2SeqForecaster


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_peephole_step_matches_a_hand_computed_step():
    """One step of a 2-unit cell on 1 input, every weight set by hand."""
    cell = PeepholeLSTMCell(2)
    cell.build((None, 1))
    kernel = np.array([[0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8]], "float32")
    recurrent = np.arange(16, dtype="float32").reshape(2, 8) / 20 - 0.4
    bias = np.linspace(-0.3, 0.4, 8).astype("float32")
    p_i, p_f, p_o = (np.array(v, "float32") for v in ([0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]))
    cell.kernel.assign(kernel)
    cell.recurrent_kernel.assign(recurrent)
    cell.bias.assign(bias)
    cell.peephole_input.assign(p_i)
    cell.peephole_forget.assign(p_f)
    cell.peephole_output.assign(p_o)
    x = np.array([[0.9]], "float32")
    h0 = np.array([[0.2, -0.1]], "float32")
    c0 = np.array([[0.5, -0.3]], "float32")

    h, (h_state, c) = cell(x, [h0, c0])

    z = x @ kernel + h0 @ recurrent + bias
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    i = sigmoid(z_i + p_i * c0)
    f = sigmoid(z_f + p_f * c0)
    c_expected = f * c0 + i * np.tanh(z_c)
    o = sigmoid(z_o + p_o * c_expected)  # the output gate sees the new cell
    np.testing.assert_allclose(ops.convert_to_numpy(c), c_expected, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(h), o * np.tanh(c_expected), rtol=1e-5)
    np.testing.assert_array_equal(ops.convert_to_numpy(h), ops.convert_to_numpy(h_state))
    # The peepholes matter: without them the step differs.
    plain = sigmoid(z_o) * np.tanh(sigmoid(z_f) * c0 + sigmoid(z_i) * np.tanh(z_c))
    assert not np.allclose(plain, ops.convert_to_numpy(h), atol=1e-3)


def test_peephole_cell_config_round_trips():
    cell = PeepholeLSTMCell(3, dropout=0.25, recurrent_dropout=0.1)
    config = keras.saving.serialize_keras_object(cell)
    assert config["registered_name"] == "zoo>PeepholeLSTMCell"
    again = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(again) is PeepholeLSTMCell
    assert again.get_config() == cell.get_config()


def test_peephole_cudnn_report_gives_the_reason():
    (entry,) = zoo.cudnn_report(zoo.build_model("peephole_lstm", (6, 2), 1, units=4))
    assert entry.kind == "RNN(PeepholeLSTMCell)" and not entry.eligible
    assert "no cell-to-gate (peephole) weights" in entry.reasons[0]


def seq2seq(decoder="teacher_forcing", outputs=(3, 2)):
    keras.utils.set_random_seed(0)
    model = zoo.build_model("seq2seq_lstm", (8, 2), outputs, units=6, decoder=decoder)
    model.compile("adam", "mse")
    return model


def test_seq2seq_training_loss_is_teacher_forced():
    """In training the loss is that of the decoder fed the true previous
    values, whatever the autoregressive forecast was; in evaluation it is the
    forecast's own."""
    model = seq2seq()
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 2), dtype=np.float32)
    y = rng.random((4, 3, 2), dtype=np.float32)
    garbage = np.full_like(y, 100.0)
    trained = float(model.compute_loss(x, y, garbage, training=True))
    h, c = model.get_layer("encoder")(x)
    forced = model.get_layer("decoder")([h, c], previous=y)
    assert trained == pytest.approx(float(np.mean((ops.convert_to_numpy(forced) - y) ** 2)),
                                    rel=1e-5)
    assert float(model.compute_loss(x, y, garbage, training=False)) > 1000


def test_seq2seq_predicts_autoregressively():
    """Fed its own forecast as the "true" previous values, the teacher-forced
    decoder reproduces ``predict``: inference reads its own output."""
    model = seq2seq(outputs=4)
    x = np.random.default_rng(1).random((3, 8, 2), dtype=np.float32)
    forecast = model.predict(x, verbose=0)
    assert forecast.shape == (3, 4)
    h, c = model.get_layer("encoder")(x)
    again = model.get_layer("decoder")([h, c], previous=forecast[..., None])
    np.testing.assert_allclose(ops.convert_to_numpy(again)[..., 0], forecast, atol=1e-5)
    # And the true values change the teacher-forced output (the decoder reads them).
    other = model.get_layer("decoder")([h, c], previous=forecast[..., None] + 1)
    assert not np.allclose(ops.convert_to_numpy(other)[..., 0], forecast, atol=1e-3)


def test_seq2seq_learns_and_round_trips_in_safe_mode(tmp_path):
    model = seq2seq()
    rng = np.random.default_rng(2)
    x = rng.random((64, 8, 2), dtype=np.float32)
    y = np.stack([x[:, -3:, 0], x[:, -3:, 1]], -1)  # the window's last 3 steps
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    model.save(tmp_path / "s.keras")
    loaded = zoo.load_model(tmp_path / "s.keras")
    assert type(loaded) is Seq2SeqForecaster
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0),
                               model.predict(x[:4], verbose=0), atol=1e-6)


def test_repeat_context_decoder_is_plain_keras():
    model = seq2seq("repeat_context")
    assert not isinstance(model, Seq2SeqForecaster)  # no loss of its own
    assert "repeat_context" in [layer.name for layer in model.layers]


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_attention_weights_are_a_distribution_over_steps(score):
    model = zoo.build_model("attention_lstm", (7, 2), 1, units=4, attention=score)
    x = np.random.default_rng(0).random((3, 7, 2), dtype=np.float32)
    weights = attention_weights(model, x)
    assert weights.shape == (3, 1, 7)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert (weights >= 0).all()


def test_language_model_attention_is_causal():
    model = zoo.build_model("attention_lstm", (6, 3), 5, head="language_model", units=4)
    weights = attention_weights(model, np.random.default_rng(0).random((2, 6, 3)))
    assert weights.shape == (2, 6, 6)
    assert np.all(np.triu(weights, k=1) == 0), "a step attended to a later one"
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_attention_weights_refuse_other_families():
    with pytest.raises(ValueError, match="has no layer 'attention'.*attention_lstm"):
        attention_weights(zoo.build_model("gru", (6, 2), 1, units=4), np.zeros((1, 6, 2)))


@pytest.mark.slow
def test_seq2seq_is_trained_evaluated_and_served_through_train(tmp_path):
    """`train` on a 12-month horizon: the served pyfunc (refit, loaded in
    safe mode) answers raw history with the autoregressive forecast, and the
    logged test RMSE is that of the graph's (autoregressive) forecasts."""
    import mlflow
    import pandas as pd

    from experiments.config import RunConfig
    from experiments.train import run_training

    db = tmp_path / "mlflow.db"
    result = run_training(RunConfig(
        model="seq2seq_lstm", data="airline", horizon=12, epochs=3, batch_size=16,
        hyperparameters={"units": 8}, refit=True, tracking_uri=f"sqlite:///{db}"))
    task, p = result.task, result.task.prepared
    forecast = task.forecast(result.trained, p.test)
    rmse = float(np.sqrt(np.mean((forecast - p.truth(p.test)) ** 2)))
    assert rmse == pytest.approx(result.metrics["test_rmse"], rel=1e-4)
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    served = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    assert type(served.unwrap_python_model().network) is Seq2SeqForecaster
    out = served.predict(pd.DataFrame())  # no rows: continue the training data
    assert len(out) == 12 and np.isfinite(out.select_dtypes("number").to_numpy()).all()


@pytest.mark.slow
def test_train_logs_the_attention_heat_map(tmp_path):
    from experiments.config import RunConfig
    from experiments.train import run_training
    from tests.helpers import client_for

    db = tmp_path / "mlflow.db"
    result = run_training(RunConfig(model="attention_lstm", data="sine", epochs=2,
                                    hyperparameters={"units": 4},
                                    tracking_uri=f"sqlite:///{db}"))
    plots = {a.path for a in client_for(db).list_artifacts(result.run_id, "plots")}
    assert "plots/attention.png" in plots


def test_conv_lstm_predicts_the_change_from_the_last_frame():
    """With the change head silenced, the forecast is the last input frame,
    repeated for every future frame: the copy-last-frame baseline is where
    training starts."""
    model = zoo.build_model("conv_lstm", (None, 6, 6, 1), 2, units=4)
    head = model.get_layer("frame_changes")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    x = np.random.default_rng(0).random((2, 3, 6, 6, 1), dtype=np.float32)
    y = model.predict(x, verbose=0)
    np.testing.assert_allclose(y, np.repeat(x[:, -1:], 2, axis=1), atol=1e-6)
    drawn = zoo.build_model("conv_lstm", (3, 6, 6, 1), 2, units=4, predict="frame")
    assert "frame_changes" not in [layer.name for layer in drawn.layers]
