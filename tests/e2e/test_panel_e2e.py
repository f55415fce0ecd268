"""End to end on a panel: `train` and `tune` over many series in one long
CSV, `forecast --csv` and the HTTP server answering for many series."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest

from experiments.data import make_panel
from tests.helpers import all_runs, client_for, run_cli_process

pytestmark = pytest.mark.slow
PANEL = ["--id-col", "store", "--time-col", "month", "--target", "sales"]
TINY = ["--epochs", "3", "--units", "4", "--batch-size", "32"]


def panel_csv(path, n_series=8, seed=6):
    """A generated panel laid out as a user's CSV (rows shuffled), plus one
    series too short to train on."""
    frame = make_panel(n_series, seed=seed).frame.rename(
        columns={"unique_id": "store", "ds": "month", "y": "sales"})
    short = pd.DataFrame({"store": "new-store", "month": pd.date_range(
        "2024-01-01", periods=12, freq="MS"), "sales": np.linspace(5, 9, 12)})
    frame = pd.concat([frame, short]).sample(frac=1.0, random_state=0)
    frame["month"] = frame["month"].dt.strftime("%Y-%m")
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def panel_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("panel_run")
    path = panel_csv(folder / "stores.csv")
    db = folder / "mlflow.db"
    done = run_cli_process("train", "--model", "gru", "--csv", str(path), *PANEL,
                           "--window", "12", "--horizon", "6", *TINY,
                           "--tracking-uri", f"sqlite:///{db}", cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(db)
    return db, run, path, done.stdout


def test_train_on_a_panel_records_per_series_scores(panel_run):
    db, run, _, stdout = panel_run
    client = client_for(db)
    assert run.info.status == "FINISHED"
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    assert p["task"] == "panel" and p["n_series"] == "8" and p["n_left_out"] == "1"
    assert p["scaling"] == "per window" and p["id_col"] == "store"
    assert p["id_embedding"] == "False"
    for key in ("test_mase", "test_smape", "test_rmse", "test_seasonal_naive_mase",
                "test_ets_mase", "test_naive_mase", "test_coverage_80"):
        assert np.isfinite(m[key]), key
    assert 0 < m["test_width_80"] <= m["test_msis_80"] and m["test_width_95"] > \
        m["test_width_80"]
    assert 0 < m["test_scaled_crps"] < np.inf
    assert 0 <= m["test_share_beats_seasonal_naive"] <= 1
    assert "new-store" in t["adjustments"] and "left out" in t["adjustments"]
    table = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="per_series.csv",
        tracking_uri=f"sqlite:///{db}"))
    assert len(table) == 8 and m["test_mase"] == pytest.approx(table["mase"].mean())
    assert m["test_share_beats_best_baseline"] == pytest.approx(
        table["beats_best_baseline"].mean())
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/best_median_worst.png" in plots
    assert "test split (8 series, 8 windows)" in stdout
    assert "by MASE, the model beats the seasonal naive on" in stdout
    assert "of 8 series and its best baseline on" in stdout


def test_forecast_command_forecasts_every_series_of_a_csv(panel_run, tmp_path):
    db, run, path, _ = panel_run
    out = tmp_path / "forecast.csv"
    done = run_cli_process("forecast", "--run-id", run.info.run_id, "--csv", str(path),
                           "--steps", "8", "--out", str(out),
                           "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "forecast of 8 step(s) for each of 9 series" in done.stdout
    table = pd.read_csv(out)
    # The short series was left out of training, but it has a window's rows.
    assert table.groupby("store").size().to_dict() == {
        **{f"S{i:03d}": 8 for i in range(8)}, "new-store": 8}
    assert (table["lower_80"] < table["sales"]).all()
    assert (table["sales"] < table["upper_95"]).all()
    assert set(table["month"]) == {f"2025-{m:02d}-01" for m in range(1, 9)}
    # A bad file: named by series and line, exit 2, nothing written.
    frame = pd.read_csv(path)
    pd.concat([frame, frame.iloc[[3]]]).to_csv(tmp_path / "dup.csv", index=False)
    bad = run_cli_process("forecast", "--run-id", run.info.run_id,
                          "--csv", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "x"),
                          "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert bad.returncode == 2
    assert f"series {frame['store'].iloc[3]!r}" in bad.stderr and "duplicates" in bad.stderr
    assert not (tmp_path / "x").exists()
    # Simulated futures need a distribution model: this one forecasts a mean.
    bad = run_cli_process("forecast", "--run-id", run.info.run_id, "--samples", "5",
                          "--out", str(tmp_path / "x"), "--tracking-uri", f"sqlite:///{db}",
                          cwd=tmp_path)
    assert bad.returncode == 2 and "samples need a distribution model" in bad.stderr
    assert "this one forecasts a mean" in bad.stderr and not (tmp_path / "x").exists()


def _serve(db, run_id, folder):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    server = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "serve", "--model",
         f"runs:/{run_id}/model", "--port", str(port), "--tracking-uri", f"sqlite:///{db}"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 240
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return server, port
        except (urllib.error.URLError, ConnectionError, OSError):
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the server did not start in 240 s"
            time.sleep(1)


def _post(port, frame):
    body = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                     json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]


def test_the_server_answers_for_many_series_in_one_request(panel_run, tmp_path):
    db, run, path, _ = panel_run
    rows = pd.read_csv(path)
    rows = rows[rows["month"] >= "2022-01"]
    server, port = _serve(db, run.info.run_id, tmp_path)
    try:
        served = pd.DataFrame(_post(port, rows))
        short = rows[(rows["store"] != "S001") | (rows["month"] >= "2024-10")]
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(port, short)
        assert refused.value.code == 400
        assert "series 'S001' has 3 rows; the model reads the last 12" in (
            refused.value.read().decode())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    local = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(rows)
    assert served["store"].nunique() == 9 and len(served) == 9 * 6
    assert list(served["store"]) == list(local["store"])
    numbers = ["sales", "lower_80", "upper_80", "lower_95", "upper_95"]
    np.testing.assert_allclose(served[numbers].to_numpy(float),
                               local[numbers].to_numpy(float), rtol=1e-6)


def test_tune_searches_a_quantile_panel_model_and_registers_it(tmp_path):
    path = panel_csv(tmp_path / "stores.csv", n_series=6, seed=7)
    db = tmp_path / "mlflow.db"
    done = run_cli_process("tune", "--csv", str(path), *PANEL, "--window", "12",
                           "--horizon", "6", "--models", "gru,simple_rnn",
                           "--max-trials", "2", "--epochs", "2", "--loss", "quantile",
                           "--quantiles", "0.1,0.5,0.9", "--intervals", "80",
                           "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = all_runs(db)
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parent) == 1 and len(runs) == 3
    assert all(r.info.status == "FINISHED" for r in runs)
    assert np.isfinite(parent[0].data.metrics["test_mase"])
    # With --window given, the search varies whether the series id is an input.
    trials = [r for r in runs if r is not parent[0]]
    assert {r.data.params["id_embedding"] for r in trials} <= {"False", "True"}
    assert all(np.isfinite(r.data.metrics["val_rmse"]) for r in trials)
    assert {r.data.params["loss_function"] for r in runs} == {"quantile"}
    assert 0 <= parent[0].data.metrics["test_coverage_80"] <= 1
    assert 0 < parent[0].data.metrics["test_scaled_pinball"] < np.inf
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    version = client_for(db).get_model_version_by_alias("lstm-zoo-stores-sales", "best")
    assert "one network over 6 series of `stores`" in version.description
    assert "| seasonal naive |" in version.description
    assert version.tags["task"] == "panel" and version.tags["n_series"] == "6"
    assert float(version.tags["test_mase"]) == pytest.approx(
        parent[0].data.metrics["test_mase"], rel=1e-3)
    model = mlflow.pyfunc.load_model("models:/lstm-zoo-stores-sales@best")
    table = model.predict(pd.read_csv(path))
    assert table.groupby("store").size().eq(6).all() and table["store"].nunique() == 7
    assert list(table.columns[-5:]) == ["lower_80", "upper_80", "q10", "q50", "q90"]
    assert (table["q10"] <= table["q50"]).all() and (table["q50"] <= table["q90"]).all()


def test_train_and_forecast_with_future_static_and_calendar_covariates(tmp_path):
    from tests.experiments.forecasting.test_panel import promotions

    frame = promotions(n_series=4, weeks=80)
    last = frame["week"].unique()[-6:]
    history = frame[~frame["week"].isin(last)]
    history.to_csv(tmp_path / "promos.csv", index=False)
    db = tmp_path / "mlflow.db"
    flags = ["--id-col", "store", "--time-col", "week", "--target", "sales"]
    done = run_cli_process("train", "--model", "gru", "--csv", str(tmp_path / "promos.csv"),
                           *flags, "--future-features", "promo", "--static", "region",
                           "--calendar", "month,weekofyear", "--window", "12",
                           "--horizon", "6", *TINY, "--tracking-uri", f"sqlite:///{db}",
                           cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(db)
    assert run.info.status == "FINISHED"
    # The next six weeks' plan, the sales left empty: forecast them.
    request = pd.concat([history, frame[frame["week"].isin(last)].assign(sales="")])
    request.to_csv(tmp_path / "plan.csv", index=False)
    out = tmp_path / "forecast.csv"
    done = run_cli_process("forecast", "--run-id", run.info.run_id, "--csv",
                           str(tmp_path / "plan.csv"), "--out", str(out),
                           "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out)
    assert table.groupby("store").size().eq(6).all() and table["store"].nunique() == 4
    assert set(pd.to_datetime(table["week"])) == set(pd.to_datetime(last))
    # (A request without the plan's rows: test_panel.py names what is missing.)


def test_a_panel_trains_on_the_jax_backend_through_its_window_batches(tmp_path):
    """On JAX (and PyTorch) a panel's windows reach fit as a keras.utils.PyDataset
    (experiments.training.window_feed.WindowBatches), not tf.data; its Normal
    head's simulated futures are written by `forecast --samples`."""
    path = panel_csv(tmp_path / "stores.csv", n_series=4)
    done = run_cli_process("train", "--model", "gru", "--csv", str(path), *PANEL,
                           "--window", "12", "--horizon", "6", *TINY, "--combine", "none",
                           "--loss", "normal",
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                           cwd=tmp_path, env_extra={"KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(tmp_path / "mlflow.db")
    assert run.info.status == "FINISHED" and run.data.tags["keras_backend"] == "jax"
    losses = [m.value for m in client_for(tmp_path / "mlflow.db")
              .get_metric_history(run.info.run_id, "loss")]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert np.isfinite(run.data.metrics["test_mase"])
    assert run.data.params["loss_function"] == "normal"
    out = tmp_path / "paths.csv"
    done = run_cli_process("forecast", "--run-id", run.info.run_id, "--samples", "20",
                           "--steps", "8", "--seed", "3", "--out", str(out),
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                           cwd=tmp_path, env_extra={"KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "20 simulated future(s) of 8 step(s) for each of 5 series" in done.stdout
    paths = pd.read_csv(out)
    assert list(paths.columns) == ["store", "month", "sample", "sales"]
    assert paths.groupby("store")["sample"].nunique().eq(20).all() and len(paths) == 800
    assert paths["sales"].notna().all()
