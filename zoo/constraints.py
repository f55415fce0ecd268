"""One vocabulary of argument constraints, for the builders' arguments, the
run settings (``experiments.config.RunConfig``) and the search's settings.

A constraint says whether it ``allows`` a value and ``describe``s what it
allows; ``invalid_values`` makes values it refuses, so that one test can try
an invalid value for every declared setting and check the message (as
scikit-learn's ``generate_invalid_param_val`` does for its estimators).
Messages have one form: "<name> must be <description>; received <value>".
"""

from __future__ import annotations

import dataclasses
import numbers


@dataclasses.dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (``"int"`` or ``"float"``) between ``low`` and
    ``high`` (either may be ``None``: unbounded); ``low_open``/``high_open``:
    that end itself is excluded. A bool is never a number here."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(
                value, numbers.Integral if self.kind == "int" else numbers.Real):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open
                                     else value <= self.high)

    def describe(self) -> str:
        what = "an int" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return (f"{what} in {'(' if self.low_open else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        return what


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values."""

    values: tuple

    def allows(self, value) -> bool:
        return value in self.values

    def describe(self) -> str:
        return f"one of {list(self.values)}"


@dataclasses.dataclass(frozen=True)
class OfType:
    """A value of one of ``types`` (``what`` names them for people); a bool
    only where ``bool`` is one of them."""

    types: tuple
    what: str

    def allows(self, value) -> bool:
        return isinstance(value, self.types) and not (
            isinstance(value, bool) and bool not in self.types)

    def describe(self) -> str:
        return self.what


class _Unlike:
    """A value no constraint of this vocabulary allows (an unknown type)."""

    def __repr__(self) -> str:
        return "<object>"


def invalid_values(constraint) -> list:
    """Values ``constraint`` refuses: of the wrong type, and just outside
    each bound of an ``Interval``."""
    out = [_Unlike()]
    if isinstance(constraint, Interval):
        out.append("text")
        step = 1 if constraint.kind == "int" else 0.5
        if constraint.low is not None:
            out.append(constraint.low if constraint.low_open else constraint.low - step)
        if constraint.high is not None:
            out.append(constraint.high if constraint.high_open else constraint.high + step)
        if constraint.kind == "int":
            out.append(1.5)
    elif isinstance(constraint, OneOf):
        out.append("not-an-option")
    return [v for v in out if not constraint.allows(v)]


def message(name: str, constraint, value) -> str:
    """The one form of a refused value's message."""
    return f"{name} must be {constraint.describe()}; received {value!r}"
