"""Shared helpers for tests that look inside an MLflow store."""

import os
import signal
import socket
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


def popen_from_a_terminal(*args, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` for a child that a test will Ctrl-C: started with
    SIGINT at its default, as from a terminal. A shell starts background jobs
    (as CI may start this suite) with SIGINT ignored, children inherit that,
    and Python then installs no KeyboardInterrupt handler, so the test's
    SIGINT would never arrive. Set in this (main) thread around the start,
    not in a ``preexec_fn``, which is not safe in a process with threads."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(*args, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


def run_cli_process(*args, cwd, env_extra=None, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def wait_for_training(db, proc, *, run_kind=None, timeout=240):
    """Block until a run (of ``run_kind`` if given) in ``db`` has logged a
    loss; fail if ``proc`` exits first or nothing happens in time."""
    import time

    import pytest

    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = [r for r in all_runs(db)
                if run_kind is None or r.data.tags.get("run_kind") == run_kind]
        if runs and client_for(db).get_metric_history(runs[0].info.run_id, "loss"):
            return runs
        if proc.poll() is not None:
            pytest.fail(f"the process ended before training: {proc.returncode}")
        time.sleep(0.5)
    pytest.fail("training never started")


def read_only(folder):
    """Make ``folder`` read-only for a command; returns the prefix to run it with.

    Permissions do not bind root, so as root the command runs in a user and
    mount namespace where ``folder`` is bind-mounted read-only, as a
    read-only file system would be.
    """
    import shutil

    import pytest

    os.makedirs(folder, exist_ok=True)
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        return []
    prefix = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
              'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    if shutil.which("unshare") and subprocess.run(
            [*prefix, "true"], capture_output=True).returncode == 0:
        return prefix
    pytest.skip("running as root where user namespaces are not allowed: no way to "
                "make a folder read-only for this test")


def listening_addresses(port: int) -> set[str]:
    """The local addresses on which a socket LISTENs on ``port``, read from
    the kernel's own tables (``/proc/net/tcp`` and ``tcp6``)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                addr, hex_port = local.split(":")
                if state != "0A" or int(hex_port, 16) != port:
                    continue
                raw = bytes.fromhex(addr)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (held open together
    while found, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
