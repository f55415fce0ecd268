"""Reading a cluster from TF_CONFIG, and what a process of it says when
another one dies (the two-process runs themselves: tests/e2e/test_multi_worker.py)."""

import json

import pytest

from experiments.errors import ConfigError
from experiments.training import strategy


def tf_config(cluster, kind="worker", index=0):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}


TWO = {"worker": ["10.0.0.5:2222", "10.0.0.6:2222"]}


def test_no_cluster_without_tf_config_or_with_one_process():
    assert strategy.cluster({}) is None
    assert strategy.cluster(tf_config({"worker": ["10.0.0.5:2222"]})) is None


def test_each_process_finds_its_place_and_the_chief_is_first():
    first, second = (strategy.cluster(tf_config(TWO, index=i)) for i in (0, 1))
    assert first.is_chief and not second.is_chief
    assert second.describe() == "process 2 of 2 (10.0.0.6:2222)"
    with_chief = {"chief": ["10.0.0.4:2222"], **TWO}
    chief = strategy.cluster(tf_config(with_chief, "chief", 0))
    worker0 = strategy.cluster(tf_config(with_chief, "worker", 0))
    assert chief.is_chief and not worker0.is_chief and worker0.index == 1
    assert worker0.address("worker", 1) == "10.0.0.6:2222"
    assert worker0.address("chief", 0) == "10.0.0.4:2222"


@pytest.mark.parametrize("text, says", [
    ("{not json", "TF_CONFIG must be JSON"),
    (json.dumps({"cluster": TWO}), "TF_CONFIG must be JSON"),
    (json.dumps({"cluster": ["h:1", "h:2"], "task": {"type": "worker", "index": 0}}),
     "TF_CONFIG must be JSON"),
    (json.dumps({"cluster": {**TWO, "ps": ["h:1"]}, "task": {"type": "worker", "index": 0}}),
     "['ps']"),
    (json.dumps({"cluster": TWO, "task": {"type": "worker", "index": 2}}),
     "task worker 2 is not in the cluster"),
])
def test_a_malformed_tf_config_is_named(text, says):
    with pytest.raises(ConfigError, match="TF_CONFIG") as e:
        strategy.cluster({"TF_CONFIG": text})
    assert says in str(e.value)


def test_a_cluster_needs_data_parallel_and_train(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config(TWO)["TF_CONFIG"])
    with pytest.raises(ConfigError, match="add --data-parallel"):
        strategy.check_cluster(False)
    for command in ("tune", "compare"):
        with pytest.raises(ConfigError, match=f"only `train --data-parallel`.*for {command}"):
            strategy.check_cluster(True, command)
    assert strategy.check_cluster(True).addresses == tuple(TWO["worker"])
    # On another backend, refused before joining the cluster (which would wait).
    monkeypatch.setattr("keras.config.backend", lambda: "jax")
    with pytest.raises(ConfigError, match="needs the TensorFlow backend"):
        strategy.check_cluster(True)


def test_train_in_a_cluster_without_data_parallel_exits_before_any_run(monkeypatch, tmp_path,
                                                                        capsys):
    from experiments import cli

    monkeypatch.setenv("TF_CONFIG", tf_config(TWO)["TF_CONFIG"])
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "--model", "gru", "--data", "sine", "--epochs", "1",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert code == 2 and "add --data-parallel" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("message, reason", [
    ("Collective ops is aborted by: Error reported from /job:worker/task:1: The following "
     "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n",
     "it missed its heartbeats"),
    ("{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/"
     "device:CPU:0}} Collective ops is aborted by: recvmsg:Connection reset by peer\n"
     "Additional GRPC error information from remote target /job:worker/replica:0/task:1",
     "its connection was reset"),
])
def test_a_dead_peer_is_named_by_its_address(message, reason):
    me = strategy.cluster(tf_config(TWO, index=0))
    said = strategy.peer_lost(me, message)
    assert "10.0.0.6:2222 stopped answering" in said and reason in said
    assert "10.0.0.5:2222 stopped" not in said and "process 1 of 2" in said
