"""The flags of `train`, `compare` and `tune`, as ``RunConfig`` declares them, and back."""

from __future__ import annotations

import argparse

# Builder arguments the forecast task sets from a setting of its own
# (``ForecastTask.builder_arguments``), so a flag of theirs would be ignored.
SET_BY_TASK = {"season_length": "--season", "history": "--window",
               "series_channels": "--static, --id-embedding"}


def hyperparameter_flags() -> dict[str, type]:
    """``{name: type}`` of every hyperparameter of every registered family
    (its default's type), each a flag of `train` and `compare`: a family's
    new hyperparameter is a flag without a change here. Those a task sets
    (``autoregressive``, a ``RunConfig`` setting of its own; ``SET_BY_TASK``)
    are left out."""
    import dataclasses

    import zoo
    from experiments.config import RunConfig

    settings = {f.name for f in dataclasses.fields(RunConfig)}
    flags = {}
    for name in zoo.list_models():
        for key, default in zoo.get(name).defaults.items():
            if (key != "head" and key not in flags and key not in settings
                    and key not in SET_BY_TASK and default is not None):
                flags[key] = type(default)
    return flags


def _parse_pairs(items, flag) -> dict:
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag} must look like KEY=VALUE; received {item!r}")
        out[key.replace("-", "_")] = _literal(value)
    return out


def run_config(args, **overrides):
    """The ``RunConfig`` of the parsed flags: every setting the command has a
    flag for, mapped by name (``RunConfig`` declares the flags)."""
    import dataclasses

    from experiments.config import RunConfig

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
             if f.metadata.get("group") and getattr(args, f.name, None) is not None}
    # The few flags whose text needs reading: lists, KEY=VALUE pairs, numbers.
    if "dataset_options" in given:
        given["dataset_options"] = _parse_pairs(given["dataset_options"], "--data-option")
    if "transforms" in given:
        given["transforms"] = tuple(t for t in given["transforms"].split(",")
                                    if t and t != "none")
    for key in ("target", "features", "future_features", "static"):
        if key in given:
            given[key] = tuple(given[key])
    if "calendar" in given:
        given["calendar"] = tuple(p.strip() for p in given["calendar"].split(",") if p.strip())
    if "intervals" in given:
        from experiments.forecasting.forecaster import check_levels

        given["intervals"] = check_levels(
            t for t in given["intervals"].split(",") if t and t != "none")
    if "quantiles" in given:
        given["quantiles"] = check_quantile_text(given["quantiles"])
    for key in ("val_size", "test_size"):
        if key in given:
            given[key] = _literal(given[key])
    hp = {k: getattr(args, k) for k in hyperparameter_flags()
          if getattr(args, k, None) is not None}
    hp.update(_parse_pairs(getattr(args, "param", None), "--param"))
    if hp:
        given["hyperparameters"] = hp
    given.update(overrides)
    return RunConfig(**{k: v for k, v in given.items() if v is not None})


def check_quantile_text(text) -> tuple[float, ...]:
    """'0.1,0.5,0.9' -> (0.1, 0.5, 0.9), or a ``ConfigError`` naming the flag."""
    from experiments.errors import ConfigError
    from zoo.quantile_levels import check_quantiles

    try:
        return check_quantiles("--quantiles", tuple(float(t) for t in str(text).split(",")
                                                    if t.strip()))
    except ValueError as err:
        detail = str(err).removeprefix("--quantiles: ")
        if "could not convert" in detail:
            detail = f"levels in (0, 1) such as 0.1,0.5,0.9; received {text!r}"
        raise ConfigError(f"--quantiles: {detail}") from None


def _literal(value):
    """'0.2' -> 0.2, '24' -> 24, 'true' -> True, else the string."""
    if value is None or not isinstance(value, str):
        return value
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            number = cast(value)
        except ValueError:
            continue
        # float() also reads "nan" and "inf"; those are words here.
        if number == number and abs(number) != float("inf"):
            return number
    return value


def add_run_flags(p):
    """The data, training and tracking flags, as ``RunConfig`` declares them."""
    import dataclasses

    from experiments.config import RunConfig

    groups = {}
    for field in dataclasses.fields(RunConfig):
        group = field.metadata.get("group")
        if not group:
            continue
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        flag = "--" + (field.metadata["flag"] or field.name.replace("_", "-"))
        groups[group].add_argument(flag, dest=field.name, default=None,
                                   help=field.metadata["help"],
                                   **field.metadata["argparse"])


def add_hp_flags(p):
    g = p.add_argument_group("model hyperparameters (any family's; see `lstm-zoo models`)")
    for name, kind in hyperparameter_flags().items():
        if kind is bool:
            g.add_argument("--" + name.replace("_", "-"), type=_boolean, default=None,
                           metavar="true|false")
        else:
            g.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    g.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="any other builder argument")


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false; received {text!r}")
    return text.lower() == "true"
