"""Shared helpers for tests that look inside an MLflow store."""

import os
import subprocess
import sys

import mlflow


def client_for(db_path):
    return mlflow.MlflowClient(f"sqlite:///{db_path}")


def all_runs(db_path):
    if not os.path.exists(db_path):
        return []
    client = client_for(db_path)
    exps = client.search_experiments()
    if not exps:
        return []
    return client.search_runs([e.experiment_id for e in exps])


def run_cli_process(*args, cwd, env_extra=None, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
