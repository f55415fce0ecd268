"""The zoo, tested over the whole registry: a family registered later is
covered here without touching this file."""

import inspect
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo
from tests.conftest import REPO
from zoo.space import Choice, Float, Int

FAMILIES = zoo.list_models()
BATCH = 2

# Tiny input per input layout, and the expected output shape per head.
TINY_INPUT = {
    ("time", "features"): (6, 3),
    ("time", "rows", "cols", "channels"): (3, 6, 6, 1),
}
HEAD_CASES = {
    "forecast": [(2, (2,)), ((2, 3), (2, 3))],
    "classification": [(3, (3,))],
    "language_model": [(5, (6, 5))],
    "frames": [(2, (2, 6, 6, 1))],
}
LOSS = {
    "forecast": "mse",
    "frames": "binary_crossentropy",
    "classification": "sparse_categorical_crossentropy",
    "language_model": "sparse_categorical_crossentropy",
}


def tiny_shape(name):
    return TINY_INPUT[zoo.get(name).input_axes]


def tiny_model(name, head=None, outputs=None, **hp):
    info = zoo.get(name)
    head = head or info.default_head
    outputs = outputs if outputs is not None else HEAD_CASES[head][0][0]
    hp.setdefault("units", 4)
    return zoo.build_model(name, tiny_shape(name), outputs, head=head, **hp)


def tiny_batch(model, head, outputs, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, *model.input_shape[1:]), dtype=np.float32)
    if head in ("classification", "language_model"):
        y = rng.integers(0, outputs, size=(BATCH, *model.output_shape[1:-1]))
    else:
        y = rng.random((BATCH, *model.output_shape[1:]), dtype=np.float32)
    return x, y


HEAD_PARAMS = [
    pytest.param(name, head, outputs, expected, id=f"{name}-{head}-{outputs}")
    for name in FAMILIES
    for head in zoo.get(name).heads
    for outputs, expected in HEAD_CASES[head]
]


def test_registry_lists_the_issue_families():
    for name in ("vanilla_lstm", "stacked_lstm", "bidirectional_lstm", "gru",
                 "conv_lstm", "simple_rnn", "attention_lstm", "seq2seq_lstm",
                 "peephole_lstm", "cnn_lstm"):
        assert name in FAMILIES


def test_unknown_model_lists_names_and_suggests():
    with pytest.raises(KeyError, match=r"unknown model 'stacked_lsmt'.*"
                       r"available: \[.*'gru'.*\].*did you mean 'stacked_lstm'"):
        zoo.build_model("stacked_lsmt", (6, 3), 2)


def test_register_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="'gru' is already registered"):
        zoo.register("gru", space={})(lambda *a, **k: None)


@pytest.mark.parametrize("name,head,outputs,expected", HEAD_PARAMS)
def test_output_shape_per_head(name, head, outputs, expected):
    model = tiny_model(name, head, outputs)
    assert isinstance(model, keras.Model)
    assert not model.compiled, "builders must return uncompiled models"
    x, _ = tiny_batch(model, head, outputs)
    y = np.asarray(model(x))
    assert y.shape == (BATCH, *expected)
    if head in ("classification", "language_model"):
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)
    if head == "frames":
        assert (y >= 0).all() and (y <= 1).all()


@pytest.mark.parametrize("name,head,outputs,expected", HEAD_PARAMS)
def test_fit_gives_finite_loss_that_goes_down(name, head, outputs, expected):
    keras.utils.set_random_seed(1)
    model = tiny_model(name, head, outputs)
    model.compile(keras.optimizers.Adam(0.02), loss=LOSS[head])
    x, y = tiny_batch(model, head, outputs)
    first = float(model.train_on_batch(x, y))
    assert np.isfinite(first)
    for _ in range(25):
        last = float(model.train_on_batch(x, y))
    assert np.isfinite(last)
    assert last < first


@pytest.mark.parametrize("name", FAMILIES)
def test_get_config_round_trip(name):
    model = tiny_model(name)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x, _ = tiny_batch(model, zoo.get(name).default_head, 2)
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(model(x)),
                               rtol=1e-6, atol=1e-6)
    assert clone.get_config() == model.get_config()


