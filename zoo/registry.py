"""The model registry: one decorator, one lookup, one factory.

Every family registers its builder with ``@register``; the CLI, the tuner and
the tests iterate over ``list_models()`` and never keep lists of their own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import functools
import inspect
import warnings
from collections.abc import Callable

from zoo import checks
from zoo.cudnn import cudnn_report
from zoo.distributions import with_distribution
from zoo.quantiles import with_quantiles
from zoo.space import Spec

# An input each kind of family can be shown with (``lstm-zoo models``):
# ``(input_shape, outputs)`` by input axes.
EXAMPLE_INPUTS = {
    ("time", "features"): ((24, 1), 12),
    ("time", "rows", "cols", "channels"): ((10, 16, 16, 1), 1),
}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one family."""

    name: str
    builder: Callable
    space: dict[str, Spec]
    heads: tuple[str, ...]
    input_axes: tuple[str, ...]
    summary: str
    example: tuple | None = None

    @property
    def example_input(self) -> tuple:
        """``(input_shape, outputs)`` this family can be built with, for
        listings and smoke tests."""
        return self.example or EXAMPLE_INPUTS[self.input_axes]

    @property
    def default_head(self) -> str:
        return self.heads[0]

    @property
    def defaults(self) -> dict:
        """Every hyperparameter with its default (``name`` excluded)."""
        params = inspect.signature(self.builder.__wrapped__).parameters
        return {p: v.default for p, v in params.items()
                if v.kind is v.KEYWORD_ONLY and p != "name"}

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """Keyword arguments the builder accepts besides shape and outputs."""
        params = inspect.signature(self.builder).parameters
        return tuple(
            p for p, v in params.items() if v.kind is v.KEYWORD_ONLY
        )


_REGISTRY: dict[str, ModelInfo] = {}


