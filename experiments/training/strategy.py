"""Data-parallel training on ``tf.distribute``: one model, its batches split
over the devices this process sees (``train --data-parallel``, and each
trial of ``tune --data-parallel``), or over several processes and machines
(``train --data-parallel`` with a cluster in ``TF_CONFIG``).

``MirroredStrategy`` keeps a copy of the model on each device and averages
their gradients every step. The devices are the GPUs, or where there are
none the logical CPU devices (one unless configured, e.g. for a test, with
``tf.config.set_logical_device_configuration``).

``MultiWorkerMirroredStrategy`` does the same across processes: each runs
the same ``train`` command with its own ``TF_CONFIG`` (as TensorFlow
documents it: the cluster's addresses and this process' task), and they
average their gradients over gRPC every step. The chief (the ``chief``
task, else worker 0) alone writes to MLflow and saves the model; the others
train and exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re

from experiments.errors import ConfigError, TrainingError

ROLES = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The processes ``TF_CONFIG`` names, and which one this is."""

    addresses: tuple[str, ...]   # the chief first, then the workers, in order
    index: int                   # this process' place in ``addresses``
    chiefs: int = 0              # 1 when TF_CONFIG has a "chief" task

    def address(self, kind: str, index: int) -> str | None:
        """The address of TensorFlow's task ``/job:kind/task:index``."""
        at = index + (self.chiefs if kind == "worker" else 0)
        return self.addresses[at] if 0 <= at < len(self.addresses) else None

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def describe(self) -> str:
        return f"process {self.index + 1} of {len(self.addresses)} ({self.addresses[self.index]})"


def cluster(environ=os.environ) -> Cluster | None:
    """The cluster in ``TF_CONFIG``, or ``None`` when it is unset or names
    one process. A ``ConfigError`` says what is wrong with a malformed one."""
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        spec, task = dict(config["cluster"]), dict(config["task"])
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", '
            '"host2:port"]}, "task": {"type": "worker", "index": 0}}; '
            f"could not read it ({type(e).__name__}: {e})") from None
    other = sorted(set(spec) - set(ROLES))
    if other or kind not in ROLES:
        raise ConfigError(f"TF_CONFIG: train runs tasks of type {' and '.join(ROLES)} only; "
                          f"got {other or [kind]}")
    chief, workers = list(spec.get("chief", [])), list(spec.get("worker", []))
    addresses = tuple(chief + workers)
    if len(chief) > 1 or not 0 <= index < len(spec.get(kind, [])):
        raise ConfigError(f"TF_CONFIG: task {kind} {index} is not in the cluster "
                          f"{json.dumps(spec)} (at most one chief; indexes from 0)")
    if len(addresses) < 2:
        return None
    return Cluster(addresses, index + (len(chief) if kind == "worker" else 0), len(chief))


def check_cluster(data_parallel: bool, command: str = "train") -> Cluster | None:
    """The cluster this process trains in, after checking that the command
    and its settings can: a ``ConfigError`` otherwise."""
    found = cluster()
    if found is None:
        return None
    if command != "train":
        raise ConfigError(f"TF_CONFIG names a cluster of {len(found.addresses)} processes, "
                          f"which only `train --data-parallel` trains across; unset it "
                          f"for {command}")
    if not data_parallel:
        raise ConfigError(f"TF_CONFIG names a cluster of {len(found.addresses)} processes: "
                          "add --data-parallel to train one model across them, or unset it")
    require_tensorflow()  # before joining the cluster, which waits for every process
    return found


def require_tensorflow() -> None:
    """A ``ConfigError`` unless Keras runs on TensorFlow, which ``tf.distribute`` needs."""
    import keras

    if keras.config.backend() != "tensorflow":
        raise ConfigError("--data-parallel uses tf.distribute.MirroredStrategy and "
                          "needs the TensorFlow backend; unset KERAS_BACKEND")


def mirrored_strategy():
    """A ``tf.distribute.MultiWorkerMirroredStrategy`` when ``TF_CONFIG``
    names a cluster, else a ``MirroredStrategy`` over this process' GPUs, or
    its logical CPU devices; a ``ConfigError`` on another Keras backend."""
    require_tensorflow()
    if cluster() is not None:
        return multi_worker_strategy()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices())


@functools.cache
def multi_worker_strategy():
    """This process' one ``MultiWorkerMirroredStrategy``: TensorFlow allows
    one per process, created before TensorFlow runs anything, so ``train``
    asks for it first. A dead peer is noticed by its gRPC connection or its
    missed heartbeats (seconds); no timeout is set on each step, since the
    chief may spend minutes logging while the others wait for the refit."""
    import tensorflow as tf

    from zoo.compat import mend_keras_multi_worker

    mend_keras_multi_worker()
    return tf.distribute.MultiWorkerMirroredStrategy()


def devices() -> list[str]:
    """The devices ``mirrored_strategy`` trains on: the GPUs, else the
    logical CPU devices."""
    import tensorflow as tf

    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [d.name for d in found]


def replicas() -> int:
    """How many copies of the model train: every device of every process."""
    if cluster() is not None:
        return multi_worker_strategy().num_replicas_in_sync
    return len(devices())


def data_parallel_scope(data_parallel: bool):
    """Where to build and compile a model: a ``mirrored_strategy()``'s scope
    (the model then trains on every device), or nothing."""
    return mirrored_strategy().scope() if data_parallel else contextlib.nullcontext()


@contextlib.contextmanager
def peer_failures():
    """Turn TensorFlow's error when another process of the cluster dies (a
    collective step aborted) into a ``TrainingError`` that names it."""
    found = cluster()
    if found is None:
        yield
        return
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.AbortedError,
            tf.errors.DeadlineExceededError, tf.errors.CancelledError)
    try:
        yield
    except lost as e:
        raise TrainingError(peer_lost(found, str(e))) from None


def peer_lost(found: Cluster, message: str) -> str:
    """What to tell the user when a collective step failed with ``message``."""
    tasks = {(kind, int(i)) for kind, i in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)",
                                                      message)}
    gone = sorted({found.address(kind, i) for kind, i in tasks}
                  - {None, found.addresses[found.index]})
    who = ", ".join(gone) or "another process"
    reason = ("it missed its heartbeats" if "heartbeat" in message
              else "its connection was reset" if "reset by peer" in message.lower()
              else message.strip().splitlines()[0][:200] if message.strip() else "")
    return (f"training across {len(found.addresses)} processes stopped: {who} stopped "
            f"answering{f' ({reason})' if reason else ''}. This process is "
            f"{found.describe()}. Every process in TF_CONFIG must run the same command "
            "until it ends; start them all again.")


def distributed() -> bool:
    """Whether a ``tf.distribute`` strategy's scope is open here."""
    import keras

    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy()
