import os
import subprocess
import sys

import zoo


def run_cli(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_models_lists_every_family_with_parameter_count():
    done = run_cli("models")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in zoo.list_models():
        row = next(line for line in lines if line.startswith(name + " "))
        params = int(row.split()[1].replace(",", ""))
        shape, outputs = (((10, 16, 16, 1), 1) if name == "conv_lstm"
                          else ((24, 1), 12))
        assert params == zoo.build_model(name, shape, outputs).count_params()


def test_unknown_command_exits_2():
    done = run_cli("frobnicate")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