def register(
    name: str,
    *,
    space: dict[str, Spec],
    heads: tuple[str, ...] = ("forecast", "classification", "language_model"),
    input_axes: tuple[str, ...] = ("time", "features"),
    example: tuple | None = None,
):
    """Register a builder under ``name``.

    The builder must have the signature
    ``fn(input_shape, outputs, *, head, <hyperparameters>..., name)``. The
    decorator adds what every family shares: validation of ``input_shape``,
    ``head`` and ``outputs`` (so each builder only checks its own
    hyperparameters), and a single warning when the built model cannot use
    the fused cuDNN kernels.

    Args:
        name: lower_snake family name, unique in the registry.
        space: the family's search space, ``{argument: Int|Float|Choice}``.
        heads: output heads the family supports; the first is the default.
        input_axes: names of the input axes (without batch), whose count is
            the required rank of ``input_shape``.
        example: ``(input_shape, outputs)`` to show the family with, where
            ``EXAMPLE_INPUTS`` has none for its input axes.
    """

    def decorate(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        where = fn.__name__
        axes = "(" + ", ".join(input_axes) + ")"

        @functools.wraps(fn)
        def builder(input_shape, outputs, *, head=heads[0], quantiles=None,
                    distribution=None, **hyperparameters):
            input_shape = checks.check_shape(
                where, "input_shape", input_shape,
                rank=len(input_axes), meaning=axes,
            )
            checks.check_choice(where, "head", head, heads)
            outputs = _check_outputs(where, head, outputs)
            _check_probabilistic_head(where, head, quantiles, distribution)
            model = fn(input_shape, outputs, head=head, **hyperparameters)
            _warn_if_not_fused(where, model, hyperparameters)
            return _probabilistic(where, model, quantiles, distribution)

        _REGISTRY[name] = ModelInfo(
            name=name,
            builder=builder,
            space=dict(space),
            heads=tuple(heads),
            input_axes=tuple(input_axes),
            summary=inspect.getdoc(fn).splitlines()[0].replace("``", ""),
            example=example,
        )
        return builder

    return decorate


def unregister(name: str) -> ModelInfo:
    """Remove family ``name`` from the registry; its entry.

    For families registered for a while (a test, a notebook experiment):
    see ``registered``.
    """
    get(name)  # the KeyError with suggestions
    return _REGISTRY.pop(name)


@contextlib.contextmanager
def registered(name: str, builder: Callable, **register_kwargs):
    """Register ``builder`` as family ``name`` for the ``with`` block only.

    >>> with registered("tiny_gru", build_tiny, space={...}):
    ...     build_model("tiny_gru", (6, 3), 1)

    Yields the ``ModelInfo``. Everything that iterates the registry (the
    CLI's flags, the tuner, ``list_models``) sees the family meanwhile.
    """
    register(name, **register_kwargs)(builder)
    try:
        yield get(name)
    finally:
        _REGISTRY.pop(name, None)


def list_models(pattern: str = "*", *, head: str | None = None) -> list[str]:
    """Registered family names, sorted; optionally filtered.

    Args:
        pattern: shell-style wildcard, e.g. ``"*lstm*"``.
        head: only families that support this output head.
    """
    return sorted(
        n for n, info in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (head is None or head in info.heads)
    )


def get(name: str) -> ModelInfo:
    """The registry entry for ``name``; ``KeyError`` with suggestions if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        near = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise KeyError(
            f"unknown model {name!r}; available: {list_models()}{hint}"
        ) from None


def build_model(name: str, input_shape, outputs, **hyperparameters):
    """Build an uncompiled ``keras.Model`` of family ``name``.

    Args:
        name: a family from ``list_models()``.
        input_shape: shape of one sample without the batch axis, e.g.
            ``(24, 1)`` for 24 steps of one feature.
        outputs: what the head predicts: the forecast horizon (or a
            ``(horizon, targets)`` tuple) for ``head="forecast"``, the
            number of classes for ``"classification"`` and
            ``"language_model"``, the number of future frames for ``"frames"``.
        **hyperparameters: the family's keyword arguments, including
            ``head``; see ``search_space(name)`` and the builder's docstring.
            A forecasting family also takes ``quantiles``, e.g.
            ``(0.1, 0.5, 0.9)``: the model then forecasts those quantiles,
            ``(batch, *outputs, quantiles)``, ordered by construction, the
            median its point forecast (``zoo.quantiles``); or
            ``distribution``, ``"normal"`` or ``"student_t"``: the model then
            forecasts its parameters, ``(batch, *outputs, parameters)``
            (``zoo.distributions``).

    Returns:
        An uncompiled ``keras.Model``.
    """
    info = get(name)
    allowed = set(info.hyperparameters) | {"head"}
    if "forecast" in info.heads:
        # the quantile and distribution heads (zoo.quantiles, zoo.distributions)
        allowed |= {"quantiles", "distribution"}
    for key in hyperparameters:
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(
                f"{info.builder.__name__}: unknown hyperparameter {key!r}; "
                f"allowed: {sorted(allowed)}{hint}"
            )
    return info.builder(input_shape, outputs, **hyperparameters)


def search_space(name: str) -> dict[str, Spec]:
    """The tunable hyperparameters of family ``name`` as plain data.

    Returns ``{argument: spec}`` where each spec is an ``Int``, ``Float`` or
    ``Choice`` with its range or choices and its default
    (``spec.as_dict()`` gives a JSON-able dict).
    """
    return dict(get(name).space)


# What a family without the argument amounts to: one layer deep.
NEUTRAL = {"num_layers": 1}


def comparable(values: dict, families) -> dict:
    """``values`` with every hyperparameter of ``families``' search spaces
    present: one a family lacks gets a neutral value (``NEUTRAL``, else 0,
    False or ``"none"``), so runs of different families share parameter
    names and MLflow's parallel-coordinates plot keeps them all."""
    out = dict(values)
    for family in families:
        for name, spec in search_space(family).items():
            if name not in out:
                out[name] = NEUTRAL.get(name, _neutral(spec))
    return out


def _neutral(spec):
    default = spec.default
    if isinstance(default, bool):
        return False
    if isinstance(default, (int, float)):
        return type(default)(0)
    return "none"


def _check_probabilistic_head(where, head, quantiles, distribution):
    for name, value in (("quantiles", quantiles), ("distribution", distribution)):
        if value is not None and head != "forecast":
            raise ValueError(f"{where}: `{name}` takes head='forecast' only; "
                             f"received {name}={value!r} with head={head!r}")
    if quantiles is not None and distribution is not None:
        raise ValueError(f"{where}: give `quantiles` or `distribution`, not both; received "
                         f"quantiles={quantiles!r}, distribution={distribution!r}")


def _probabilistic(where, model, quantiles, distribution):
    """``model`` with its quantile or distribution head, if it takes one."""
    if distribution is not None:
        return with_distribution(model, distribution, where)
    return model if quantiles is None else with_quantiles(model, quantiles, where)


def _check_outputs(where, head, outputs):
    if head == "forecast" and isinstance(outputs, (tuple, list)):
        if len(outputs) == 0:
            raise ValueError(
                f"{where}: `outputs` must be a positive int or a tuple of "
                f"positive ints such as (horizon, targets); received "
                f"outputs={outputs!r}"
            )
        return tuple(
            checks.check_int(where, "outputs", o, low=1) for o in outputs
        )
    low = 2 if head in ("classification", "language_model") else 1
    what = "classes" if low == 2 else "outputs"
    try:
        return checks.check_int(where, "outputs", outputs, low=low)
    except ValueError:
        raise ValueError(
            f"{where}: `outputs` ({what} for head={head!r}) must be an int "
            f">= {low}; received outputs={outputs!r}"
        ) from None


class CudnnWarning(UserWarning):
    """The model was built with settings that rule out the fused kernels."""


def _warn_if_not_fused(where, model, hyperparameters):

    blocked = [r for r in cudnn_report(model)
               if r.has_fused_kernel and not r.eligible]
    if blocked:
        reasons = sorted({why for r in blocked for why in r.reasons})
        layers = ", ".join(r.layer for r in blocked)
        warnings.warn(
            f"{where}: the fused cuDNN kernel will not be used on a GPU for "
            f"{layers} ({'; '.join(reasons)}); training falls back to the "
            f"slower generic kernel",
            CudnnWarning,
            stacklevel=4,
        )
