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
    shapes = {r["shape"] for r in result["throughput"]}
    assert {"lstm128", "stacked_lstm128x2", "bidirectional_lstm128", "gru128",
            "airline_lstm32", "conv_lstm16"} == shapes
    for row in result["throughput"]:
        assert row["plain_samples_per_s"] > 0 and row["zoo_vs_plain"] > 0
    assert result["startup"]["help_s"] > 0
    assert "skipped" in result["gpu"] or "cudnn_vs_generic" in result["gpu"]
    table = (tmp_path / "latest.md").read_text()
    assert "GEMM peak" in table and "| lstm128" in table
