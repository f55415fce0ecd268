"""Frames, character-level language model and sequence classification, end to
end through the same CLI, pipeline and tracking as forecasting."""

import re

import numpy as np
import pytest

from experiments import cli
from experiments.config import RunConfig
from experiments.tasks import classification as classify
from experiments.tasks import frames, load_tasks
from experiments.tasks import language_model as text
from tests.helpers import all_runs, client_for, run_cli_process

pytestmark = pytest.mark.slow
DIGITS = ["--data", "moving_digits", "--data-option", "count=40", "--data-option",
          "size=12", "--data-option", "length=5"]
MEMORY = ["--data", "memory", "--data-option", "count=90", "--data-option", "length=12"]
QUICK = ["--epochs", "2", "--units", "4"]


def only_run(db):
    (run,) = all_runs(db)
    assert run.info.status == "FINISHED"
    return run


def artifacts(db, run, folder=""):
    return {a.path for a in client_for(db).list_artifacts(run.info.run_id, folder)}


def test_generated_datasets_are_deterministic():
    a = frames.make_moving_digits(count=5, size=12, length=4, seed=3)
    b = frames.make_moving_digits(count=5, size=12, length=4, seed=3)
    c = frames.make_moving_digits(count=5, size=12, length=4, seed=4)
    assert a.shape == (5, 4, 12, 12, 1) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    (x1, y1), (x2, y2) = classify.make_memory(seed=1), classify.make_memory(seed=1)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    # The class is readable only at the marker step.
    assert (x1[np.arange(len(y1)), 2, 1 + y1] == 1).all()
    assert np.bincount(y1).min() == np.bincount(y1).max()


