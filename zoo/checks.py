"""Argument checks shared by every builder.

Each check raises ``ValueError`` naming the builder, the argument, what is
allowed and what was received. Nothing is clamped or coerced silently.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from zoo.constraints import Interval, OneOf


def _where(builder: str) -> str:
    return f"{builder}: " if builder else ""


def check(builder, name, value, constraint):
    """Require ``constraint`` (``zoo.constraints``) to allow ``value``;
    the message names the builder, the argument and what it received."""
    if not constraint.allows(value):
        raise ValueError(f"{_where(builder)}`{name}` must be {constraint.describe()}; "
                         f"received {name}={value!r}")
    return value


def check_int(builder, name, value, *, low=None, high=None):
    """Require an int (not a bool) in ``[low, high]``; either bound optional."""
    return int(check(builder, name, value, Interval("int", low, high)))


def check_float(builder, name, value, *, low, high, high_inclusive=False):
    """Require a real number in ``[low, high)`` (or ``[low, high]``)."""
    return float(check(builder, name, value,
                       Interval("float", low, high, high_open=not high_inclusive)))


def check_choice(builder, name, value, allowed: Sequence):
    """Require ``value`` to be one of ``allowed``."""
    return check(builder, name, value, OneOf(tuple(allowed)))


def check_shape(builder, name, shape, *, rank: int, meaning: str):
    """Require a shape tuple of ``rank`` positive ints (``None`` for time).

    ``meaning`` spells the axes for the message, e.g. ``"(time, features)"``.
    """
    ok = isinstance(shape, Sequence) and not isinstance(shape, str)
    ok = ok and len(shape) == rank
    if ok:
        for i, dim in enumerate(shape):
            # The time axis (first) may be None for variable-length input.
            if dim is None and i == 0:
                continue
            if not isinstance(dim, numbers.Integral) or dim < 1:
                ok = False
    if not ok:
        raise ValueError(
            f"{_where(builder)}`{name}` must have rank {rank}, {meaning}, "
            f"with positive sizes; received {name}={shape!r}"
        )
    return tuple(None if d is None else int(d) for d in shape)


# What each shared hyperparameter may be, for every family that takes it.
# Builders check their arguments against this one table (``check_arguments``)
# and the search spaces are tested to lie inside it, so a range is never
# restated in a builder.
CONSTRAINTS = {
    "units": Interval("int", 1),
    "num_layers": Interval("int", 1),
    "kernel_size": Interval("int", 1, 11),
    "filters": Interval("int", 1),
    "pool_size": Interval("int", 1),
    "dropout": Interval("float", 0.0, 1.0, high_open=True),
    "recurrent_dropout": Interval("float", 0.0, 1.0, high_open=True),
}


def check_arguments(builder, **values):
    """Check each ``name=value`` against ``CONSTRAINTS``; the values, cast."""
    out = {}
    for name, value in values.items():
        constraint = CONSTRAINTS[name]
        check(builder, name, value, constraint)
        out[name] = int(value) if constraint.kind == "int" else float(value)
    return out
