"""Serving latency and throughput of a registered forecaster.

A small airline forecaster is trained and logged by ``lstm-zoo train`` into
a temporary MLflow store; then, in one process, side by side:

- the bare Keras network's compiled call on already-prepared windows
  (``predict_on_batch``): one window, and 1,000;
- the reader's preprocessing alone (checks, transforms, inverse transforms,
  the output table) with a network that costs nothing;
- the MLflow pyfunc's ``predict`` on one raw history, and on one request
  holding 1,000 histories (a ``unique_id`` column), against 1,000 single calls;
- a POST to ``mlflow models serve`` on 127.0.0.1, one history and 1,000;
  then that server under concurrent load (``benchmarks.serving_load``).

The same ``lstm-zoo forecast`` on the registered model is timed as a whole
process (start-up included).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "calls": len(ms)}


def timed(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


class Free:
    """A stand-in network that answers at once: what the reader costs alone."""

    def __init__(self, horizon):
        self.horizon = horizon

    def predict_on_batch(self, x):
        return np.zeros((len(x), self.horizon), "float32")


def many_histories(history, n: int, seed: int = 0):
    """``n`` different series of the same shape, one table with a
    ``unique_id`` column (each the history scaled by a random factor)."""
    import pandas as pd

    from experiments.forecasting.forecaster import ID_COL

    rng = np.random.default_rng(seed)
    value_cols = [c for c in history.columns if history[c].dtype.kind in "fi"]
    parts = []
    for i, factor in enumerate(rng.uniform(0.8, 1.2, n)):
        part = history.copy()
        part[value_cols] = part[value_cols] * factor
        part.insert(0, ID_COL, f"s{i}")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def train_and_log(folder: str, epochs: int = 20) -> str:
    """``lstm-zoo train`` a small airline forecaster; its model's URI."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder}/serve.db",
               TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "train", "--model",
                           "vanilla_lstm", "--data", "airline", "--epochs", str(epochs),
                           # The network served alone: a combination with ETS or
                           # SARIMA refits them on each new series (~50 ms each).
                           "--combine", "none"],
                          capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode:
        raise RuntimeError(f"lstm-zoo train failed:\n{done.stderr[-3000:]}")
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["airline"], output_format="list")
    return f"runs:/{runs[0].info.run_id}/model"


def http_rows(uri: str, folder: str, one, batch, repeats: int, workers: int = 1,
              clients=(1, 8, 32), seconds: float = 20.0, max_series: int | None = None) -> dict:
    """``mlflow models serve --workers N`` on a free port of 127.0.0.1: POST
    latency, then the server under load (``benchmarks.serving_load``), and a
    request of one series more than the server's limit (``max_series``,
    default the product's)."""
    from benchmarks import serving_load
    from experiments.serving.pyfunc import MAX_REQUEST_SERIES

    max_series = max_series or MAX_REQUEST_SERIES
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder}/serve.db",
               TF_CPP_MIN_LOG_LEVEL="3", LSTM_ZOO_MAX_REQUEST_SERIES=str(max_series),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", uri,
                               "--env-manager", "local", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", str(workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow models serve did not start") from None
                time.sleep(0.5)

        def body_of(frame) -> bytes:
            return json.dumps({"dataframe_split": json.loads(
                frame.to_json(orient="split", index=False))}).encode()

        def post_body(body):
            request = urllib.request.Request(f"{url}/invocations", data=body,
                                             headers={"Content-Type": "application/json"})
            return urllib.request.urlopen(request, timeout=120).read()

        one_body, batch_body = body_of(one), body_of(batch)
        single = timed(lambda: post_body(one_body), repeats)
        many = timed(lambda: post_body(batch_body), 3, warmup=1)
        n_batch = int(batch.iloc[:, 0].nunique())
        rows = [serving_load.under_load(lambda: post_body(one_body), c, seconds)
                for c in clients]
        rows.append(serving_load.under_load(lambda: post_body(batch_body), 1, seconds,
                                            series=n_batch))
        oversize = serving_load.refused_at_once(
            post_body, body_of(many_histories(one, max_series + 1)))
        try:
            answers_after = bool(post_body(one_body))
        except OSError:
            answers_after = False
        load = {"workers": workers, "seconds": seconds, "rows": rows,
                "targets": serving_load.targets(rows), "oversize": oversize,
                "answers_after": answers_after,
                "server_peak_rss_mb": serving_load.tree_peak_rss_mb(server.pid)}
        return {"one": percentiles(single), "batch_s": statistics.median(many), "load": load}
    finally:
        server.terminate()
        server.wait(30)


