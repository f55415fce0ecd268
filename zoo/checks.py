"""Argument checks shared by every builder.

Each check raises ``ValueError`` naming the builder, the argument, what is
allowed and what was received. Nothing is clamped or coerced silently.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence


def _where(builder: str) -> str:
    return f"{builder}: " if builder else ""


def check_int(builder, name, value, *, low=None, high=None):
    """Require an int (not a bool) in ``[low, high]``; either bound optional."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise ValueError(
            f"{_where(builder)}`{name}` must be an int {_range(low, high)}; "
            f"received {name}={value!r}"
        )
    return int(value)


def check_float(builder, name, value, *, low, high, high_inclusive=False):
    """Require a real number in ``[low, high)`` (or ``[low, high]``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = low <= value and (value <= high if high_inclusive else value < high)
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(
            f"{_where(builder)}`{name}` must be a float in [{low}, {high}"
            f"{bracket}; received {name}={value!r}"
        )
    return float(value)


def check_choice(builder, name, value, allowed: Sequence):
    """Require ``value`` to be one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            f"{_where(builder)}`{name}` must be one of {list(allowed)}; "
            f"received {name}={value!r}"
        )
    return value


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
# restated in a builder. ``(kind, low, high)``: ints in [low, high] (None: no
# bound), floats in [low, high).
CONSTRAINTS = {
    "units": ("int", 1, None),
    "num_layers": ("int", 1, None),
    "kernel_size": ("int", 1, 11),
    "filters": ("int", 1, None),
    "pool_size": ("int", 1, None),
    "dropout": ("float", 0.0, 1.0),
    "recurrent_dropout": ("float", 0.0, 1.0),
}


def check_arguments(builder, **values):
    """Check each ``name=value`` against ``CONSTRAINTS``; the values, cast."""
    out = {}
    for name, value in values.items():
        kind, low, high = CONSTRAINTS[name]
        if kind == "int":
            out[name] = check_int(builder, name, value, low=low, high=high)
        else:
            out[name] = check_float(builder, name, value, low=low, high=high)
    return out


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""
