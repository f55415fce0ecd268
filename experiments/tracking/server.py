"""A tracking server for teams: ``mlflow server`` on a PostgreSQL database.

``lstm-zoo tracking-server`` (``make tracking-server``) keeps a PostgreSQL
cluster in a folder of its own (``.tracking/postgres``), starts it on
127.0.0.1, and runs ``mlflow server`` against it with a local artifact
folder. Searches with many workers log there concurrently, which a SQLite
file does badly. PostgreSQL comes from the system's packages (Debian/Ubuntu:
``apt-get install postgresql``); PostgreSQL refuses to run as root, so as root
the database runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from experiments.tracking import TrackingError

DB_USER = "lstm_zoo"
DB_NAME = "mlflow"


def postgres_bin() -> str:
    """The folder with ``initdb``, ``pg_ctl`` and ``postgres``."""
    for found in (shutil.which("pg_ctl"),
                  *sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)):
        if found and os.path.exists(os.path.join(os.path.dirname(found), "initdb")):
            return os.path.dirname(os.path.realpath(found))
    raise TrackingError("PostgreSQL is not installed (no initdb/pg_ctl found); on "
                        "Debian or Ubuntu: sudo apt-get install postgresql")


def _as_db_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for a server started right after)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pgpass_file(folder: str) -> str:
    """The libpq password file of the cluster in ``folder`` (mode 0600).

    Clients find the password there through ``PGPASSFILE``, so it is never
    on a command line (which every local user can read), in a URI, in a log
    or in MLflow.
    """
    return os.path.join(os.path.abspath(folder), "pgpass")


def _client_env(folder: str) -> dict[str, str]:
    return dict(os.environ, PGPASSFILE=pgpass_file(folder))


def _new_password(folder: str, data: str) -> str:
    """Write a random password for ``DB_USER`` to the cluster's pgpass file
    and to a one-time file ``initdb`` reads; return the latter's path."""
    import secrets

    password = secrets.token_urlsafe(24)
    fd = os.open(pgpass_file(folder), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"127.0.0.1:*:*:{DB_USER}:{password}\n")
    once = os.path.join(folder, ".initdb-password")
    fd = os.open(once, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(once, "postgres", "postgres")  # initdb runs as `postgres`
    return once


def start_postgres(folder: str, port: int | None = None) -> tuple[str, int]:
    """Create (once) and start a PostgreSQL cluster in ``folder`` listening on
    127.0.0.1 only; return ``(database URI, port)``. Idempotent.

    Connections over TCP need the password in ``pgpass_file(folder)``
    (scram-sha-256); the local socket admits only the cluster's own system
    user (peer). The URI carries no password: pass ``PGPASSFILE``.
    """
    bindir = postgres_bin()
    folder = os.path.abspath(folder)
    data = os.path.join(folder, "data")
    os.makedirs(folder, exist_ok=True)
    if os.geteuid() == 0:  # the database runs as `postgres`, which must own its folder
        shutil.chown(folder, "postgres", "postgres")
    if not os.path.exists(os.path.join(data, "PG_VERSION")):
        once = _new_password(folder, data)
        try:
            subprocess.run(_as_db_owner([
                os.path.join(bindir, "initdb"), "-D", data, "-U", DB_USER,
                "--auth-host=scram-sha-256", "--auth-local=peer", f"--pwfile={once}",
                "-E", "UTF8"]), check=True, capture_output=True, text=True)
        finally:
            os.remove(once)
    elif not os.path.exists(pgpass_file(folder)):
        raise TrackingError(
            f"the PostgreSQL cluster in {data} has no password file {pgpass_file(folder)} "
            f"(it was made by an older lstm-zoo that let every local user in); move "
            f"{folder} away and run the command again to make a protected one")
    port = port or free_port()
    status = subprocess.run(_as_db_owner([os.path.join(bindir, "pg_ctl"), "-D", data,
                                          "status"]), capture_output=True, text=True)
    if status.returncode != 0:
        done = subprocess.run(_as_db_owner([
            os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-t", "60",
            "-l", os.path.join(folder, "postgres.log"),
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"]),
            capture_output=True, text=True)
        if done.returncode != 0:
            raise TrackingError(f"PostgreSQL did not start in {data}: "
                                f"{(done.stderr or done.stdout).strip()[-1000:]}; see "
                                f"{os.path.join(folder, 'postgres.log')}")
    else:
        with open(os.path.join(data, "postmaster.pid")) as f:
            port = int(f.read().splitlines()[3])  # line 4: the port it listens on
    created = subprocess.run([os.path.join(bindir, "createdb"), "-h", "127.0.0.1",
                              "-p", str(port), "-U", DB_USER, "--no-password", DB_NAME],
                             capture_output=True, text=True, env=_client_env(folder))
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise TrackingError(f"cannot create database {DB_NAME!r}: {created.stderr.strip()}")
    return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{port}/{DB_NAME}", port


def stop_postgres(folder: str) -> None:
    data = os.path.join(os.path.abspath(folder), "data")
    if os.path.exists(os.path.join(data, "postmaster.pid")):
        subprocess.run(_as_db_owner([os.path.join(postgres_bin(), "pg_ctl"), "-D", data,
                                     "-m", "fast", "-w", "stop"]),
                       capture_output=True, text=True)


def start_mlflow(backend_uri: str, artifacts: str, host: str = "127.0.0.1",
                 port: int = 5000, timeout: float = 120.0, *, postgres: str | None = None,
                 log: str | None = None, auth: str | None = None) -> subprocess.Popen:
    """Start ``mlflow server`` on ``backend_uri``; return once it answers.

    Args:
        postgres: the folder of the cluster ``start_postgres`` made, whose
            password file the server reads.
        log: where the server's output goes (default ``mlflow-server.log``
            beside ``artifacts``). A file, not a pipe nobody reads, which
            would stop the server once it filled.
        auth: a folder for MLflow's authentication (``experiments.tracking.auth``):
            the server then answers only users it knows. None: no
            authentication (loopback only).
    """
    os.makedirs(artifacts, exist_ok=True)
    log = log or os.path.join(os.path.dirname(os.path.abspath(artifacts)),
                              "mlflow-server.log")
    env = _client_env(postgres) if postgres else dict(os.environ)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
               "--artifacts-destination", os.path.abspath(artifacts), "--host", host,
               "--port", str(port), "--workers", "2"]
    if auth:
        from experiments.tracking import auth as authentication

        env.update(authentication.server_env(auth))
        command += ["--app-name", "basic-auth"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    proc.log = log
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log, errors="replace") as f:
                tail = f.read()[-2000:]
            raise TrackingError(f"mlflow server exited (see {log}): {tail}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2):
                return proc
        time.sleep(0.5)
    proc.terminate()
    raise TrackingError(f"mlflow server did not answer on {host}:{port} in {timeout:g} s")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run(folder: str = ".tracking", host: str = "127.0.0.1", port: int = 5000,
        auth: bool = False) -> int:
    """``lstm-zoo tracking-server``: PostgreSQL plus ``mlflow server`` until
    Ctrl-C; with MLflow's authentication beyond loopback, or with ``auth``."""
    from experiments.tracking import Terminated, terminate_as_exception

    auth = auth or host not in LOOPBACK
    pg_folder = os.path.join(folder, "postgres")
    backend, pg_port = start_postgres(pg_folder)
    server = start_mlflow(backend, os.path.join(folder, "artifacts"), host, port,
                          postgres=pg_folder, auth=folder if auth else None)
    sign_in = ""
    if auth:
        from experiments.tracking.auth import ADMIN, config_path

        sign_in = (f"\n  export MLFLOW_TRACKING_USERNAME={ADMIN}\n  export "
                   f"MLFLOW_TRACKING_PASSWORD=...  # admin_password in "
                   f"{config_path(folder)} (0600), or a user the admin made")
    print(f"MLflow tracking server on http://{host}:{port} (PostgreSQL on 127.0.0.1:"
          f"{pg_port}, data in {os.path.abspath(folder)}, server log {server.log}"
          f"{', users and passwords required' if auth else ''}). In each shell that "
          f"should log there:\n\n  export MLFLOW_TRACKING_URI=http://{host}:{port}"
          f"{sign_in}\n\nCtrl-C stops both.", flush=True)
    try:
        with terminate_as_exception():
            server.wait()
    except (KeyboardInterrupt, Terminated):
        pass
    finally:
        server.terminate()
        server.wait()
        stop_postgres(os.path.join(folder, "postgres"))
    return 0