def serving_speed(repeats: int = 200, batch: int = 1000, http: bool = True,
                  process_repeats: int = 2, workers: int = 2, clients=(1, 8, 32),
                  seconds: float = 20.0, max_series: int | None = None,
                  epochs: int = 20) -> dict:
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        uri = train_and_log(folder, epochs)
        model = mlflow.pyfunc.load_model(uri)
        served = model.unwrap_python_model()
        network, reader = served.network, served.forecaster
        history = served.history.iloc[-reader.min_rows:].reset_index(drop=True)
        histories = many_histories(history, batch)
        pre = reader.preprocessor
        window = pre.transform_values(
            history[list(pre.features)].to_numpy("float64")[None])[:, -pre.window:]
        window = window.astype("float32")
        windows = np.repeat(window, batch, axis=0)
        result = {"model": uri.split("/")[-1], "batch": batch, "rows": len(history),
                  "bare_one": percentiles(timed(lambda: network.predict_on_batch(window),
                                                repeats)),
                  "bare_batch_s": statistics.median(
                      timed(lambda: network.predict_on_batch(windows), 10)),
                  "reader_alone_one": percentiles(timed(
                      lambda: reader.forecast(Free(pre.horizon), history), repeats)),
                  "pyfunc_one": percentiles(timed(lambda: model.predict(history), repeats)),
                  "pyfunc_batch_s": statistics.median(
                      timed(lambda: model.predict(histories), 3, warmup=1))}
        out = model.predict(histories)
        assert len(out) == batch * pre.horizon, "the batch forecast lost series"
        if http:
            result["http"] = http_rows(uri, folder, history, histories,
                                       max(20, repeats // 4), workers, clients, seconds,
                                       max_series)
        result["forecast_process_s"] = forecast_process(uri, folder, process_repeats)
    r = result
    r["pyfunc_one_per_s"] = 1000 / r["pyfunc_one"]["p50_ms"]
    r["pyfunc_batch_per_s"] = batch / r["pyfunc_batch_s"]
    r["batch_vs_singles"] = r["pyfunc_batch_per_s"] / r["pyfunc_one_per_s"]
    r["pyfunc_vs_bare_plus_reader"] = r["pyfunc_one"]["p50_ms"] / (
        r["bare_one"]["p50_ms"] + r["reader_alone_one"]["p50_ms"])
    return result


def forecast_process(uri: str, folder: str, repeats: int = 2) -> float:
    """Wall time of ``lstm-zoo forecast --model URI`` as a new process."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder}/serve.db",
               TF_CPP_MIN_LOG_LEVEL="3")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "experiments.cli", "forecast", "--model", uri],
                       capture_output=True, check=True, env=env, cwd=folder)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown(r: dict) -> list[str]:
    def row(name, lat, per_s):
        return (f"| {name} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | {per_s:.0f} |"
                if lat else f"| {name} | - | - | {per_s:.0f} |")

    n = r["batch"]
    lines = [f"Serving a small airline forecaster (vanilla_lstm, {r['rows']} rows of raw "
             "history per forecast), in one process:", "",
             "| call | p50 ms | p99 ms | forecasts/s |", "| --- | ---: | ---: | ---: |",
             row("bare network, one prepared window (`predict_on_batch`)", r["bare_one"],
                 1000 / r["bare_one"]["p50_ms"]),
             row(f"bare network, {n} prepared windows", None, n / r["bare_batch_s"]),
             row("reader alone, one raw history (checks, transforms, table)",
                 r["reader_alone_one"], 1000 / r["reader_alone_one"]["p50_ms"]),
             row("pyfunc `predict`, one raw history", r["pyfunc_one"],
                 r["pyfunc_one_per_s"]),
             row(f"pyfunc `predict`, {n} histories in one request", None,
                 r["pyfunc_batch_per_s"])]
    if "http" in r:
        h = r["http"]
        lines += [row("POST to `mlflow models serve`, one history", h["one"],
                      1000 / h["one"]["p50_ms"]),
                  row(f"POST to `mlflow models serve`, {n} histories", None,
                      n / h["batch_s"])]
    if "http" in r and "load" in r["http"]:
        from benchmarks import serving_load

        lines += ["", *serving_load.markdown(r["http"]["load"])]
    lines += ["", f"pyfunc one history / (bare call + reader): "
              f"{r['pyfunc_vs_bare_plus_reader']:.2f}x; a batch of {n} gives "
              f"{r['batch_vs_singles']:.1f}x the forecasts/s of single calls. "
              f"`lstm-zoo forecast` on the logged model, as a whole process: "
              f"{r['forecast_process_s']:.1f} s."]
    return lines


def main() -> int:
    """``python -m benchmarks.serving_speed``: the serving section of ``make
    bench`` alone, written to ``benchmarks/results/serving-latest.{json,md}``."""
    import datetime
    import logging
    import platform

    from benchmarks import report

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    result = serving_speed()
    head = (f"Measured {datetime.date.today().isoformat()} with `python -m "
            f"benchmarks.serving_speed` alone (the serving section of `make bench`), on "
            f"{platform.machine()} with {os.cpu_count()} CPU(s), no GPU; the load generator "
            f"runs on the same cores as the server.")
    report.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                 "serving-latest", result, "\n".join([head, "", *markdown(result)]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
