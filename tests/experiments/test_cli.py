import inspect
import os
import subprocess
import sys

import pytest

import zoo


def run_cli(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_models_lists_the_registry_without_importing_keras():
    """`lstm-zoo models` reads the families' source: what it lists is what
    the registry holds, and the process never imports Keras, TensorFlow or the
    families (``zoo`` itself loads them only when a name of it is used)."""
    code = ("import sys; from experiments.cli import main; main(['models']); "
            "print('imported:', sorted(m for m in ('keras', 'tensorflow', 'zoo.registry') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "imported: []"
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[2:]
            if line and line.split()[0] in zoo.list_models()}
    assert set(rows) == set(zoo.list_models())
    for name, heads in rows.items():
        info = zoo.get(name)
        assert heads == ",".join(info.heads), name
        assert info.summary in done.stdout


def test_models_params_builds_each_family_with_its_parameter_count():
    done = run_cli("models", "--params")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in zoo.list_models():
        row = next(line for line in lines if line.startswith(name + " "))
        params = int(row.split()[1].replace(",", ""))
        shape, outputs = zoo.get(name).example_input
        assert params == zoo.build_model(name, shape, outputs).count_params()


def test_catalogue_reads_what_the_registry_holds():
    from experiments import catalog
    from zoo import registry

    entries = {e.name: e for e in catalog.catalogue()}
    assert set(entries) == set(zoo.list_models())
    for name, entry in entries.items():
        info = zoo.get(name)
        assert (entry.heads, entry.input_axes, entry.summary) == (
            info.heads, info.input_axes, info.summary), name
    defaults = inspect.signature(registry.register).parameters
    assert catalog.DEFAULT_HEADS == defaults["heads"].default
    assert catalog.DEFAULT_AXES == defaults["input_axes"].default


def test_unknown_command_exits_2():
    done = run_cli("frobnicate")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_help_is_fast_and_lists_commands():
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("models", "datasets", "train", "compare", "tune", "ui"):
        assert command in done.stdout


def test_datasets_lists_named_datasets():
    done = run_cli("datasets")
    assert done.returncode == 0
    assert "airline" in done.stdout and "sine" in done.stdout


@pytest.mark.slow  # starts a process: the full suite's
def test_ui_serves_the_store_on_localhost(tmp_path):
    """`lstm-zoo ui` starts MLflow's UI bound to 127.0.0.1 only, on the store."""
    import socket
    import time
    import urllib.request

    from tests.helpers import listening_addresses

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "ui", "--port", str(port),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health",
                                            timeout=2) as reply:
                    assert reply.status == 200
                # Bound to 127.0.0.1 only, as the kernel lists the socket.
                assert listening_addresses(port) == {"127.0.0.1"}
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode()[-2000:]) from None
                time.sleep(0.5)
        else:
            raise AssertionError("the UI did not start within 120 s")
    finally:
        import signal
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_mixed_precision_is_refused_on_a_cpu_before_anything_is_tracked(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "train", "--model",
                           "gru", "--data", "airline", "--mixed-precision", "float16"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "--mixed-precision float16 needs a GPU" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_experiments_open_on_the_runs_table(tmp_path):
    """MLflow 3.17 opens an experiment on its GenAI overview unless told it
    is for model training: every experiment lstm-zoo uses carries the kind
    tag, and `lstm-zoo ui` prints the address of the runs table."""
    import mlflow

    from experiments import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.latest_experiment(uri) is None
    assert not (tmp_path / "mlflow.db").exists()  # looking did not create a store
    tracking.init_store(uri)
    client = mlflow.MlflowClient(uri)
    made_by_hand = client.create_experiment("old")
    exp_id = tracking.use_experiment("sales", uri)
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == \
        "custom_model_development"
    assert "mlflow.experimentKind" not in client.get_experiment(made_by_hand).tags
    tracking.use_experiment("old", uri)  # one lstm-zoo now writes to gets the tag too
    assert client.get_experiment(made_by_hand).tags["mlflow.experimentKind"] == \
        "custom_model_development"
    assert tracking.latest_experiment(uri) in (exp_id, made_by_hand)
    assert tracking.ui_url("http://127.0.0.1:5000", exp_id) == (
        f"http://127.0.0.1:5000/#/experiments/{exp_id}?workflowType=machine_learning")
