"""Ensembles of forecasts: what a member is, and how members' forecasts
combine. The one place forecasts are averaged, for the test table
(``ForecastTask.forecast``) and for the served model (``Forecaster``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Member:
    """One network of an ensemble of forecasts: the Keras ``network`` and,
    when it reads another window or transforms than the ensemble's task,
    the task ``variant`` it was trained on (``None``: the ensemble's own)."""

    network: Any
    task: Any = None


def members_of(model) -> list:
    """``model`` as a list of what each member forecasts with: a list or
    tuple as it is, a single network as a list of one."""
    return list(model) if isinstance(model, (list, tuple)) else [model]


def combine(forecasts) -> np.ndarray:
    """The ensemble's forecast: the mean of its members' forecasts, each
    ``(n, horizon, targets)`` in the data's units.

    Averaged in the data's units, not in each member's transformed
    outputs: members may read different windows and transforms of the same
    history, and only their forecasts in the data's units are comparable."""
    forecasts = [np.asarray(f, dtype="float64") for f in forecasts]
    if not forecasts:
        raise ValueError("an ensemble needs at least one member's forecast")
    shapes = {f.shape for f in forecasts}
    if len(shapes) > 1:
        raise ValueError(f"the members' forecasts differ in shape: {sorted(shapes)}")
    return np.mean(forecasts, axis=0)


__all__ = ["Member", "combine", "members_of"]