@pytest.fixture(scope="module")
def reloaded_in_fresh_process(tmp_path_factory):
    """Save every family once, then load all of them in one fresh process
    that imports only ``zoo`` (one interpreter start instead of one each)."""
    folder = tmp_path_factory.mktemp("keras_files")
    expected = {}
    for name in FAMILIES:
        model = tiny_model(name)
        x, _ = tiny_batch(model, zoo.get(name).default_head, 2, seed=3)
        np.save(folder / f"{name}.x.npy", x)
        expected[name] = np.asarray(model(x))
        model.save(folder / f"{name}.keras")
    script = (
        "import json, sys, pathlib, numpy as np, zoo, keras\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "for path in sorted(folder.glob('*.keras')):\n"
        "    model = zoo.load_model(path)\n"  # safe mode
        "    x = np.load(folder / (path.stem + '.x.npy'))\n"
        "    np.save(folder / (path.stem + '.y.npy'), np.asarray(model(x)))\n"
        "print(json.dumps(sorted(sys.modules.keys() & {'experiments', "
        "'tuning'})))\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, str(folder)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    return folder, expected


@pytest.mark.parametrize("name", FAMILIES)
def test_keras_file_round_trip_in_fresh_process(name, reloaded_in_fresh_process):
    folder, expected = reloaded_in_fresh_process
    got = np.load(folder / f"{name}.y.npy")
    np.testing.assert_allclose(got, expected[name], rtol=1e-6, atol=1e-6)


def _saved_gru(folder):
    model = zoo.build_model("gru", (5, 1), 1, units=4)
    model.save(folder / "good.keras")
    return (folder / "good.keras").read_bytes()


def test_broken_keras_files_are_refused_with_the_reason(tmp_path):
    data = _saved_gru(tmp_path)
    cases = {
        "truncated.keras": (data[: len(data) // 2], "no zip directory"),
        "text.keras": (b"month,sales\n2020-01,3\n", "not a .keras archive"),
        # One flipped byte inside the weights: the zip's CRC check catches it.
        "flipped.keras": (None, "fails its checksum"),
    }
    import zipfile
    with zipfile.ZipFile(tmp_path / "good.keras") as archive:
        info = archive.getinfo("model.weights.h5")
    flipped = bytearray(data)
    inside = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    flipped[inside] ^= 0xFF
    cases["flipped.keras"] = (bytes(flipped), "fails its checksum")
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(zoo.ModelFileError, match=reason) as err:
            zoo.load_model(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(zoo.ModelFileError, match="file not found"):
        zoo.load_model(tmp_path / "absent.keras")
    assert zoo.load_model(tmp_path / "good.keras").count_params() > 0


def test_lambda_layer_is_refused_and_its_code_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("LSTM_ZOO_TEST_MARKER", str(marker))
    inputs = keras.Input((5, 1))
    x = zoo.build_model("gru", (5, 1), 1, units=4)(inputs)
    x = keras.layers.Lambda(  # leaves a file behind whenever its code runs
        lambda t: (open(os.environ["LSTM_ZOO_TEST_MARKER"], "w").close(), t * 2)[1])(x)
    keras.Model(inputs, x).save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran the lambda once
    with pytest.raises(zoo.ModelFileError, match="contains a Lambda layer.*safe mode"):
        zoo.load_model(tmp_path / "lambda.keras")
    assert not marker.exists()


def test_cli_inspect_shows_layers_and_refuses_broken_files(tmp_path, capsys):
    from experiments import cli

    data = _saved_gru(tmp_path)
    assert cli.main(["inspect", str(tmp_path / "good.keras")]) == 0
    out = capsys.readouterr().out
    assert "Total params: " in out and re.search(r"gru\w* \[GRU\]: eligible", out)
    (tmp_path / "cut.keras").write_bytes(data[:1000])
    assert cli.main(["inspect", str(tmp_path / "cut.keras")]) == 2
    assert f"error: {tmp_path / 'cut.keras'}: not a .keras archive" in capsys.readouterr().err


@pytest.mark.parametrize("name", FAMILIES)
def test_search_space_keys_are_builder_arguments_with_same_defaults(name):
    info = zoo.get(name)
    space = zoo.search_space(name)
    assert space, f"{name} declares no search space"
    signature = inspect.signature(info.builder.__wrapped__).parameters
    for key, spec in space.items():
        assert key in info.hyperparameters, f"{key} is not a builder argument"
        assert signature[key].default == spec.default, key
        assert isinstance(spec, Int | Float | Choice)
        json.dumps(spec.as_dict())  # plain data


@pytest.mark.parametrize("name", FAMILIES)
def test_default_point_of_search_space_builds(name):
    point = zoo.space.defaults(zoo.search_space(name))
    shape = tiny_shape(name)
    model = zoo.build_model(name, shape, 2, **point)
    assert model.output_shape[0] is None


@pytest.mark.parametrize("name", FAMILIES)
def test_search_space_bounds_build(name):
    """Both ends of every range build: the tuner may propose them."""
    for key, spec in zoo.search_space(name).items():
        values = spec.values if isinstance(spec, Choice) else (spec.low, spec.high)
        for value in values:
            if key == "units":
                value = min(value, 8)  # keep the test tiny
            zoo.build_model(name, tiny_shape(name), 2, **{key: value})


@pytest.mark.parametrize("name", FAMILIES)
def test_cudnn_report_for_defaults_and_recurrent_dropout(name):
    report = zoo.cudnn_report(tiny_model(name))
    assert report, "every family has at least one recurrent layer"
    fused = [r for r in report if r.has_fused_kernel]
    for entry in report:
        if entry.has_fused_kernel:
            assert entry.eligible and entry.reasons == (), str(entry)
        else:
            assert not entry.eligible
            assert "has no fused cuDNN kernel" in entry.reasons[0]
    if not fused:
        return  # e.g. ConvLSTM: there is no fused kernel to lose
    with pytest.warns(zoo.CudnnWarning, match=r"recurrent_dropout=0\.2"):
        model = tiny_model(name, recurrent_dropout=0.2)
    for entry in zoo.cudnn_report(model):
        assert not entry.eligible
        assert "recurrent_dropout=0.2 (needs 0)" in entry.reasons


def test_cudnn_report_names_each_failed_condition():
    inputs = keras.Input((5, 2))
    x = keras.layers.GRU(3, activation="relu", reset_after=False,
                         unroll=True)(inputs)
    report = zoo.cudnn_report(keras.Model(inputs, x))
    assert len(report) == 1 and not report[0].eligible
    reasons = " ".join(report[0].reasons)
    for fragment in ("activation='relu'", "reset_after=False", "unroll=True"):
        assert fragment in reasons


BAD_ARGUMENTS = [
    ({"units": 0}, r"`units` must be an int >= 1; received units=0"),
    ({"units": 2.5}, r"`units` must be an int >= 1; received units=2\.5"),
    ({"dropout": 1.0},
     r"`dropout` must be a number in \[0, 1\); received dropout=1\.0"),
    ({"dropout": -0.1},
     r"`dropout` must be a number in \[0, 1\); received dropout=-0\.1"),
    ({"recurrent_dropout": 1.5},
     r"`recurrent_dropout` must be a number in \[0, 1\)"),
    ({"unit": 8}, r"unknown hyperparameter 'unit'.*did you mean 'units'"),
    ({"head": "bogus"}, r"`head` must be one of \[.*\]; received head='bogus'"),
]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS,
                         ids=[str(k) for k, _ in BAD_ARGUMENTS])
def test_bad_arguments_raise_with_message(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.build_model(name, tiny_shape(name), 2, **kwargs)


@pytest.mark.parametrize("name", FAMILIES)
def test_num_layers_below_one_raises(name):
    if "num_layers" not in zoo.get(name).hyperparameters:
        return  # a single-layer family has no depth to get wrong
    with pytest.raises(ValueError, match=r"`num_layers` must be an int >= 1; "
                       r"received num_layers=0"):
        zoo.build_model(name, tiny_shape(name), 2, num_layers=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_choice_outside_allowed_raises(name):
    for key, spec in zoo.search_space(name).items():
        if isinstance(spec, Choice):
            with pytest.raises(ValueError,
                               match=rf"`{key}` must be .*received {key}='bogus'"):
                zoo.build_model(name, tiny_shape(name), 2, **{key: "bogus"})


@pytest.mark.parametrize("name", FAMILIES)
def test_input_shape_of_wrong_rank_raises(name):
    rank = len(zoo.get(name).input_axes)
    wrong = (6,) * (rank + 1)
    with pytest.raises(ValueError, match=rf"`input_shape` must have rank {rank}"
                       rf".*received input_shape=\(6,"):
        zoo.build_model(name, wrong, 2)


def test_merge_mode_message_lists_allowed_values():
    with pytest.raises(ValueError, match=r"`merge_mode` must be one of "
                       r"\['concat', 'sum', 'mul', 'ave'\]; "
                       r"received merge_mode='max'"):
        zoo.build_model("bidirectional_lstm", (6, 3), 2, merge_mode="max")


def test_classification_needs_two_classes():
    with pytest.raises(ValueError, match=r"`outputs` \(classes for head="
                       r"'classification'\) must be an int >= 2"):
        zoo.build_model("gru", (6, 3), 1, head="classification")


def test_readme_example_forecaster_shape():
    model = zoo.build_model("gru", (24, 1), 12)
    assert model.output_shape == (None, 12)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_fused_conv_lstm_computes_the_same_and_saves_as_plain_keras(dropout, tmp_path):
    from zoo.fused import fuse_conv_lstm

    keras.utils.set_random_seed(1)
    plain = zoo.build_model("conv_lstm", (4, 6, 6, 2), 1, units=4, num_layers=2,
                            dropout=dropout)
    fused = keras.models.clone_model(plain)
    fused.set_weights(plain.get_weights())
    assert fuse_conv_lstm(fused) == 2
    x = np.random.default_rng(0).random((3, 4, 6, 6, 2), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(fused(x)), np.asarray(plain(x)), atol=1e-5)
    if dropout == 0.0:  # same gradients too: training is the same computation
        import tensorflow as tf

        grads = []
        for model in (plain, fused):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(model(x, training=True))
            grads.append(tape.gradient(loss, model.trainable_weights))
        for a, b in zip(*grads, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert fused.get_config() == plain.get_config()
    fused.save(tmp_path / "fused.keras")
    loaded = zoo.load_model(tmp_path / "fused.keras")
    layer = loaded.get_layer("conv_lstm_1")
    assert type(layer) is keras.layers.ConvLSTM2D
    assert type(layer.cell).__name__ == "ConvLSTMCell"
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(plain(x)), atol=1e-5)


JAX_SCRIPT = """
import sys, numpy as np, keras, zoo
from tests.zoo.test_zoo import tiny_model, tiny_batch, LOSS
assert keras.backend.backend() == "jax"
for name in zoo.list_models():
    head = zoo.get(name).default_head
    model = tiny_model(name)
    model.compile("adam", LOSS[head])
    x, y = tiny_batch(model, head, model.output_shape[-1])
    loss = model.fit(x, y, epochs=1, verbose=0).history["loss"]
    assert np.isfinite(loss).all(), (name, loss)
    path = f"{sys.argv[1]}/{name}.keras"
    model.save(path)
    again = zoo.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5, err_msg=name)
    print("ok", name)
"""


@pytest.mark.slow  # trains, or starts a process: the full suite's
def test_every_family_trains_saves_and_loads_on_jax(tmp_path):
    """The same builders on Keras' JAX backend: fit, save, reload in safe
    mode, same predictions. One process for the whole registry."""
    root = str(REPO)
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=root)
    done = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [w for name in FAMILIES for w in ("ok", name)]


@pytest.mark.parametrize("name", zoo.list_models(head="forecast"))
def test_every_forecasting_family_is_a_conditional_branch_of_tune_models_all(name):
    """`tune --models all`: each family is one value of the `family` choice,
    and a trial that picks it builds it with only its own hyperparameters
    active."""
    import keras_tuner as kt

    from tuning.hypermodel import ZooHyperModel

    families = zoo.list_models(head="forecast")
    hypermodel = ZooHyperModel(families, (6, 1), 2)
    hp = kt.HyperParameters()
    hp.Fixed("family", name)  # what a trial that picked it holds
    model = hypermodel.build(hp)
    assert model.name == name
    active = {k.split("/")[0] for k in hp.values if "/" in k and hp.is_active(k)}
    assert active == {name} or not zoo.search_space(name)


@pytest.mark.parametrize("name", FAMILIES)
def test_mixed_precision_keeps_float32_outputs_and_weights(name):
    """Under a mixed policy (what --mixed-precision sets) the layers compute
    in a 16-bit type, yet every head's outputs and the weights are float32,
    and a forward pass gives finite float32 values."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        for head in zoo.get(name).heads:
            model = tiny_model(name, head)
            assert keras.backend.standardize_dtype(model.outputs[0].dtype) == "float32", head
            assert {keras.backend.standardize_dtype(w.dtype) for w in model.weights} == {
                "float32"}, head
            computes = {layer.compute_dtype for layer in model.layers
                        if layer.weights}
            assert "bfloat16" in computes, head
        x, _ = tiny_batch(model, head, HEAD_CASES[head][0][0])
        y = model.predict_on_batch(x)
        assert y.dtype == np.float32 and np.isfinite(y).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


AUTOREGRESSIVE_FAMILIES = [n for n in FAMILIES if "autoregressive" in zoo.get(n).hyperparameters]


def test_every_family_with_a_forecast_head_but_seq2seq_takes_autoregressive():
    """The linear autoregressive term exists for every forecasting family
    whose head is the zoo's (seq2seq decodes step by step instead, es_rnn
    starts from its exponential smoothing), off by default in the builders
    (the forecast task turns it on)."""
    forecasting = set(zoo.list_models(head="forecast"))
    assert set(AUTOREGRESSIVE_FAMILIES) == forecasting - {"seq2seq_lstm", "es_rnn"}
    for name in AUTOREGRESSIVE_FAMILIES:
        assert zoo.get(name).defaults["autoregressive"] is False
        assert "autoregressive" not in tiny_model(name).layers[-1].name


@pytest.mark.parametrize("name", AUTOREGRESSIVE_FAMILIES)
@pytest.mark.parametrize("outputs", [2, (2, 3)])
def test_autoregressive_model_starts_as_its_linear_term(name, outputs, tmp_path):
    """With ``autoregressive=True`` the forecast is a linear function of the
    window plus the network's output, which starts at zero: a new model
    predicts exactly what its ``autoregressive`` layer computes. Same output
    shape as without it, and the saved file loads in safe mode."""
    plain = tiny_model(name, outputs=outputs)
    model = tiny_model(name, outputs=outputs, autoregressive=True)
    assert model.output_shape == plain.output_shape
    x, _ = tiny_batch(model, "forecast", outputs)
    kernel, bias = model.get_layer("autoregressive").get_weights()
    linear = (x.reshape(BATCH, -1) @ kernel + bias).reshape(BATCH, *model.output_shape[1:])
    np.testing.assert_allclose(model.predict_on_batch(x), linear, rtol=1e-5, atol=1e-5)
    path = tmp_path / "ar.keras"
    model.save(path)
    np.testing.assert_allclose(zoo.load_model(path).predict_on_batch(x),
                               model.predict_on_batch(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", AUTOREGRESSIVE_FAMILIES)
def test_autoregressive_is_refused_where_it_cannot_apply(name):
    where = zoo.get(name).builder.__name__
    with pytest.raises(ValueError, match=rf"{where}: `autoregressive` must be True or False; "
                                         r"received autoregressive=1"):
        tiny_model(name, autoregressive=1)
    with pytest.raises(ValueError, match=r"`autoregressive` takes head='forecast' only; "
                                         r"received autoregressive=True with head='classif"):
        tiny_model(name, head="classification", autoregressive=True)
    with pytest.raises(ValueError, match="`autoregressive` needs a window of fixed length"):
        zoo.build_model(name, (None, 3), 2, units=4, autoregressive=True)
