"""End to end: the CLI trains, evaluates and records a complete MLflow run."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from experiments import cli
from tests.helpers import (
    all_runs,
    client_for,
    popen_from_a_terminal,
    run_cli_process,
    wait_for_training,
)

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
    assert {"plots", "run_config.json", "test_forecasts.csv"} <= names
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/forecast.png", "plots/learning_curves.png"}
    # The model is a logged model of the run (the UI's "Logged models").
    (output,) = run.outputs.model_outputs
    assert client.get_logged_model(output.model_id).source_run_id == run.info.run_id
    model_files = {a.path for a in client.list_logged_model_artifacts(output.model_id)}
    assert {"MLmodel", "input_example.json", "artifacts"} <= model_files, model_files
    for level in (80, 95):
        assert 0 <= m[f"test_coverage_{level}"] <= 1
        # M4's interval score is at least the width (misses only add to it).
        assert 0 < m[f"test_width_{level}"] <= m[f"test_msis_{level}"]
    # The served forecast's CRPS (its quantiles' loss, metrics.interval_crps).
    assert 0 < m["test_scaled_crps"] < np.inf
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
    assert run.data.params["transforms"] == "log,diff,seasonal_diff"


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
        # The network served alone: its served path is what the logged test
        # forecasts are (tests/experiments/forecasting/test_combination.py
        # serves combinations).
        "--combine", "none",
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


def test_served_model_from_raw_history_equals_the_runs_test_forecasts(csv_run, tmp_path):
    """In a fresh process, elsewhere than the run's folder: the logged pyfunc
    model, given the CSV's rows up to each test origin, returns the forecasts
    the run logged for its test period (in the data's own units)."""
    db, run, path, _ = csv_run
    script = (
        "import sys, numpy as np, pandas as pd, mlflow\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.pyfunc.load_model(f'runs:/{sys.argv[2]}/model')\n"
        "data = pd.read_csv(sys.argv[3])\n"
        "logged = pd.read_csv(mlflow.artifacts.download_artifacts(\n"
        "    f'runs:/{sys.argv[2]}/test_forecasts.csv'))\n"
        "worst = 0.0\n"
        "for origin, rows in logged.groupby('origin'):\n"
        "    end = int(np.flatnonzero(pd.to_datetime(data.date) == pd.Timestamp(origin))[0])\n"
        "    out = model.predict(data.iloc[:end + 1])\n"
        "    for r in rows.itertuples():\n"
        "        got = out[r.target].iloc[r.step - 1]\n"
        "        worst = max(worst, abs(got - r.forecast) / abs(r.forecast))\n"
        "print('origins', logged.origin.nunique(), 'worst', worst)\n"
        "assert worst < 1e-5, worst\n"
        "# The same histories as one request, a series each (unique_id):\n"
        "ends = {o: int(np.flatnonzero(pd.to_datetime(data.date) == pd.Timestamp(o))[0])\n"
        "        for o in logged.origin.unique()}\n"
        "batch = model.predict(pd.concat([data.iloc[:e + 1].assign(unique_id=o)\n"
        "                                 for o, e in ends.items()]))\n"
        "assert list(batch.unique_id.unique()) == list(ends)\n"
        "for r in logged.itertuples():\n"
        "    got = batch[batch.unique_id == r.origin][r.target].iloc[r.step - 1]\n"
        "    assert abs(got - r.forecast) <= 1e-5 * abs(r.forecast), (r, got)\n"
        "print('batch ok')\n"
        "# Whole numbers, as pd.read_csv types them (int64), are read as numbers;\n"
        "# a cell that is no number is named by the reader, not by MLflow's schema.\n"
        "whole = data.assign(load=data.load.round().astype('int64'))\n"
        "assert np.isfinite(model.predict(whole)['load']).all()\n"
        "bad = data.astype({'load': object})\n"
        "bad.loc[len(bad) - 2, 'load'] = 'n/a'\n"
        "try:\n"
        "    model.predict(bad)\n"
        "    raise SystemExit('a text cell was forecast')\n"
        "except ValueError as err:\n"
        "    assert \"column 'load', row\" in str(err) and 'n/a' in str(err), err\n"
        "print('types ok')\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, f"sqlite:///{db}",
                           run.info.run_id, str(path)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "origins 18 worst" in done.stdout and "batch ok" in done.stdout
    assert "types ok" in done.stdout


def test_forecast_command_continues_a_csv_and_writes_table_and_plot(csv_run, tmp_path,
                                                                   capsys):
    db, run, path, _ = csv_run
    uri = f"sqlite:///{db}"
    out, png = tmp_path / "next.csv", tmp_path / "next.png"
    code = cli.main(["forecast", "--run-id", run.info.run_id, "--csv", str(path),
                     "--out", str(out), "--plot", str(png), "--tracking-uri", uri])
    printed = capsys.readouterr().out
    assert code == 0
    table = pd.read_csv(out)
    assert list(table["date"]) == ["2024-04-30", "2024-05-01", "2024-05-02"]
    assert {"load", "temp", "load_lower_80", "temp_upper_95"} <= set(table.columns)
    assert (table["load_lower_95"] <= table["load_lower_80"]).all()
    assert (table["load_lower_80"] < table["load"]).all()
    assert (table["load"] < table["load_upper_80"]).all()
    assert png.stat().st_size > 10_000 and "2024-05-02" in printed
    # Without --csv it continues the data the model was trained on: the same file.
    assert cli.main(["forecast", "--run-id", run.info.run_id, "--out", str(out),
                     "--tracking-uri", uri]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), table)
    # Past the horizon the feature 'price' would be needed: refused, named.
    capsys.readouterr()
    assert cli.main(["forecast", "--run-id", run.info.run_id, "--steps", "4",
                     "--tracking-uri", uri]) == 2
    assert "['price']" in capsys.readouterr().err


def test_mlflow_models_serve_answers_raw_history_as_pyfunc_does(csv_run, tmp_path):
    """The real server (`lstm-zoo serve`, i.e. `mlflow models serve
    --env-manager local`): a POST of raw CSV rows returns the numbers of
    `pyfunc.load_model(...).predict` on the same rows."""
    import concurrent.futures
    import json
    import socket
    import time
    import urllib.error
    import urllib.request

    import mlflow

    db, run, path, _ = csv_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rows = pd.read_csv(path).tail(30)
    # A small request limit, so that a request over it stays small here.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", LSTM_ZOO_MAX_REQUEST_ROWS="100")
    server = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "serve", "--model",
         f"runs:/{run.info.run_id}/model", "--port", str(port),
         "--tracking-uri", f"sqlite:///{db}"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert server.poll() is None, server.stderr.read()[-3000:]
                assert time.monotonic() < deadline, "the server did not start in 240 s"
                time.sleep(1)
        def post(frame):
            body = {"dataframe_split": frame.to_dict(orient="split", index=False)}
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(),
                {"Content-Type": "application/json"})
            return urllib.request.urlopen(request, timeout=60)

        served = pd.DataFrame(json.loads(post(rows).read())["predictions"])
        # Bad requests: HTTP 400 with the model's own message, and nothing of
        # the server (no stack trace, file paths or source lines); a request
        # over the size limit is refused naming it; the server goes on.
        for bad, said in ((rows.tail(3), "history has 3 rows; the model needs at least 14"),
                          (rows.drop(columns=["price"]), "history is missing column 'price'"),
                          (pd.concat([rows] * 4), "the request holds 120 rows; one request "
                                                  "may hold at most 100")):
            with pytest.raises(urllib.error.HTTPError) as refused:
                post(bad)
            assert refused.value.code == 400
            answer = json.loads(refused.value.read().decode())
            assert said in answer["message"]
            assert "stack_trace" not in answer and answer["error_code"] == "INVALID_PARAMETER_VALUE"
            assert "Traceback" not in answer["message"] and ".py" not in answer["message"]
        again = pd.DataFrame(json.loads(post(rows).read())["predictions"])
        pd.testing.assert_frame_equal(again, served)
        # Requests answered at the same time (in the server's threads) each
        # get their own answer.
        histories = [pd.read_csv(path).iloc[k:k + 30] for k in range(8)]
        alone = [pd.DataFrame(json.loads(post(h).read())["predictions"]) for h in histories]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda h: pd.DataFrame(
                json.loads(post(h).read())["predictions"]), histories * 2))
        for got, expected in zip(together, alone * 2, strict=True):
            pd.testing.assert_frame_equal(got, expected, rtol=1e-5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    local = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(rows)
    assert list(served.columns) == list(local.columns)
    assert list(pd.to_datetime(served["date"])) == list(local["date"])
    numbers = [c for c in local.columns if c != "date"]
    np.testing.assert_allclose(served[numbers].to_numpy(float),
                               local[numbers].to_numpy(float), rtol=1e-6)


def test_refit_model_has_learned_the_last_observations(tmp_path):
    """`train --refit`: the served model is fit again on all the data for the
    epochs early stopping chose, so its one-step error over the final months
    (which the train-only model never saw) is lower; the metrics logged stay
    those of the train-only model."""
    import mlflow

    from experiments.config import RunConfig
    from experiments.train import run_training

    db = tmp_path / "mlflow.db"
    result = run_training(RunConfig(
        model="gru", data="airline", horizon=1, epochs=40, patience=10, batch_size=16,
        hyperparameters={"units": 16}, refit=True, tracking_uri=f"sqlite:///{db}"))
    task, p = result.task, result.task.prepared
    truth = p.truth(p.test)

    def error(model):
        return float(np.sqrt(np.mean((task.forecast(model, p.test) - truth) ** 2)))

    assert result.model is not result.trained
    assert error(result.trained) == pytest.approx(result.metrics["test_rmse"], rel=1e-4)
    assert error(result.model) < error(result.trained)
    run = client_for(db).get_run(result.run_id)
    assert run.data.tags["refit"] == "true" and run.data.params["refit"] == "True"
    assert run.data.metrics["refit_epochs"] == 1 + int(np.argmin(result.history["val_loss"]))
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    served = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    assert served.unwrap_python_model().forecaster.refit is True


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_during_training_ends_the_run_killed(signum, code, tmp_path):
    from experiments import tracking

    db = tmp_path / "mlflow.db"
    tracking.init_store(f"sqlite:///{db}")  # we poll it while the child writes
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = popen_from_a_terminal(
        [sys.executable, "-m", "experiments.cli", "train", "--model", "gru",
         "--data", "sine", "--epochs", "100000", "--patience", "100000",
         "--units", "4", "--tracking-uri", f"sqlite:///{db}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        wait_for_training(db, proc)
        proc.send_signal(signum)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1][-3000:]
            pytest.fail(f"still training 60 s after {signum.name}:\n{err}")
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
    assert sorted(names) == sorted(["gru", "vanilla_lstm", "(naive)", "(seasonal", "(ETS)",
                                    "(SARIMA)"])
    rmse = [float(line.split()[3] if line.split()[1] == "(seasonal"
                  else line.split()[2]) for line in lines]
    assert rmse == sorted(rmse)
    # Each model's skill against the best baseline, then its 80% intervals'
    # coverage and MSIS and its CRPS, in columns of their own.
    header = next(line for line in out.splitlines() if line.startswith("rank"))
    assert "skill" in header.split() and header.split()[-5:] == ["covered", "MSIS", "80%",
                                                                 "CRPS", "run"]
    for line in lines:
        if line.split()[1] in ("gru", "vanilla_lstm"):
            skill, covered, msis, crps = line.split()[-5:-1]
            assert skill[0] in "+-" and 0 <= float(covered) <= 1 and float(msis) > 0, line
            assert float(crps) > 0, line
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
