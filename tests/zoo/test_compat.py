"""Every private API the project touches (zoo/compat.py) is still where it was.

When Keras, TensorFlow or keras-tuner moves one of them, the matching test
here fails by name; the product code that depends on it is listed in each."""

import contextlib

import keras
import pytest

from zoo import compat


def test_conv_lstm_cell_is_the_cell_of_conv_lstm2d():
    # zoo.fused subclasses it.
    layer = keras.layers.ConvLSTM2D(2, 3, padding="same")
    layer.build((None, 3, 5, 5, 1))
    assert type(layer.cell) is compat.conv_lstm_cell_class()


def test_all_layers_reaches_into_nested_models():
    # zoo.fused and experiments.train's compile options look at every layer.
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="deep")])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(1)])
    names = [layer.name for layer in compat.all_layers(outer)]
    assert "deep" in names and outer.name not in names


def test_tf_gradient_registry_holds_custom_gradients():
    # experiments.training.memory drops the entries each trial's trace leaves behind.
    if keras.config.backend() != "tensorflow":
        pytest.skip("the registry is TensorFlow's; the suite runs on TensorFlow")
    import tensorflow as tf

    registry = compat.tf_gradient_registry()
    assert isinstance(registry, dict)
    before = set(registry)

    @tf.custom_gradient
    def double(x):
        return 2 * x, lambda dy: 2 * dy

    @tf.function
    def traced(x):
        return double(x)

    traced(tf.constant(1.0))
    assert any(k.startswith("CustomGradient-") for k in set(registry) - before)


def test_keras_tuner_private_parts():
    import keras_tuner as kt

    # tuning.distributed: a worker's per-call timeout, restored afterwards.
    client = compat.oracle_client_module()
    assert isinstance(client.TIMEOUT, (int, float))
    assert compat.loaded_oracle_client_module() is client
    # tuning.distributed: the chief's lock, retry queue and gRPC servicer.
    oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
    with compat.oracle_lock(oracle):
        compat.requeue_trial(oracle, "7")
    assert oracle.get_state()["retry_queue"] == ["7"]
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    try:
        servicer = compat.add_oracle_servicer(oracle, server)
        assert servicer.stop_triggered is False
    finally:
        server.stop(None)


def test_guard_each_trial_wraps_the_whole_trial(tmp_path):
    # tuning.tracked closes a trial's child run from here.
    import keras_tuner as kt
    import numpy as np

    seen = []

    @contextlib.contextmanager
    def guard(tuner, trial):
        seen.append(("enter", trial.trial_id))
        yield
        seen.append(("exit", trial.trial_id))

    def build(hp):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        return model

    tuner = compat.guard_each_trial(kt.RandomSearch, guard)(
        build, objective="loss", max_trials=1, directory=str(tmp_path))
    tuner.search(np.zeros((4, 2)), np.zeros(4), epochs=1, verbose=0)
    assert seen == [("enter", "0"), ("exit", "0")]


def test_hyperband_trials_counts_every_round_of_every_bracket():
    import keras_tuner as kt

    from zoo.compat import hyperband_trials

    oracle = kt.oracles.HyperbandOracle(objective="val_loss", max_epochs=9, factor=3)
    # Brackets of 9+3+1, 5+2 and 3 trials (keras-tuner 1.4.8's sizes).
    assert hyperband_trials(oracle) == 23
    twice = kt.oracles.HyperbandOracle(objective="val_loss", max_epochs=3, factor=3,
                                       hyperband_iterations=2)
    assert hyperband_trials(twice) == 2 * (3 + 1 + 2)


def test_trial_helpers_build_fit_report_and_find_the_checkpoint(tmp_path):
    # tuning.tracked's run_trial: keras-tuner's Tuner.run_trial from these parts.
    import keras_tuner as kt
    import numpy as np

    def build(hp):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        return model

    tuner = kt.RandomSearch(build, objective="loss", max_trials=1, directory=str(tmp_path))
    trial = tuner.oracle.create_trial("tuner0")
    path = compat.checkpoint_path(tuner, trial)
    assert path.startswith(str(tmp_path)) and trial.trial_id in path
    stop = keras.callbacks.EarlyStopping(monitor="loss")
    (copy,) = compat.copied_callbacks(tuner, [stop])
    assert isinstance(copy, keras.callbacks.EarlyStopping) and copy is not stop
    reporter = compat.trial_reporter(tuner, trial)
    assert isinstance(reporter, keras.callbacks.Callback)
    history = compat.build_and_fit(tuner, trial, np.zeros((4, 2)), np.zeros(4), epochs=2,
                                   verbose=0, callbacks=[copy])
    assert len(history.history["loss"]) == 2


def test_mlflow_dataset_input_and_keras_model_logging(tmp_path):
    # experiments.mlflow_compat: a trial's dataset input, the served Keras model.
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    from experiments import mlflow_compat, tracking

    uri = tracking.init_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.use_experiment("compat", uri)
    dataset = mlflow.data.from_numpy(np.arange(6.0).reshape(3, 2), name="tiny")
    entry = mlflow_compat.dataset_input(dataset)
    assert entry.dataset.digest == dataset.digest and entry.tags[0].value == "training"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    x = np.zeros((2, 2), "float32")
    with mlflow.start_run() as run:
        mlflow.MlflowClient().log_inputs(run.info.run_id, datasets=[entry])
        info = mlflow_compat.log_keras_model(
            model, infer_signature(x, model.predict(x, verbose=0)), x, ["keras"])
    assert mlflow.get_run(run.info.run_id).inputs.dataset_inputs[0].dataset.name == "tiny"
    loaded = mlflow.keras.load_model(info.model_uri)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_oracle_bookkeeping_of_workers(tmp_path):
    # tuning.distributed's WorkerWatch: who holds which trial, taking one back.
    import keras_tuner as kt

    oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=3)
    oracle._set_project_dir(str(tmp_path), "p")
    calls = []
    compat.wrap_oracle_calls(oracle, lambda call, name: (
        lambda *a, **k: (calls.append(name), call(*a, **k))[1]))
    assert compat.search_over(oracle)
    trial = oracle.create_trial("worker-a")
    assert calls == ["create_trial"]
    assert compat.held_trials(oracle) == {"worker-a": trial}
    assert not compat.search_over(oracle)
    with compat.oracle_lock(oracle):
        compat.take_back_trial(oracle, "worker-a", trial.trial_id)
    assert compat.held_trials(oracle) == {}
    assert oracle.get_state()["retry_queue"] == [trial.trial_id]
    assert compat.search_over(oracle)


def test_keras_multi_worker_mend_is_idempotent_and_leaves_one_process_alone():
    # experiments.training.strategy.multi_worker_strategy mends Keras' TF trainer.
    import numpy as np
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    compat.mend_keras_multi_worker()
    patched = trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica
    compat.mend_keras_multi_worker()
    assert (trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica) == patched
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    assert not compat.in_multi_worker_mode(strategy) and not compat.in_multi_worker_mode(None)
    # Under a one-process strategy the mended trainer fits as Keras' own does.
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
    x = np.ones((8, 3), "float32")
    losses = model.fit(x, x[:, :1], epochs=2, verbose=0).history["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]
