"""An ensemble's forecast is the mean of its members' forecasts in the
data's units, computed in one place for the test table and the served model."""

import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest

from experiments.forecasting.ensembles import Member, combine, members_of
from experiments.forecasting.preprocessing import Preprocessor
from tests.experiments.forecasting.test_forecasting import (
    HORIZON,
    WINDOW,
    forecaster_for,
    history_of,
    monthly,
)


def test_combine_is_the_mean_and_refuses_members_of_other_shapes():
    a, b = np.ones((3, 2, 1)), np.full((3, 2, 1), 3.0)
    np.testing.assert_allclose(combine([a, b]), np.full((3, 2, 1), 2.0))
    with pytest.raises(ValueError, match="differ in shape"):
        combine([a, np.ones((3, 1, 1))])
    with pytest.raises(ValueError, match="at least one"):
        combine([])


def test_members_of_takes_a_network_or_a_list():
    assert members_of("net") == ["net"]
    assert members_of(("a", "b")) == ["a", "b"]
    assert Member("net").task is None


def test_served_ensemble_of_members_with_other_transforms_is_the_mean_of_each_alone():
    """Members reading other transforms of the same history: the served
    forecast is the mean of each member's own forecast in the data's units
    (not of their scaled outputs)."""
    series = monthly()
    forecaster, first = forecaster_for(series, transforms=("log", "diff"))
    other = Preprocessor.fit(series, window=WINDOW, horizon=HORIZON, transforms=(),
                             season=12, n_train=30)
    keras.utils.set_random_seed(1)
    second = keras.Sequential([keras.Input((WINDOW, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(HORIZON)])
    both = dataclasses.replace(forecaster, members=(forecaster.preprocessor, other))
    history = history_of(series)
    out = both.forecast([first, second], history)
    alone = [both.member(i).forecast(net, history) for i, net in enumerate([first, second])]
    np.testing.assert_allclose(out["sales"], (alone[0]["sales"] + alone[1]["sales"]) / 2,
                               rtol=1e-6)
    assert not np.allclose(alone[0]["sales"], alone[1]["sales"])  # the members differ
    pd.testing.assert_series_equal(out["month"], alone[0]["month"])
