"""One vocabulary of constraints: for every declared setting (builder
arguments, run settings, search settings) an invalid value is generated from
its constraint and refused with the one message form."""

import dataclasses
import re

import pytest

import zoo
from experiments.config import RunConfig, flag_of
from experiments.errors import ConfigError
from tests.zoo.test_zoo import tiny_shape
from tuning.settings import SETTINGS, SearchConfig
from zoo.checks import CONSTRAINTS
from zoo.constraints import Interval, OneOf, invalid_values, message
from zoo.space import Choice

RUN_SETTINGS = {f.name: f.metadata["constraint"] for f in dataclasses.fields(RunConfig)
                if f.metadata.get("constraint") is not None}
BUILDER_ARGUMENTS = [(family, name) for family in zoo.list_models()
                     for name in CONSTRAINTS if name in zoo.get(family).hyperparameters]


def test_invalid_values_are_refused_and_valid_ones_allowed():
    ints = Interval("int", 1, 11)
    assert invalid_values(ints)[1:] == ["text", 0, 12, 1.5]
    assert ints.allows(1) and ints.allows(11) and not ints.allows(True)
    unit = Interval("float", 0.0, 1.0, high_open=True)
    assert unit.describe() == "a number in [0, 1)" and 1.0 in invalid_values(unit)
    assert invalid_values(OneOf(("a", "b")))[1:] == ["not-an-option"]


@pytest.mark.parametrize("name", sorted(RUN_SETTINGS))
def test_every_run_setting_refuses_an_invalid_value(name):
    constraint = RUN_SETTINGS[name]
    for value in invalid_values(constraint):
        with pytest.raises(ConfigError) as err:
            RunConfig(**{name: value})
        assert str(err.value) == message(flag_of(name), constraint, value)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_search_setting_refuses_an_invalid_value(name):
    constraint = SETTINGS[name]
    for value in invalid_values(constraint):
        with pytest.raises(ConfigError) as err:
            SearchConfig(**{name: value})
        assert str(err.value) == message("--" + name.replace("_", "-"), constraint, value)


@pytest.mark.parametrize("family,name", BUILDER_ARGUMENTS,
                         ids=[f"{f}-{n}" for f, n in BUILDER_ARGUMENTS])
def test_every_builder_argument_refuses_an_invalid_value(family, name):
    constraint = CONSTRAINTS[name]
    for value in invalid_values(constraint):
        expected = f"`{name}` must be {constraint.describe()}; received {name}={value!r}"
        with pytest.raises(ValueError, match=re.escape(expected)):
            zoo.build_model(family, tiny_shape(family), 2, **{name: value})


@pytest.mark.parametrize("family", zoo.list_models())
def test_search_spaces_lie_inside_the_constraints(family):
    for name, spec in zoo.search_space(family).items():
        if name not in CONSTRAINTS:
            continue
        values = spec.values if isinstance(spec, Choice) else (spec.low, spec.high)
        for value in values:
            assert CONSTRAINTS[name].allows(value), (family, name, value)