def test_frames_run_has_metrics_baseline_and_artifacts(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    code = cli.main(["train", "--model", "conv_lstm", *DIGITS, *QUICK,
                     "--tracking-uri", f"sqlite:///{db}"])
    assert code == 0
    assert "copy last frame" in capsys.readouterr().out
    run = only_run(db)
    m = run.data.metrics
    for key in ("test_mse", "test_bce", "test_psnr", "test_ssim", "test_copy_last_mse",
                "test_copy_last_psnr", "test_copy_last_ssim"):
        assert np.isfinite(m[key]), key
    assert -1 <= m["test_ssim"] <= 1 and m["test_psnr"] > 0
    assert run.data.tags["task"] == "frames"
    assert {"plots/frames.png", "plots/predicted.gif"} <= artifacts(db, run, "plots")
    # mlflow.keras, logged as a model of the run (model_id set: the UI lists it).
    (output,) = run.outputs.model_outputs
    logged = client_for(db).get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id
    files = {a.path for a in client_for(db).list_logged_model_artifacts(output.model_id)}
    assert {"MLmodel", "input_example.json", "data"} <= files, files


def test_frame_metrics_match_known_values():
    truth = np.zeros((1, 1, 12, 12, 1), "float32")
    truth[..., 3:9, 3:9, :] = 1.0
    perfect = frames.frame_metrics(truth, truth)
    assert perfect["mse"] == 0 and perfect["ssim"] == pytest.approx(1.0)
    noisy = frames.frame_metrics(truth, np.clip(truth + 0.1, 0, 1))
    # PSNR = 10 log10(1 / mse) with data range 1.
    assert noisy["psnr"] == pytest.approx(10 * np.log10(1 / noisy["mse"]), rel=1e-4)


def test_vocabulary_never_sees_test_text():
    body = "abc def ghi " * 60
    task = text.LanguageModelTask("t", "t", body + "xyz§" * 30, window=8, val_size=0.1,
                         test_size=0.1)
    assert "§" not in task.vocab and "x" not in task.vocab
    assert task.vocab[0] == text.UNK
    assert (task.test_ids == 0).any()  # unseen characters became <unk>


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, timemachine):
    folder = tmp_path_factory.mktemp("lm")
    db = folder / "mlflow.db"
    done = run_cli_process(
        "train", "--model", "gru", "--text", str(timemachine),
        "--data-option", "max_chars=12000", "--window", "32", "--epochs", "2",
        "--units", "16", "--clipnorm", "1.0", "--tracking-uri", f"sqlite:///{db}",
        cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, db, only_run(db), done.stdout


def test_language_model_run(lm_run):
    folder, db, run, stdout = lm_run
    m = run.data.metrics
    for key in ("test_perplexity", "test_bits_per_char", "test_unigram_perplexity",
                "test_bigram_perplexity", "val_perplexity"):
        assert np.isfinite(m[key]) and m[key] > 0, key
    assert m["test_bits_per_char"] == pytest.approx(np.log2(m["test_perplexity"]))
    assert m["test_bigram_perplexity"] < m["test_unigram_perplexity"]
    assert run.data.params["clipnorm"] == "1.0"
    assert {"samples.txt", "vocab.json"} <= artifacts(db, run)
    assert "unigram" in stdout and "bigram" in stdout
    # The served model: prompts in, text out, with generate's parameters.
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    prompts = pd.DataFrame({"prompt": ["the time", "it was"]})
    out = model.predict(prompts, params={"length": 12, "temperature": 0.5, "seed": 3})
    assert list(out["prompt"]) == ["the time", "it was"]
    assert out["text"][0].startswith("the time") and out["text"][1].startswith("it was")
    assert [len(t) for t in out["text"]] == [8 + 12, 6 + 12]
    again = model.predict(prompts, params={"length": 12, "temperature": 0.5, "seed": 3})
    assert list(again["text"]) == list(out["text"])  # a seed repeats the sample


def test_generate_prints_text_from_a_logged_model(lm_run):
    folder, db, run, _ = lm_run
    done = run_cli_process("generate", "--run-id", run.info.run_id, "--prompt",
                           "time traveller", "--length", "40", "--seed", "0",
                           "--tracking-uri", f"sqlite:///{db}", cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    generated = done.stdout[:-1]  # print's newline; samples may hold others
    assert generated.startswith("time traveller")
    assert len(generated) == len("time traveller") + 40


def test_generate_on_a_forecast_run_exits_2(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    assert cli.main(["train", "--model", "gru", "--data", "sine", *QUICK,
                     "--tracking-uri", f"sqlite:///{db}"]) == 0
    run = only_run(db)
    capsys.readouterr()
    assert cli.main(["generate", "--run-id", run.info.run_id,
                     "--tracking-uri", f"sqlite:///{db}"]) == 2
    assert "has no language model" in capsys.readouterr().err


def test_classification_from_npz(tmp_path, capsys):
    x, y = classify.make_memory(count=90, length=10)
    labels = np.array(["left", "right", "up"])[y]
    np.savez(tmp_path / "moves.npz", x=x, y=labels)
    db = tmp_path / "mlflow.db"
    assert cli.main(["train", "--model", "stacked_lstm", "--npz",
                     str(tmp_path / "moves.npz"), *QUICK,
                     "--tracking-uri", f"sqlite:///{db}"]) == 0
    assert "majority class" in capsys.readouterr().out
    run = only_run(db)
    for key in ("test_accuracy", "test_macro_f1", "test_log_loss",
                "test_majority_accuracy", "test_majority_log_loss"):
        assert key in run.data.metrics
    assert "plots/confusion_matrix.png" in artifacts(db, run, "plots")
    # Arrays in (as the archive holds them), label names and probabilities out.
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    out = model.predict(x[:4])
    assert list(out.columns) == ["sequence", "label", "prob_left", "prob_right", "prob_up"]
    assert set(out["label"]) <= {"left", "right", "up"}
    with pytest.raises(ValueError, match=r"shaped \(n, 10, 4\); received shape \(4, 9, 4\)"):
        model.predict(x[:4, :9])


def test_classification_split_is_by_sequence_and_stratified():
    cfg = RunConfig(data="memory", dataset_options={"count": 90, "length": 10})
    _, (task,) = load_tasks(cfg)
    ids = task.ids
    assert not set(ids["train"]) & set(ids["val"])
    assert not set(ids["train"]) & set(ids["test"])
    assert not set(ids["val"]) & set(ids["test"])
    for part in (task.train, task.val, task.test):
        assert set(part.y) == {0, 1, 2}


def long_csv(path, lengths=None):
    rows = ["seq,step,a,b,label"]
    rng = np.random.default_rng(0)
    for i in range(30):
        n = (lengths or {}).get(i, 6)
        for t in range(n):
            rows.append(f"s{i},{t},{rng.normal():.3f},{rng.normal():.3f},"
                        f"{'yes' if i % 2 else 'no'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_classification_from_long_csv(tmp_path):
    path = long_csv(tmp_path / "long.csv")
    db = tmp_path / "mlflow.db"
    assert cli.main(["train", "--model", "gru", "--csv", str(path), "--id-col", "seq",
                     "--time-col", "step", "--label-col", "label", *QUICK,
                     "--tracking-uri", f"sqlite:///{db}"]) == 0
    run = only_run(db)
    assert run.data.params["sequence_length"] == "6"
    assert run.data.params["n_features"] == "2"
    # The served model reads the CSV's own layout, rows in any order, and
    # answers with the labels' names and each class' probability.
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    rows = pd.read_csv(path).drop(columns="label")
    wanted = rows[rows.seq.isin(["s3", "s4"])].iloc[::-1]
    out = model.predict(wanted)
    assert list(out["seq"]) == ["s3", "s4"] and set(out["label"]) <= {"no", "yes"}
    np.testing.assert_allclose(out["prob_no"] + out["prob_yes"], 1, rtol=1e-5)
    # The same sequences in the trained order give the same answer.
    in_order = model.predict(rows[rows.seq.isin(["s3", "s4"])])
    pd.testing.assert_frame_equal(out, in_order)
    with pytest.raises(ValueError, match=r"sequence 's4' \(column 'seq'\) has 5 rows; "
                                         r"the model takes 6"):
        model.predict(wanted.iloc[1:])
    with pytest.raises(ValueError, match=r"sequences are missing column 'b'"):
        model.predict(wanted.drop(columns="b"))


BAD_TASK_INPUT = [
    (["--model", "gru", *DIGITS], r"gru cannot serve the frames task.*\['conv_lstm'\]"),
    (["--model", "bidirectional_lstm", "--data", "timemachine"],
     r"bidirectional_lstm cannot serve the language_model task"),
    (["--model", "conv_lstm", *MEMORY], r"conv_lstm cannot serve the classification"),
    (["--model", "conv_lstm", "--npy", "NPY3D"], r"frames must have shape \(samples, "
     r"time, rows, cols\[, channels\]\); received shape \(4, 5, 6\)"),
    (["--model", "gru", "--npz", "NPZ"], r"no array 'y'; the archive has \['x'\]"),
    (["--model", "cnn_lstm", "--csv", "UNEVEN", "--id-col", "seq", "--label-col", "label"],
     r"cnn_lstm cannot serve the classification task .*different lengths \(4 to 6 "
     r"steps\) and cnn_lstm cannot skip padding"),
    (["--model", "gru", "--text", "LATIN1"], r"line 2: not UTF-8 text"),
]


@pytest.mark.parametrize("flags,message", BAD_TASK_INPUT,
                         ids=[f[1] + "-" + f[3] for f, _ in BAD_TASK_INPUT])
def test_task_mismatch_and_bad_files_exit_2(flags, message, tmp_path, capsys,
                                            monkeypatch):
    monkeypatch.setenv("LSTM_ZOO_CACHE", str(tmp_path / "cache"))
    np.save(tmp_path / "f.npy", np.zeros((4, 5, 6)))
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 5, 2)))
    long_csv(tmp_path / "uneven.csv", lengths={3: 4})
    (tmp_path / "latin1.txt").write_bytes(b"first line\ncaf\xe9\n")
    if "--data" in flags and "timemachine" in flags:
        # No network in the tests: the shipped excerpt stands in as the cached file.
        import shutil

        from tests.conftest import TEST_DATA
        (tmp_path / "cache").mkdir()
        shutil.copy(TEST_DATA / "timemachine-chapter1.txt",
                    tmp_path / "cache" / "timemachine.txt")
    files = {"NPY3D": tmp_path / "f.npy", "NPZ": tmp_path / "x.npz",
             "UNEVEN": tmp_path / "uneven.csv", "LATIN1": tmp_path / "latin1.txt"}
    flags = [str(files.get(f, f)) for f in flags]
    db = tmp_path / "mlflow.db"
    assert cli.main(["train", *flags, "--tracking-uri", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not db.exists()


def test_compare_on_classification_skips_families_without_the_head(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    assert cli.main(["compare", *MEMORY, "--models", "gru,conv_lstm", *QUICK,
                     "--tracking-uri", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out
    assert ("skipped conv_lstm: cannot serve the classification task: it needs the "
            "'classification' head") in out
    assert "(majority class)" in out and "gru" in out


def test_tune_language_model_searches_clipping(tmp_path, timemachine):
    from tuning.search import SearchConfig, run_search

    run = RunConfig(text=str(timemachine), window=32, epochs=1,
                    dataset_options={"max_chars": 8000},
                    tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = run_search(SearchConfig(run=run, models=("gru",), max_trials=2,
                                     directory=str(tmp_path / "tuner")))
    assert result.task.kind == "language_model"
    kids = [r for r in all_runs(tmp_path / "mlflow.db")
            if r.data.tags.get("run_kind") == "trial"]
    assert len(kids) == 2 and all("clipnorm" in k.data.params for k in kids)
    assert "test_perplexity" in result.test_metrics
