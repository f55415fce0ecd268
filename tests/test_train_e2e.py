"""End to end: the CLI trains, evaluates and records a complete MLflow run."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from experiments import cli
from tests.helpers import all_runs, client_for, run_cli_process, wait_for_training

pytestmark = pytest.mark.slow
TINY = ["--epochs", "3", "--units", "4", "--batch-size", "16"]


def check_complete_run(db, run, *, family, dataset):
    client = client_for(db)
    assert run.info.status == "FINISHED"
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    for key in ("model", "dataset", "task", "window", "horizon", "n_val", "n_test",
                "transforms", "season", "epochs", "batch_size", "learning_rate",
                "seed", "units", "dropout", "recurrent_dropout"):
        assert key in p, key
    assert p["model"] == family and p["units"] == "4"
    for key in ("test_mae", "test_rmse", "test_mape", "test_smape", "test_mase",
                "test_naive_rmse", "test_seasonal_naive_rmse",
                "test_skill_vs_seasonal_naive", "val_rmse"):
        assert np.isfinite(m[key]), key
    assert m["test_skill_vs_seasonal_naive"] == pytest.approx(
        1 - m["test_rmse"] / m["test_seasonal_naive_rmse"])
    for key in ("family", "dataset", "task", "keras_backend", "device",
                "cudnn_eligible", "git_commit", "lstm_zoo_version", "seed"):
        assert key in t, key
    assert t["family"] == family and t["dataset"] == dataset
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [h.step for h in history] == list(range(len(history))) and history
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == len(history)
    # A constant learning rate is a param only: no metric of the same name.
    assert "learning_rate" not in m and "lr" not in m
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "run_config.json", "model"} <= names
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/forecast.png", "plots/learning_curves.png"}
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/MLmodel" in model_files and "model/input_example.json" in model_files
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest


def test_train_airline_records_a_complete_run(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    code = cli.main(["train", "--model", "stacked_lstm", "--data", "airline", *TINY,
                     "--tracking-uri", f"sqlite:///{db}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "seasonal naive" in out and "skill vs seasonal naive" in out
    (run,) = all_runs(db)
    check_complete_run(db, run, family="stacked_lstm", dataset="airline")
    assert client_for(db).get_experiment(run.info.experiment_id).name == "airline"
    assert run.data.params["transforms"] == "log,diff"


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A user CSV with two targets and an extra feature, trained once."""
    folder = tmp_path_factory.mktemp("csv_run")
    t = np.arange(120)
    rng = np.random.default_rng(0)
    rows = ["date,load,temp,price"]
    for i, day in enumerate(np.datetime64("2024-01-01") + t):
        rows.append(f"{day},{50 + 10 * np.sin(2 * np.pi * i / 7) + rng.normal():.3f},"
                    f"{15 + 5 * np.cos(2 * np.pi * i / 7):.3f},{20 + i * 0.1:.2f}")
    path = folder / "energy.csv"
    path.write_text("\n".join(rows) + "\n")
    db = folder / "mlflow.db"
    done = run_cli_process(
        "train", "--model", "gru", "--csv", str(path), "--target", "load", "temp",
        "--features", "price", "--time-col", "date", "--window", "14",
        "--horizon", "3", "--test-size", "20", "--val-size", "20", *TINY,
        "--tracking-uri", f"sqlite:///{db}", cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(db)
    return db, run, path, done.stdout


def test_train_user_csv_with_two_targets(csv_run):
    db, run, path, stdout = csv_run
    check_complete_run(db, run, family="gru", dataset="energy")
    assert run.data.params["targets"] == "load,temp"
    assert run.data.params["season"] == "7"  # inferred from daily timestamps
    local = client_for(db).download_artifacts(run.info.run_id, "run_config.json")
    with open(local) as f:
        config = json.load(f)
    assert config["resolved"]["window"] == 14
    assert set(config["scaler"]["mean"]) == {"load", "temp", "price"}


def test_logged_model_loads_with_pyfunc_in_fresh_process(csv_run, tmp_path):
    db, run, _, _ = csv_run
    script = (
        "import sys, numpy as np, mlflow\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.pyfunc.load_model(f'runs:/{sys.argv[2]}/model')\n"
        "x = np.random.default_rng(0).random((5, 14, 3)).astype('float32')\n"
        "y = np.asarray(model.predict(x))\n"
        "assert y.shape == (5, 3, 2), y.shape\n"
        "assert np.isfinite(y).all()\n"
        "print('ok', y.shape)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, f"sqlite:///{db}",
                           run.info.run_id], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok (5, 3, 2)" in done.stdout


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_during_training_ends_the_run_killed(signum, code, tmp_path):
    from experiments import tracking

    db = tmp_path / "mlflow.db"
    tracking.init_store(f"sqlite:///{db}")  # we poll it while the child writes
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "train", "--model", "gru",
         "--data", "sine", "--epochs", "100000", "--patience", "100000",
         "--units", "4", "--tracking-uri", f"sqlite:///{db}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        wait_for_training(db, proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-2000:]
    (run,) = all_runs(db)
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None
    expected = "SIGTERM" if signum == signal.SIGTERM else "KeyboardInterrupt"
    assert expected in run.data.tags["error"]


def test_same_seed_gives_same_metrics(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _ in range(2):
        assert cli.main(["train", "--model", "gru", "--data", "sine", *TINY,
                         "--seed", "7", "--tracking-uri", uri]) == 0
    a, b = all_runs(tmp_path / "mlflow.db")
    assert a.data.metrics["test_rmse"] == b.data.metrics["test_rmse"]
    assert a.data.metrics["val_mae"] == b.data.metrics["val_mae"]


def test_rolling_origin_folds_average_per_fold_metrics(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    assert cli.main(["train", "--model", "vanilla_lstm", "--data", "sine", *TINY,
                     "--folds", "3", "--test-size", "30",
                     "--tracking-uri", f"sqlite:///{db}"]) == 0
    (run,) = all_runs(db)
    m = run.data.metrics
    folds = [m[f"fold{k}_test_rmse"] for k in (1, 2, 3)]
    assert m["test_rmse"] == pytest.approx(np.mean(folds))
    assert len(set(folds)) == 3


def test_compare_prints_leaderboard_with_baselines_and_skips_conv_lstm(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    code = cli.main(["compare", "--data", "airline", "--models",
                     "gru,vanilla_lstm,conv_lstm", *TINY,
                     "--tracking-uri", f"sqlite:///{db}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped conv_lstm" in out
    lines = [line for line in out.splitlines() if line.split()[:1]
             and line.split()[0].isdigit()]
    names = [line.split()[1] for line in lines]
    assert sorted(names) == sorted(["gru", "vanilla_lstm", "(naive)", "(seasonal"])
    rmse = [float(line.split()[3] if line.split()[1] == "(seasonal"
                  else line.split()[2]) for line in lines]
    assert rmse == sorted(rmse)
    assert len(all_runs(db)) == 2


def test_train_runs_on_the_jax_backend(tmp_path):
    """The lever README's Speed section gives for small models: the same
    command on Keras' JAX backend, logged the same way."""

    done = run_cli_process("train", "--model", "vanilla_lstm", "--data", "airline",
                           "--epochs", "2", "--units", "8",
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                           cwd=tmp_path, env_extra={"KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(tmp_path / "mlflow.db")
    assert run.info.status == "FINISHED"
    assert run.data.tags["keras_backend"] == "jax"
    assert "test_rmse" in run.data.metrics
