"""`make bench` runs end to end (quick mode) and writes its JSON and Markdown."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_benchmark_quick_run_writes_results(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--quick",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "latest.json").read_text())
    assert result["gemm_peak_gflops"] > 0
    from benchmarks.bench import QUICK_SHAPES

    # A quick run times two shapes (every row's models are built below).
    assert [r["shape"] for r in result["throughput"]] == list(QUICK_SHAPES)
    for row in result["throughput"]:
        assert row["plain_samples_per_s"] > 0 and row["zoo_vs_plain"] > 0
    assert result["startup"]["help_s"] > 0 and result["startup"]["models_s"] > 0
    # Search throughput: tune and the plain script, the same configurations,
    # each scored in the data's units (a full run adds tune --workers 2).
    sides = {r["side"]: r for r in result["search"]["rows"]}
    assert set(sides) == {"plain script (fit + autolog)", "lstm-zoo tune"}
    for row in sides.values():
        assert row["trials"] == 2 and row["trials_per_hour"] > 0
        assert 0 < row["best_val_rmse"] < float("inf")
    # Serving: the pyfunc on one history and on a batch, and over HTTP.
    serving = result["serving"]
    for key in ("bare_one", "reader_alone_one", "pyfunc_one"):
        assert 0 < serving[key]["p50_ms"] <= serving[key]["p99_ms"]
    assert serving["pyfunc_batch_per_s"] > 0 and serving["http"]["batch_s"] > 0
    assert serving["forecast_process_s"] > 0
    # Under load (a quick run: 1 and 2 clients): every request counted, and
    # a request over the size limit refused while the server goes on.
    load = serving["http"]["load"]
    assert [r["clients"] for r in load["rows"]] == [1, 2, 1]
    assert all(r["requests"] > 0 and r["p50_ms"] <= r["p99_ms"] for r in load["rows"])
    # (a quick run's server takes at most 20 series)
    assert load["oversize"]["status"] == 400 and "at most 20 " in load["oversize"]["message"]
    assert load["answers_after"] and load["server_peak_rss_mb"] > 0
    # Panels: both feeds timed on one panel, and a fresh process's peak RSS
    # training on windows drawn by index.
    panels = result["panels"]
    assert all(v > 0 for v in panels["throughput"]["windows_per_s"].values())
    (memory,) = panels["memory"]
    assert memory["feed"] == "index" and memory["peak_rss_mb"] > 0 and memory["windows"] > 0
    # ...and reading that panel from a long CSV in a fresh process.
    assert panels["csv"]["rows"] == 100 * 200 and panels["csv"]["peak_rss_mb"] > 0
    # Panels against the peers: lstm-zoo always; PyTorch and neuralforecast
    # where installed, else the reason in place of the row.
    peers = result["panel_peers"]["peers"]
    assert peers["lstm-zoo"]["windows_per_s"] > 0 and 0 < peers["lstm-zoo"]["val_mase"] < 10
    assert peers["lstm-zoo"]["series_scored"] == result["panel_peers"]["series"]
    for name in ("PyTorch", "neuralforecast"):
        assert "missing" in peers[name] or peers[name]["windows_per_s"] > 0, peers[name]
    assert result["missing"]["PyTorch"] == "not measured in a --quick run"
    assert "skipped" in result["gpu"] or "cudnn_vs_generic" in result["gpu"]
    table = (tmp_path / "latest.md").read_text()
    assert "GEMM peak" in table and "| lstm128" in table
    assert "| lstm-zoo tune | 2 |" in table
    assert "| pyfunc `predict`, one raw history |" in table
    assert "PyTorch columns: missing: not measured in a --quick run." in table
    assert "windows drawn by index vs materialised" in table
    assert "| lstm-zoo | " in table and "| neuralforecast | " in table


def test_every_family_has_a_benchmark_row_whose_sides_build_alike():
    """Each family's row in `make bench` builds its plain Keras side with the
    zoo model's input and output shapes, and counts its FLOPs (the full run
    times them; a quick run only two)."""
    import keras

    import zoo
    from benchmarks import bench

    assert {row[1] for row in bench.SHAPES} == set(zoo.list_models())
    for name, family, hp, shape, _batch, outputs in bench.SHAPES:
        model = zoo.build_model(family, shape, outputs, **hp)
        plain = bench.plain_keras(family, hp, shape, outputs)
        assert plain.input_shape == model.input_shape, name
        assert plain.output_shape == model.output_shape, name
        assert bench.recurrent_flops(family, hp, shape) > 0 and bench.BATCHES[name] > 0
        keras.backend.clear_session()


@pytest.mark.slow
def test_accuracy_quick_run_scores_the_zoo_against_every_baseline(tmp_path):
    """`make accuracy-known` (its smoke mode): the default run and a search on the
    sine set, scored against naive, seasonal naive, ETS and SARIMA, written
    as JSON and as the README's table."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "benchmarks.known_structure", "--quick",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "accuracy-quick.json").read_text())
    (row,) = result["series"]
    assert row["series"] == "sine"
    for key in ("tuned_rmse", "ensemble_rmse", "default_train_rmse", "naive_rmse",
                "seasonal_naive_rmse", "ets_rmse", "sarima_rmse"):
        assert row[key] > 0, key
    assert row["best_baseline"] in ("naive", "seasonal_naive", "ets", "sarima")
    assert "seasonal naive" in row["verdict"]
    table = (tmp_path / "accuracy-quick.md").read_text()
    assert result["date"] in table and "2 trials of at most 3 epochs" in table
    assert table.count("| sine |") == 1


