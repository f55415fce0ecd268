"""`train --data-parallel`: one model trained under tf.distribute's
MirroredStrategy, on two logical CPU devices (what a machine with two GPUs
gives it), recorded as one finished run."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import sys

    import tensorflow as tf

    # Two logical CPU devices, set before TensorFlow starts (as two GPUs would be).
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from experiments import cli

    sys.exit(cli.main(["train", "--model", "gru", "--data", "sine", "--data-parallel",
                       "--epochs", "4", "--batch-size", "16", "--units", "8",
                       "--combine", "none", "--tracking-uri", sys.argv[1]]))
""")


@pytest.mark.slow  # a whole tracked run in a new process: the full suite's
def test_train_data_parallel_trains_one_model_on_two_devices(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", SCRIPT, uri], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    (run,) = [r for e in client.search_experiments()
              for r in client.search_runs([e.experiment_id])]
    assert run.info.status == "FINISHED"
    assert run.data.params["data_parallel"] == "True"
    assert run.data.params["replicas"] == "2"
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "loss")]
    assert len(losses) >= 2 and losses[-1] < losses[0]
