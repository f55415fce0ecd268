"""MLflow's own authentication for a team's tracking server.

Beyond loopback (or with ``tracking-server --auth``), ``mlflow server`` runs
with ``--app-name basic-auth``: every request but ``/health`` needs a user
and password, and MLflow's users and permissions decide what each may read
or change. Its configuration lives in ``auth.ini`` beside the database, a
file only its owner may read (0600), as the PostgreSQL password does: it
holds the admin's password, made at random once, and the path of MLflow's
user database. The password is never on a command line, printed, logged or
in MLflow.

Workers and users authenticate through MLflow's own environment variables,
``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``; the admin
adds users with MLflow's ``mlflow.server.auth.client.AuthServiceClient``.
"""

from __future__ import annotations

import configparser
import os
import secrets

ADMIN = "admin"
SECRETS = "lstm_zoo"  # the config's own section, beside MLflow's [mlflow]


def config_path(folder: str) -> str:
    """``folder``'s authentication configuration (made by ``ensure_config``)."""
    return os.path.join(os.path.abspath(folder), "auth.ini")


def ensure_config(folder: str) -> str:
    """Write ``config_path(folder)`` once, mode 0600, with a random admin
    password and MLflow's user database in ``folder``; return its path. An
    existing one is kept (MLflow ignores a changed admin password once the
    admin exists), and refused if others may read it."""
    path = config_path(folder)
    if os.path.exists(path):
        if os.stat(path).st_mode & 0o077:
            from experiments.tracking import TrackingError

            raise TrackingError(f"{path} holds the admin password and may be read by other "
                                f"users; make it private (chmod 600 {path}) and start again")
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    config = configparser.ConfigParser()
    config["mlflow"] = {
        # Signed-in users read every run; only the admin, and those it grants, change them.
        "default_permission": "READ",
        "database_uri": f"sqlite:///{os.path.join(os.path.dirname(path), 'auth.db')}",
        "admin_username": ADMIN,
        "admin_password": secrets.token_urlsafe(24),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # A password is checked (PBKDF2) once a minute per worker process, not
        # on every request a run's logging makes; a changed password reaches
        # every process within that minute.
        "auth_cache_ttl_seconds": "60",
    }
    # Signs the sessions and CSRF tokens of MLflow's web app (MLflow reads
    # it from MLFLOW_FLASK_SERVER_SECRET_KEY); every server process the same.
    config[SECRETS] = {"flask_secret_key": secrets.token_urlsafe(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        config.write(f)
    return path


def admin_credentials(folder: str) -> dict[str, str]:
    """The admin's ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``,
    read from ``folder``'s configuration (for a worker's environment)."""
    config = configparser.ConfigParser()
    config.read(config_path(folder))
    section = config["mlflow"]
    return {"MLFLOW_TRACKING_USERNAME": section["admin_username"],
            "MLFLOW_TRACKING_PASSWORD": section["admin_password"]}


def server_env(folder: str) -> dict[str, str]:
    """What ``mlflow server --app-name basic-auth`` needs in its environment."""
    path = ensure_config(folder)
    config = configparser.ConfigParser()
    config.read(path)
    return {"MLFLOW_AUTH_CONFIG_PATH": path,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": config[SECRETS]["flask_secret_key"]}
