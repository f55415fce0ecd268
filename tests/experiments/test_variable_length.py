"""Sequences of different lengths: padded on the right, masked, served."""

import numpy as np
import pandas as pd
import pytest

import zoo
from experiments.config import RunConfig
from experiments.sequences import PAD_VALUE, pad


def last_step_sequences(path, count=400, seed=0):
    """Long-form CSV whose label depends only on each sequence's last real
    step: "up" if its value is positive. Lengths 3 to 20."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        n = int(rng.integers(3, 21))
        values = rng.choice([-1.0, 1.0], n) + 0.1 * rng.standard_normal(n)
        label = "up" if values[-1] > 0 else "down"
        rows += [{"id": f"s{i:04d}", "step": t, "value": values[t],
                  "other": rng.standard_normal(), "label": label} for t in range(n)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_pad_is_right_padding_and_max_length_keeps_the_last_steps():
    sequences = [np.arange(1, 4, dtype="float32")[:, None] * [1, 10],
                 np.arange(1, 7, dtype="float32")[:, None] * [1, 10]]
    x, lengths, cut = pad(sequences)
    assert x.shape == (2, 6, 2) and list(lengths) == [3, 6] and cut == 0
    np.testing.assert_array_equal(x[0, :3, 0], [1, 2, 3])
    assert np.isnan(x[0, 3:]).all()
    x, lengths, cut = pad(sequences, max_length=4)
    assert x.shape == (2, 4, 2) and list(lengths) == [3, 4] and cut == 1
    np.testing.assert_array_equal(x[1, :, 0], [3, 4, 5, 6])  # the last four


@pytest.mark.slow
def test_masked_model_learns_the_last_real_step_and_unmasked_does_worse(tmp_path):
    """The same GRU, the same data, epochs and seed: with the mask it reads
    each sequence's last real step; fed the padding (zeros, Keras' default)
    without a mask it does measurably worse. Then the served model takes raw
    sequences of any length."""
    import keras
    import mlflow

    from experiments.train import run_training

    csv = last_step_sequences(tmp_path / "steps.csv")
    db = tmp_path / "mlflow.db"
    cfg = RunConfig(model="gru", csv=str(csv), id_col="id", label_col="label",
                    time_col="step", epochs=12, batch_size=32, seed=1,
                    hyperparameters={"units": 16}, tracking_uri=f"sqlite:///{db}")
    result = run_training(cfg)
    task = result.task
    assert task.input_shape == (20, 2) and task.params()["padded"]
    assert task.builder_arguments() == {"mask_value": PAD_VALUE}
    masked = result.metrics["test_accuracy"]

    def no_mask(x):
        return np.where(x == PAD_VALUE, 0.0, x)

    keras.utils.set_random_seed(1)
    plain = zoo.build_model("gru", task.input_shape, task.outputs, head="classification",
                            units=16)
    plain.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    plain.fit(no_mask(task.train.x), task.train.y, epochs=12, batch_size=32, verbose=0,
              validation_data=(no_mask(task.val.x), task.val.y))
    unmasked = float(np.mean(plain.predict(no_mask(task.test.x), verbose=0).argmax(-1)
                             == task.test.y))
    print(f"accuracy with the mask {masked:.3f}, without {unmasked:.3f}")
    assert masked >= 0.95
    assert unmasked <= masked - 0.1

    # Served: raw long-form rows, two sequences of different lengths.
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    served = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    rows = pd.DataFrame({"id": ["a"] * 3 + ["b"] * 7, "step": [*range(3), *range(7)],
                         "value": [1, 1, -1, -1, -1, -1, -1, -1, -1, 1.0],
                         "other": 0.0})
    out = served.predict(rows)
    assert list(out["label"]) == ["down", "up"]


def test_a_family_that_cannot_skip_padding_is_refused(tmp_path):
    from experiments.errors import ConfigError
    from experiments.train import prepare_run

    csv = last_step_sequences(tmp_path / "steps.csv", count=40)
    cfg = RunConfig(model="cnn_lstm", csv=str(csv), id_col="id", label_col="label",
                    time_col="step", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    with pytest.raises(ConfigError, match=r"cnn_lstm cannot serve the classification task "
                       r".*different lengths \(3 to \d+ steps\).*cannot skip padding.*'gru'"):
        prepare_run(cfg)


def test_max_length_cuts_and_says_how_many(tmp_path, capsys):
    from experiments import cli

    csv = last_step_sequences(tmp_path / "steps.csv", count=60)
    code = cli.main(["train", "--model", "gru", "--csv", str(csv), "--id-col", "id",
                     "--label-col", "label", "--time-col", "step", "--max-length", "10",
                     "--epochs", "1", "--units", "4",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    out = capsys.readouterr().out
    longer = pd.read_csv(csv).groupby("id").size().gt(10).sum()
    assert code == 0
    assert f"note: {longer} of 60 sequences were longer than --max-length 10" in out
