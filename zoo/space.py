"""Search spaces as plain data, declared beside each builder.

A family's module declares a dict ``{argument name: spec}``; the tuner turns
each spec into one ``hp.Int`` / ``hp.Float`` / ``hp.Choice`` call (see
``tuning.hypermodel``). Keeping the space as data, not as tuner calls, lets the
tests check it against the builder's real signature so the two never drift.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer hyperparameter in ``[low, high]`` (both inclusive)."""

    low: int
    high: int
    default: int
    step: int = 1
    kind: str = dataclasses.field(default="int", init=False)

    def __post_init__(self):
        if not self.low <= self.default <= self.high:
            raise ValueError(
                f"Int: default must lie in [{self.low}, {self.high}]; "
                f"received default={self.default}"
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Float:
    """A float hyperparameter in ``[low, high]``; ``log`` samples log-uniformly."""

    low: float
    high: float
    default: float
    log: bool = False
    kind: str = dataclasses.field(default="float", init=False)

    def __post_init__(self):
        if not self.low <= self.default <= self.high:
            raise ValueError(
                f"Float: default must lie in [{self.low}, {self.high}]; "
                f"received default={self.default}"
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a fixed list of values (str, int, float or bool)."""

    values: tuple
    default: Any
    kind: str = dataclasses.field(default="choice", init=False)

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(self.values))
        if self.default not in self.values:
            raise ValueError(
                f"Choice: default must be one of {list(self.values)}; "
                f"received default={self.default!r}"
            )

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["values"] = list(self.values)
        return d


Spec = Int | Float | Choice


def defaults(space: dict[str, Spec]) -> dict[str, Any]:
    """The default point of a search space: ``{name: spec.default}``."""
    return {name: spec.default for name, spec in space.items()}