def test_torch_installer_asks_for_a_cpu_build_and_says_why_it_could_not(monkeypatch, tmp_path):
    """benchmarks/install_torch.py: a +cpu version from pip's indexes first,
    then PyTorch's CPU index; when both fail, the reason is written where
    `make bench` prints it in place of the PyTorch column."""
    import importlib.util
    from types import SimpleNamespace

    from benchmarks import install_torch

    calls = []

    def pip(*args):
        calls.append(args)
        if args[:2] == ("index", "versions"):
            return SimpleNamespace(returncode=0, stderr="", stdout=(
                "torch (2.15.0)\nAvailable versions: 2.15.0, 2.13.0+cpu, 2.13.0, 2.12.0+cpu"))
        return SimpleNamespace(returncode=1, stdout="", stderr="ERROR: no network\n")

    monkeypatch.setattr(install_torch, "pip", pip)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(install_torch, "MISSING", str(tmp_path / "torch-missing.txt"))
    assert install_torch.cpu_versions() == ["2.13.0+cpu", "2.12.0+cpu"]
    assert install_torch.main() == 0
    installs = [c for c in calls if c[0] == "install"]
    assert installs[0] == ("install", "--quiet", "torch==2.13.0+cpu")
    assert installs[1][-2:] == ("--index-url", install_torch.CPU_INDEX)
    why = (tmp_path / "torch-missing.txt").read_text()
    assert "no CPU build of PyTorch could be installed" in why and "no network" in why


@pytest.mark.slow
def test_calibration_origins_scores_both_arms_around_one_forecast():
    """`benchmarks.calibration_origins` on a generated monthly series: both
    arms place intervals around the served forecast, the in-sample one from
    the refit model's forecasts of every origin of its own history."""
    import numpy as np
    import pandas as pd

    from benchmarks import calibration_origins, public_set

    rng = np.random.default_rng(0)
    n, horizon = 84, 6
    values = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 12) + rng.normal(0, 2, n)
    frame = pd.DataFrame({"period": pd.date_range("2000-01-01", periods=n, freq="MS")
                          .strftime("%Y-%m-%d"), "value": values})
    cut = public_set.Cut("generated", 0, 12, horizon, frame.iloc[:-horizon], values[-horizon:])
    row = calibration_origins.compare(cut, epochs=2)
    # Every origin from the model's first full input to the last whole horizon.
    assert 0 < row["in_sample_origins"] < n - horizon
    for arm in calibration_origins.ARMS:
        for level in (80, 95):
            assert 0 <= row[f"{arm}|coverage_{level}"] <= 1
            assert row[f"{arm}|width_{level}"] > 0
            assert row[f"{arm}|msis_{level}"] >= row[f"{arm}|width_{level}"]
        assert row[f"{arm}|width_95"] >= row[f"{arm}|width_80"]
    table = calibration_origins.markdown({"date": "today", "machine": "here", "seed": 42,
                                          "minutes": 0.1, "rows": [row],
                                          "summary": calibration_origins.summary([row])})
    assert "| in sample |" in table and "| out of sample |" in table
