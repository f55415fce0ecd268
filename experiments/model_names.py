"""Which registered model a run's served model becomes a version of.

The default name says what was modelled: ``lstm-zoo-<dataset>-<target>``.
Two different series saved under the same file name (every branch's
``history.csv``) would still share it, so every version carries what it was
trained on (the data's digest, targets and features) and a default name
that already holds versions of other data is not reused: the model goes to
the first of ``<name>-2``, ``<name>-3``... that is free or holds the same
data, and the caller is told why. A name the user chose is used as given.
"""

from __future__ import annotations

import dataclasses
import re

IDENTITY_KEYS = ("data_digest", "targets", "features")


@dataclasses.dataclass(frozen=True)
class Choice:
    """The name to register under and, when it is not the one asked for,
    why (a sentence for the user)."""

    name: str
    reason: str | None = None


def default_name(dataset: str, targets: str | None) -> str:
    """``lstm-zoo-<dataset>[-<targets>]``, made safe as a registered name."""
    parts = ["lstm-zoo", dataset, *([targets] if targets else [])]
    name = "-".join(parts).replace(",", "-").lower()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:180]


def identity(task, digest: str) -> dict[str, str]:
    """What a version was trained on, as version tags."""
    params = task.params()
    return {"data_digest": str(digest), "targets": str(params.get("targets", "")),
            "features": str(params.get("features", ""))}


def version_identity(client, version) -> dict[str, str]:
    """A version's identity: from its tags, or, for a version registered
    before they were recorded, from the params of the run it came from."""
    tags = version.tags or {}
    if all(k in tags for k in IDENTITY_KEYS):
        return {k: tags[k] for k in IDENTITY_KEYS}
    try:
        params = client.get_run(version.run_id).data.params if version.run_id else {}
    except Exception:  # a deleted run: nothing to compare with
        params = {}
    return {k: params.get(k, "") for k in IDENTITY_KEYS}


def differences(client, name: str, wanted: dict[str, str]) -> list[str]:
    """How the versions already under ``name`` differ from ``wanted``
    (``[]`` when there are none, or all were trained on the same data)."""
    import mlflow

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return []
    found = set()
    for version in versions:
        have = version_identity(client, version)
        for key in IDENTITY_KEYS:
            if have.get(key) != wanted[key]:
                found.add(f"{key.replace('_', ' ')} {have.get(key) or 'unknown'!r} "
                          f"(version {version.version}) where this run has "
                          f"{wanted[key] or 'none'!r}")
    return sorted(found)


def choose(client, default: str, given: str | None, wanted: dict[str, str]) -> Choice:
    """The name to register under: ``given`` as it is; else ``default``, or
    the first free ``default-N`` (or one holding the same data) when
    ``default`` holds versions of other data."""
    if given:
        return Choice(given)
    differ = differences(client, default, wanted)
    if not differ:
        return Choice(default)
    suffix = 2
    while differences(client, f"{default}-{suffix}", wanted):
        suffix += 1
    name = f"{default}-{suffix}"
    return Choice(name, f"{default} already holds models of other data ({differ[0]}); "
                        f"registered as {name} instead, so that {default}@best still "
                        f"forecasts the data it was trained on. Pass --model-name to "
                        f"choose the name")


def register(model_uri: str, name: str, tags: dict, description: str = "") -> str:
    """Register ``model_uri`` as a new version of ``name`` with ``tags`` (what
    it was trained on, its card's tags) and ``description`` (the model
    card), point the alias ``best`` at it and tag the active run with it.
    Returns the version."""
    import mlflow

    version = mlflow.register_model(model_uri, name, tags=tags)
    client = mlflow.MlflowClient()
    if description:
        client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, "best", version.version)
    mlflow.set_tag("registered_model", f"{name}/{version.version}")
    return str(version.version)
