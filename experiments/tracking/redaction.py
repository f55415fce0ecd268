"""Secrets kept out of everything that reaches MLflow."""

from __future__ import annotations

import os

_SECRET_NAMES = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL")


def redact(value):
    """``value`` with secrets replaced by ``***`` before it reaches MLflow.

    Secrets are the values of environment variables whose names contain
    TOKEN, PASSWORD, SECRET, KEY or CREDENTIAL, and the user:password part of
    URLs. Dicts, lists and tuples are redacted item by item; other types are
    returned unchanged unless their text holds a secret.
    """
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if not isinstance(value, str):
        text = str(value)
        cleaned = redact(text)
        return value if cleaned == text else cleaned
    import re

    for name, secret in os.environ.items():
        if len(secret) >= 4 and any(word in name.upper() for word in _SECRET_NAMES):
            value = value.replace(secret, "***")
    # scheme://user:password@host and scheme://token@host -> scheme://***@host;
    # up to the last "@" before the path, as a password may hold an "@".
    return re.sub(r"(\w[\w+.-]*://)[^/\s?#]*@", r"\1***@", value)
