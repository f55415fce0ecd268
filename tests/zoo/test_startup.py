"""TensorFlow's C++ start-up lines stay off the terminal; ours do not."""

import os
import subprocess
import sys

import pytest

from zoo import startup

CUDA_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796533240.777313    2472 port.cc:153] oneDNN custom operations are on.\n",
    "I0000 00:00:1796533240.777599    2472 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.\n",
    "E0000 00:00:1796533244.656709    2472 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.\n",
]
OURS = [
    "/x/experiments/data.py:12: UserWarning: sales.csv: 3 rows repaired\n",
    "Traceback (most recent call last):\n",
    "E0000 00:00:1796533244.656709    2472 gpu_device.cc:52] real failure: out of memory\n",
]


def test_start_up_lines_are_dropped_and_everything_else_kept():
    assert not [line for line in CUDA_LINES if startup.keep_line(line, 2)]
    assert [line for line in OURS if startup.keep_line(line, 2)] == OURS
    # A user who asks for everything (TF_CPP_MIN_LOG_LEVEL=0) gets it.
    assert [line for line in CUDA_LINES[1:4] if startup.keep_line(line, 0)] == CUDA_LINES[1:4]


def test_filtered_stderr_passes_our_lines_through(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # errors asked for: ours show
    with startup.filtered_stderr():
        for line in CUDA_LINES + OURS:
            os.write(2, line.encode())
    err = capfd.readouterr().err
    assert err == "".join(OURS)


@pytest.mark.slow
def test_train_prints_no_tensorflow_start_up_line(tmp_path):
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it: unset
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "train", "--model",
                           "gru", "--data", "sine", "--epochs", "1", "--units", "4"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for text in ("cuInit", "cudart_stub", "absl::InitializeLog", "oneDNN"):
        assert text not in done.stderr, done.stderr[-2000:]
    assert not [line for line in done.stderr.splitlines()
                if startup._CPP_LINE.match(line)], done.stderr[-2000:]
    assert "forecast on sine" in done.stdout


def test_level_0_shows_tensorflow_as_it_prints():
    code = ("import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'\n"
            "from zoo import startup; startup.install()\n"
            "print(any(type(f).__name__ == '_QuietTensorFlow' for f in sys.meta_path))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr
