"""`tune --loss search`: each trial's head (point, quantile, Normal or
Student-t) is a searched setting of the forecasting task, and trials are
ranked by a proper score, their validation CRPS (the search itself:
tests/tuning/test_tuning.py)."""

import numpy as np
import pytest

from experiments import cli
from experiments.config import SEARCHED_LOSSES, RunConfig
from experiments.forecasting import metrics
from experiments.tasks import load_tasks


@pytest.fixture(scope="module")
def searched():
    return load_tasks(RunConfig(data="airline", loss="search", epochs=1), "tune")[1][-1]


def test_the_search_offers_every_head_and_each_variant_carries_its_own(searched):
    from zoo.quantiles import QuantileLoss

    assert searched.quantiles == () and searched.loss_name == "mse"
    assert searched.data_space()["loss"].values == SEARCHED_LOSSES
    assert searched.params()["loss_function"] == "search"
    assert searched.variant(loss="mse") is searched
    quantile = searched.variant(loss="quantile")
    assert isinstance(quantile.loss, QuantileLoss) and quantile.loss_name == "quantile"
    assert 0.5 in quantile.quantiles and {0.1, 0.9, 0.025, 0.975} <= set(quantile.quantiles)
    assert quantile.builder_arguments("gru")["quantiles"] == quantile.quantiles
    assert quantile.params()["loss_function"] == "quantile"
    normal = searched.variant(loss="normal")
    assert normal.distribution == "normal" and normal.quantiles == quantile.quantiles
    # The same windows: only the head differs.
    assert normal.prepared is searched.prepared
    assert searched.variant(loss="normal") is normal  # made once


def test_a_point_network_is_scored_by_its_absolute_error_on_the_mase_scale(searched):
    p = searched.prepared
    truth = p.truth(p.val)
    assert searched.validation_crps(p.val.y) == pytest.approx(0.0, abs=1e-6)  # float32 targets
    raw = p.val.y + 0.1
    expected = np.mean(np.abs(p.to_original(raw, p.val.origins) - truth)
                       / np.asarray(metrics.scale_for(p)))
    assert searched.validation_crps(raw) == pytest.approx(expected)
    assert expected > 0


def test_train_refuses_loss_search(tmp_path, capsys):
    code = cli.main(["train", "--model", "gru", "--data", "airline", "--loss", "search",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert code == 2 and "--loss search lets tune choose" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()
