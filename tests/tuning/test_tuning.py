"""Searches end to end: MLflow parent and children, failures, resume."""

import importlib.metadata
import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import cli
from experiments.config import RunConfig
from tests.helpers import all_runs, client_for
from tuning.search import SearchConfig, run_search

pytestmark = pytest.mark.slow
SINE = dict(data="sine", epochs=2, patience=2, window=12, horizon=3, transforms=(),
            val_size=40, test_size=40)


def children_of(db, parent_id):
    return [r for r in all_runs(db)
            if r.data.tags.get("mlflow.parentRunId") == parent_id]


def search(tmp_path, **kwargs):
    run = RunConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                    **{**SINE, **kwargs.pop("run", {})})
    cfg = SearchConfig(run=run, directory=str(tmp_path / "tuner"), **kwargs)
    return run_search(cfg)


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband", "grid"])
def test_each_tuner_logs_parent_and_children(tuner, tmp_path):
    if tuner == "hyperband":
        # Hyperband sets its own budget: with at most 3 epochs, a bracket of
        # three 1-epoch trials whose best goes on to epoch 3, then one of two
        # 3-epoch trials. No early stopping, no linear start: each epoch counts.
        result = search(tmp_path, models=("gru", "vanilla_lstm"), tuner=tuner,
                        run={"epochs": 3, "patience": 3, "autoregressive": False,
                             "combine": "none"})
    else:
        # random serves a combination with the statistical baselines, as by
        # default; the others the networks alone (--combine none).
        result = search(tmp_path, models=("gru", "vanilla_lstm"), tuner=tuner,
                        max_trials=3, run={} if tuner == "random" else {"combine": "none"})
    db = tmp_path / "mlflow.db"
    client = client_for(db)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["tuner"] == tuner
    kids = children_of(db, result.parent_run_id)
    assert len(kids) == len(result.trials) >= 2
    if tuner != "hyperband":
        assert len(kids) == 3
    else:
        assert len(kids) == 6 and parent.data.params["max_trials"] == "6"
        check_hyperband_halves(client, kids)
    for kid in kids:
        assert kid.info.status == "FINISHED"
        p = kid.data.params
        assert p["model"] in ("gru", "vanilla_lstm")
        assert {"units", "dropout", "learning_rate", "batch_size"} <= set(p)
        # Every searched family's hyperparameters under train's names, so that
        # MLflow's parallel-coordinates plot keeps every trial: a one-layer
        # family logs num_layers 1.
        assert "num_layers" in p
        if p["model"] == "vanilla_lstm":
            assert p["num_layers"] == "1"
        assert not any("/" in k for k in p)
        assert client.get_metric_history(kid.info.run_id, "loss")
        assert kid.data.metrics["best_val_loss"] > 0
        assert "score" not in kid.data.metrics and "epochs" not in kid.data.metrics
        assert kid.data.metrics["epochs_trained"] >= 1
        assert not set(kid.data.metrics) & set(p)  # no name both a metric and a param
        # The run tags a train run has, and the data as an input.
        for tag in ("keras_backend", "device", "cudnn_eligible", "git_commit", "family"):
            assert tag in kid.data.tags, tag
        assert kid.inputs.dataset_inputs[0].dataset.digest == parent.inputs.dataset_inputs[
            0].dataset.digest
    best = [k for k in kids if k.data.tags.get("best_trial") == "true"]
    assert len(best) == 1
    assert parent.data.tags["best_trial_run_id"] == best[0].info.run_id
    assert parent.data.tags["family"] == best[0].data.tags["family"]  # one family, no list
    assert parent.data.tags["families"] == "gru,vanilla_lstm"
    assert parent.data.tags["refit"] == "true" and parent.data.metrics["refit_epochs"] >= 1
    for row in result.trials:
        assert row["status"] == "COMPLETED" and row["epochs"] >= 1
        assert row["seconds"] > 0 and row["learning_rate"] > 0
    arts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"trials.csv", "search_space.json", "best_hyperparameters.json",
            "plots"} <= arts
    (output,) = parent.outputs.model_outputs  # the served model, a logged model
    m = parent.data.metrics
    assert m["best_trial_val_loss"] == pytest.approx(
        min(k.data.metrics["best_val_loss"] for k in kids))
    assert not set(m) & set(parent.data.params)
    for key in ("test_rmse", "test_seasonal_naive_rmse",
                "test_skill_vs_seasonal_naive"):
        assert key in m
    name, version = result.registered
    mv = client.get_model_version_by_alias(name, "best")
    assert str(mv.version) == version and mv.tags["search"] == parent.data.tags["search"]
    # The model card: what it is, what it saw, how good, how to call it.
    assert mv.tags["family"] == parent.data.tags["family"] and mv.tags["refit"] == "true"
    assert mv.tags["data_digest"] == parent.inputs.dataset_inputs[0].dataset.digest
    assert float(mv.tags["test_rmse"]) == pytest.approx(m["test_rmse"], rel=1e-3)
    for text in ("Test metrics", "seasonal naive", "refit on all the data",
                 f'mlflow.pyfunc.load_model("models:/{name}@best")'):
        assert text in mv.description, text
    assert mv.source.startswith("models:/m-")  # a logged model, shown in the UI
    if tuner == "random":  # the combination chosen, on the run and the card
        assert parent.data.tags["combination"].startswith("serving ")
        assert mv.tags["combination"] == parent.data.tags["combination"]
        assert "Combined with the statistical baselines" in mv.description
        assert m["test_combined_rmse"] > 0 and 0 <= m["combined_network_weight"] <= 1
    else:
        assert "combination" not in parent.data.tags and "test_combined_rmse" not in m


def test_nan_and_build_error_trials_are_failed_children(flaky_family, tmp_path):
    result = search(tmp_path, models=("flaky_test",), tuner="grid", max_trials=3,
                    run={"refit": False})  # --no-refit: serve the train-only model
    kids = {k.data.params["mode"]: k for k in
            children_of(tmp_path / "mlflow.db", result.parent_run_id)}
    parent = client_for(tmp_path / "mlflow.db").get_run(result.parent_run_id)
    assert parent.data.tags["refit"] == "false" and "refit_epochs" not in parent.data.metrics
    assert not result.refit
    assert set(kids) == {"ok", "nan", "error"}
    assert kids["ok"].info.status == "FINISHED"
    assert kids["nan"].info.status == "FAILED"
    assert "loss became nan" in kids["nan"].data.tags["error"]
    assert kids["error"].info.status == "FAILED"
    assert "planted build error" in kids["error"].data.tags["error"]
    assert result.best_hyperparameters["flaky_test/mode"] == "ok"


def test_all_failing_search_exits_nonzero_and_claims_no_best(flaky_family,
                                                             tmp_path, capsys):
    flaky_family("nan", "error")
    db = tmp_path / "mlflow.db"
    code = cli.main(["tune", "--data", "sine", "--models", "flaky_test",
                     "--tuner", "grid", "--max-trials", "2", "--epochs", "2",
                     "--window", "12", "--horizon", "3",
                     "--directory", str(tmp_path / "tuner"),
                     "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "all 2 trials failed" in err and "planted build error" in err
    (parent,) = [r for r in all_runs(db) if r.data.tags.get("run_kind") == "search"]
    assert parent.info.status == "FAILED"
    assert "best_trial_val_loss" not in parent.data.metrics
    assert client_for(db).search_registered_models() == []


def test_changed_data_refuses_to_resume(tmp_path):
    search(tmp_path, models=("gru",), max_trials=1, name="same")
    with pytest.raises(ValueError, match=r"search 'same' .*window changed.*--fresh"):
        search(tmp_path, models=("gru",), max_trials=1, name="same",
               run={"window": 10})
    again = search(tmp_path, models=("gru",), max_trials=1, name="same",
                   run={"window": 10}, fresh=True)
    assert len(again.trials) == 1


def test_resume_after_sigkill(tmp_path):
    db = tmp_path / "mlflow.db"
    command = [sys.executable, "-m", "experiments.cli", "tune", "--data", "sine",
               "--models", "gru", "--max-trials", "3", "--epochs", "15",
               "--patience", "15", "--window", "12", "--horizon", "3",
               "--name", "resumable", "--tracking-uri", f"sqlite:///{db}",
               # What follows the trials (a refit, the combination) is not at stake here.
               "--no-refit", "--combine", "none"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    from experiments import tracking

    tracking.init_store(f"sqlite:///{db}")
    proc = subprocess.Popen(command, cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            kids = [r for r in all_runs(db) if r.data.tags.get("run_kind") == "trial"]
            if (any(k.info.status == "FINISHED" for k in kids)
                    and any(k.info.status == "RUNNING" for k in kids)):
                break
            if proc.poll() is not None:
                pytest.fail("search ended before it could be killed: "
                            + proc.stderr.read().decode()[-2000:])
            time.sleep(0.3)
        else:
            pytest.fail("search never reached its second trial")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    before = {k.data.tags["keras_tuner.trial_id"]: k.info.run_id for k in kids
              if k.info.status == "FINISHED"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    kids = [r for r in all_runs(db) if r.data.tags.get("run_kind") == "trial"]
    finished = [k for k in kids if k.info.status == "FINISHED"]
    trial_ids = [k.data.tags["keras_tuner.trial_id"] for k in finished]
    assert len(finished) == 3 and len(set(trial_ids)) == 3
    # Completed trials were not retrained: their runs are the same ones.
    for trial_id, run_id in before.items():
        assert run_id in {k.info.run_id for k in finished
                          if k.data.tags["keras_tuner.trial_id"] == trial_id}
    killed = [k for k in kids if k.info.status == "KILLED"]
    assert len(killed) == 1 and not [k for k in kids if k.info.status == "RUNNING"]
    parents = [r for r in all_runs(db) if r.data.tags.get("run_kind") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "trial 3/3" in done.stdout


def check_hyperband_halves(client, kids):
    """Each first-round trial trains its round's epochs from epoch 0; a
    promoted trial goes on from its earlier round's weights, from
    ``initial_epoch`` to ``tuner_epochs``, as the child runs record."""
    by_trial = {k.data.tags["keras_tuner.trial_id"]: k for k in kids}
    promoted = 0
    for kid in kids:
        p, m = kid.data.params, kid.data.metrics
        start, stop = int(p["initial_epoch"]), int(p["tuner_epochs"])
        losses = client.get_metric_history(kid.info.run_id, "loss")
        assert m["epochs_trained"] == stop - start == len(losses), p
        assert min(h.step for h in losses) == start
        assert {"hyperband_bracket", "hyperband_round"} <= set(p)
        if p["hyperband_round"] == "0":
            assert start == 0 and "continues_trial" not in p
            continue
        promoted += 1
        earlier = by_trial[p["continues_trial"]]
        assert int(earlier.data.params["tuner_epochs"]) == start
        assert earlier.data.params["units"] == p["units"]
        # Started from the earlier trial's weights: its first epoch is
        # already better than the earlier trial's first (from scratch).
        before = client.get_metric_history(earlier.info.run_id, "loss")
        first = min(before, key=lambda h: h.step).value
        assert min(losses, key=lambda h: h.step).value < first
    assert promoted == 1


def test_hyperband_takes_its_own_budget_not_max_trials(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["tune", "--data", "sine", "--tracking-uri", uri, "--directory",
              str(tmp_path / "tuner")]
    assert cli.main([*common, "--tuner", "hyperband", "--max-trials", "6"]) == 2
    assert "--max-trials does not apply to --tuner hyperband" in capsys.readouterr().err
    assert cli.main([*common, "--tuner", "random", "--hyperband-iterations", "2"]) == 2
    assert "--hyperband-iterations applies to --tuner hyperband only" in \
        capsys.readouterr().err
    assert all_runs(tmp_path / "mlflow.db") == []


def test_registered_model_loads_in_fresh_process(tmp_path):
    # No refit: the model served is the trial's; its combination is loaded too.
    search(tmp_path, models=("gru",), max_trials=1, run={"refit": False})
    script = ("import sys, numpy as np, mlflow\n"
              "mlflow.set_tracking_uri(sys.argv[1])\n"
              "m = mlflow.pyfunc.load_model('models:/lstm-zoo-sine-value@best')\n"
              "history = m.unwrap_python_model().history\n"  # the end of the sine data
              "y = m.predict(history)\n"
              "assert list(y.columns[:2]) == ['step', 'value'], list(y.columns)\n"
              "assert len(y) == 3 and np.isfinite(y['value']).all(), y\n"
              "print('loaded', y.shape)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script,
                           f"sqlite:///{tmp_path / 'mlflow.db'}"],
                          capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded (3, 6)" in done.stdout


def test_registered_names_never_mix_two_datasets(tmp_path, capsys):
    """Two series with one file name and target (here: two sine waves) do
    not become versions of one registered model; `train --model-name`
    registers where it is told."""
    # No refit and no combination: only the names registered are at stake.
    lean = {"refit": False, "combine": "none"}
    first = search(tmp_path, models=("gru",), max_trials=1, run=lean)
    assert first.registered == ("lstm-zoo-sine-value", "1")
    capsys.readouterr()
    other = search(tmp_path, models=("gru",), max_trials=1, name="noisier",
                   run={**lean, "dataset_options": {"noise": 0.3}})
    assert other.registered == ("lstm-zoo-sine-value-2", "1")
    out = capsys.readouterr().out
    assert "note: lstm-zoo-sine-value already holds models of other data (data digest" in out
    client = client_for(tmp_path / "mlflow.db")
    first_digest = client.get_model_version("lstm-zoo-sine-value", "1").tags["data_digest"]
    assert client.get_model_version("lstm-zoo-sine-value-2", "1").tags["data_digest"] != \
        first_digest
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["train", "--model", "gru", "--data", "sine", "--epochs", "1",
                     "--units", "4", "--combine", "none", "--model-name", "lstm-zoo-sine-value",
                     "--tracking-uri", uri]) == 0
    assert "registered as lstm-zoo-sine-value version 2" in capsys.readouterr().out
    assert client.get_model_version("lstm-zoo-sine-value", "2").tags["data_digest"] == \
        first_digest


def test_tensorboard_is_declared_and_importable():
    """keras-tuner imports tensorboard's hparams plugin in every trial on the
    TensorFlow backend; without it every trial fails quietly."""
    requires = importlib.metadata.requires("lstm-zoo") or []
    assert any(r.startswith("tensorboard") for r in requires)
    assert importlib.util.find_spec("tensorboard.plugins.hparams") is not None


def test_bad_tuner_exits_2(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    assert cli.main(["tune", "--tuner", "genetic", "--tracking-uri",
                     f"sqlite:///{db}"]) == 2
    assert "--tuner must be one of ['random', 'bayesian', 'hyperband', 'grid']" \
        in capsys.readouterr().err
    assert not db.exists()




def test_same_seed_random_search_proposes_the_same_trials(tmp_path):
    def proposals(folder, seed, trials=2):
        result = search(folder, models=("gru", "vanilla_lstm"), tuner="random",
                        max_trials=trials, run={"seed": seed, "epochs": 1, "refit": False})
        outcome = ("trial", "status", "score", "epochs", "best_epoch", "seconds")
        return [{k: v for k, v in t.items() if k not in outcome} for t in result.trials]

    first = proposals(tmp_path / "a", seed=7)
    assert len(first) == 2 and len({str(t) for t in first}) == 2
    assert proposals(tmp_path / "b", seed=7) == first
    assert proposals(tmp_path / "c", seed=8, trials=1) != first[:1]


def test_data_parallel_search_trains_each_trial_under_mirrored_strategy(tmp_path):
    import tensorflow as tf

    seen = []
    original = tf.distribute.MirroredStrategy

    def spy(*args, **kwargs):
        strategy = original(*args, **kwargs)
        seen.append(strategy)
        return strategy

    tf.distribute.MirroredStrategy = spy
    try:
        result = search(tmp_path, models=("gru",), max_trials=2, data_parallel=True,
                        run={"epochs": 1})
    finally:
        tf.distribute.MirroredStrategy = original
    assert len(seen) == 1 and seen[0].num_replicas_in_sync >= 1
    kids = children_of(tmp_path / "mlflow.db", result.parent_run_id)
    assert len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids)
    parent = client_for(tmp_path / "mlflow.db").get_run(result.parent_run_id)
    assert parent.data.params["data_parallel"] == "True"


def test_finished_trials_leave_no_traced_graphs_behind(tmp_path, monkeypatch):
    """TensorFlow registers a custom gradient (holding the whole traced train
    step) every time Keras' optimizer is traced, and never drops it; the
    search drops each trial's own, so memory stays flat over many trials."""
    import gc

    from tensorflow.python.framework.func_graph import FuncGraph

    from experiments.training.memory import custom_gradients_registered
    from tuning import tracked

    seen = []
    original = tracked.SearchTracker.begin_trial

    def counting(self, trial):
        gc.collect()
        seen.append((custom_gradients_registered(),
                     sum(isinstance(o, FuncGraph) for o in gc.get_objects())))
        return original(self, trial)

    monkeypatch.setattr(tracked.SearchTracker, "begin_trial", counting)
    search(tmp_path, models=("vanilla_lstm", "gru"), tuner="random", max_trials=4,
           run={"epochs": 1})
    assert len(seen) == 4
    # Each trial traced (and registered) its own train step; none is left
    # by the time the next one begins, and graphs do not pile up.
    assert [registered for registered, _ in seen] == [seen[0][0]] * 4, seen
    assert seen[2:] == [seen[1]] * 2, seen


def test_ensemble_serves_the_mean_of_its_members_forecasts(tmp_path):
    """`tune --ensemble 3` with the window searched: the members are the top
    three trials, whatever window each saw; the registered model reads the
    raw history through each member's own preprocessing and forecasts the
    mean of their forecasts (in the data's units), each member refit; its
    test metrics are logged beside the best model's."""
    import mlflow
    import numpy as np

    result = search(tmp_path, models=("gru",), max_trials=3, ensemble=3,
                    run={"window": None, "seed": 1, "combine": "none"})  # the mean alone
    parent = client_for(tmp_path / "mlflow.db").get_run(result.parent_run_id)
    m = parent.data.metrics
    assert np.isfinite(m["ensemble_test_rmse"]) and np.isfinite(m["test_rmse"])
    assert result.ensemble_metrics["test_rmse"] == pytest.approx(m["ensemble_test_rmse"])
    assert parent.data.tags["ensemble"] == "ensemble of 3 (gru, gru, gru)"
    members = parent.data.tags["ensemble_members"].split("; ")
    assert len(members) == 3 and all("(window " in part for part in members), members
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/lstm-zoo-sine-value@best")
    inner = model.unwrap_python_model()
    forecaster = inner.forecaster
    assert isinstance(inner.network, list) and len(inner.network) == 3
    windows = [pre.window for pre in forecaster.members]
    assert len(set(windows)) >= 2, f"the members saw one window: {windows} {members}"
    assert [net.input_shape[1] for net in inner.network] == windows
    assert forecaster.min_rows == max(windows)
    history = inner.history.iloc[-forecaster.min_rows:]
    out = model.predict(history)
    each = [forecaster.member(i).forecast(net, history)["value"]
            for i, net in enumerate(inner.network)]
    np.testing.assert_allclose(out["value"], np.mean(each, axis=0), rtol=1e-6)
    assert not np.allclose(each[0], each[1])  # different models
    with pytest.raises(ValueError, match=rf"needs at least {max(windows)} \(window"):
        model.predict(history.iloc[1:])


def test_ensemble_is_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(ValueError, match=r"--ensemble-of must be one of \['trials', 'seeds'\]"):
        search(tmp_path, models=("gru",), max_trials=2, ensemble=3, ensemble_of="best")
    with pytest.raises(ValueError, match="--ensemble must be an int >= 1"):
        search(tmp_path, models=("gru",), max_trials=2, ensemble=0)


def test_folds_make_the_trial_score_the_mean_over_folds(tmp_path):
    """`tune --folds 3`: each trial trains on three expanding windows (the
    scaler of each fitted on its own training rows); its score is the mean of
    the three best validation losses, each logged on the trial's run."""
    import numpy as np

    result = search(tmp_path, models=("gru",), max_trials=1,
                    run={"folds": 3, "refit": False})
    (kid,) = children_of(tmp_path / "mlflow.db", result.parent_run_id)
    m = kid.data.metrics
    folds = [m[f"fold{k}_best_val_loss"] for k in (1, 2, 3)]
    assert len(set(folds)) == 3 and all(np.isfinite(folds))
    assert m["best_val_loss"] == pytest.approx(np.mean(folds), rel=1e-5)
    assert result.best_score == pytest.approx(np.mean(folds), rel=1e-5)
    # The last fold's own curve is the one logged per epoch; its best is fold 3's.
    client = client_for(tmp_path / "mlflow.db")
    curve = [h.value for h in client.get_metric_history(kid.info.run_id, "val_loss")]
    assert min(curve) == pytest.approx(folds[2], rel=1e-5)


def test_searched_window_and_transforms_with_folds_and_a_seed_ensemble(tmp_path):
    """Window and transforms left to the search: trials see different windows
    and are ranked on validation RMSE in the data's units (mean over two
    folds, each logged on the trial); the best trial's settings are what is
    evaluated and served; `--ensemble-of seeds` averages the best
    configuration trained from other seeds."""
    import mlflow
    import numpy as np

    result = search(tmp_path, models=("gru",), max_trials=4, ensemble=2,
                    ensemble_of="seeds", run={
                        "window": None, "transforms": None, "folds": 2,
                        "dataset_options": {"length": 160, "period": 8},
                        "horizon": 2, "val_size": 24, "test_size": 24})
    db = tmp_path / "mlflow.db"
    client = client_for(db)
    parent = client.get_run(result.parent_run_id)
    kids = children_of(db, result.parent_run_id)
    assert result.objective == "val_rmse"
    assert len({k.data.params["window"] for k in kids}) >= 2, "the window is searched"
    for kid in kids:
        m = kid.data.metrics
        folds = [m["fold1_best_val_rmse"], m["fold2_best_val_rmse"]]
        assert m["best_val_rmse"] == pytest.approx(np.mean(folds), rel=1e-5)
        assert client.get_metric_history(kid.info.run_id, "val_rmse")
    assert parent.data.metrics["best_trial_val_rmse"] == pytest.approx(
        min(k.data.metrics["best_val_rmse"] for k in kids))
    best = result.best_hyperparameters
    prepared = result.task.prepared
    assert prepared.window == best["window"]
    assert (",".join(prepared.transforms) or "none") == best["transforms"]
    assert parent.data.params["best_window"] == str(best["window"])
    assert "seed 43 of trial" in parent.data.tags["ensemble_members"]
    assert np.isfinite(parent.data.metrics["ensemble_test_rmse"])
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    inner = mlflow.pyfunc.load_model("models:/lstm-zoo-sine-value@best").unwrap_python_model()
    assert inner.forecaster.preprocessor.window == best["window"]
    assert len(inner.network) == 2


def test_plateau_schedule_and_weight_decay_reach_the_trial():
    """`lr_schedule=plateau` halves the learning rate when validation stops
    improving; `weight_decay > 0` trains with AdamW at that decay."""
    import keras
    import keras_tuner as kt
    import numpy as np

    from tuning.hypermodel import ZooHyperModel

    hypermodel = ZooHyperModel(["gru"], (6, 1), 1, patience=6)
    hp = kt.HyperParameters()
    hp.Fixed("lr_schedule", "plateau")
    hp.Fixed("weight_decay", 1e-3)
    hp.Fixed("learning_rate", 1e-2)
    model = hypermodel.build(hp)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == pytest.approx(1e-3)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6, 1)), rng.normal(size=(32, 1))
    # Validation targets the model cannot learn: the loss plateaus at once.
    val = (rng.normal(size=(16, 6, 1)), 50 + rng.normal(size=(16, 1)))
    history = hypermodel.fit(hp, model, x, y, validation_data=val, epochs=12, verbose=0)
    rates = history.history["learning_rate"]
    assert rates[0] == pytest.approx(1e-2) and min(rates) <= 5e-3
    hp.values["lr_schedule"], hp.values["weight_decay"] = "constant", 0.0
    model = hypermodel.build(hp)
    assert type(model.optimizer) is keras.optimizers.Adam
    assert "learning_rate" not in hypermodel.fit(hp, model, x, y, validation_data=val,
                                                 epochs=3, verbose=0).history


def test_best_epoch_weights_are_written_once_from_memory(tmp_path):
    """The trial's checkpoint holds the weights of its best epoch (by the
    objective), not its last, and is written when the trial ends only."""
    import keras
    import keras_tuner as kt
    import numpy as np

    from tuning.tracked import BestEpochWeights

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    path = tmp_path / "checkpoint.weights.h5"
    best = BestEpochWeights(kt.Objective("val_rmse", "min"), str(path))
    best.set_model(model)
    kept = None
    for epoch, score in enumerate([3.0, 1.0, 2.0]):
        model.set_weights([np.full((1, 1), float(epoch)), np.zeros(1)])
        best.on_epoch_end(epoch, {"val_rmse": score})
        if score == 1.0:
            kept = model.get_weights()
        assert not path.exists()
    best.write()
    latest = model.get_weights()
    assert latest[0][0, 0] == 2.0  # the model itself keeps its last weights
    model.load_weights(path)
    assert model.get_weights()[0][0, 0] == kept[0][0, 0] == 1.0



def test_a_boolean_choice_reaches_the_builder_as_a_bool():
    """keras-tuner's ``hp.Choice`` turns False/True into 0/1 (bool is an
    int), which a builder checking for a bool refuses: a zoo Choice of
    False and True is declared as ``hp.Boolean``."""
    import keras_tuner as kt

    from tuning.hypermodel import to_hp
    from zoo.space import Choice

    hp = kt.HyperParameters()
    assert to_hp(hp, "flag", Choice((False, True), default=True)) is True
    assert {type(hp.space[0].random_sample(seed)) for seed in range(8)} == {bool}


def test_the_summary_says_what_the_combination_served():
    """tune's summary line names what the test table's combination was:
    the networks alone, at a weight beside the statistical models, or the
    statistical models alone, and where its weights were fitted."""
    import types

    from tuning.commands import combination_line

    def line(weight):
        scores = {"test_combined_rmse": 12.5, "test_combined_skill_vs_best_baseline": 0.1,
                  "combined_network_weight": weight}
        return combination_line(types.SimpleNamespace(ensemble_metrics=None,
                                                      test_metrics=scores))

    assert "the statistical models alone: the networks added nothing" in line(0.0)
    assert "served (the networks alone; weights fitted on validation)" in line(1.0)
    assert "the networks at weight 0.40 with the statistical models" in line(0.4)
    assert "test RMSE 12.5; skill vs the best baseline +0.100" in line(0.4)
    assert combination_line(types.SimpleNamespace(
        ensemble_metrics=None, test_metrics={"test_rmse": 1.0})) is None


def test_an_ensemble_of_a_panel_keeps_to_the_best_trials_data_settings():
    """A panel's served reader reads one window: its ensemble takes the next
    best trials with the best one's window and id embedding only; a single
    series' ensemble may mix windows (forecasts averaged in its units)."""
    from types import SimpleNamespace

    from experiments.tasks.forecast import ForecastTask
    from experiments.tasks.panel import PanelTask
    from tuning.ensemble import candidates
    from tuning.hypermodel import ZooHyperModel

    def trial(window, id_embedding):
        return SimpleNamespace(hyperparameters={"window": window, "id_embedding": id_embedding})

    best = [trial(8, True), trial(4, True), trial(8, False), trial(8, True)]
    hypermodel = SimpleNamespace(data=[object()], data_space={"window": 0, "id_embedding": 0})
    hypermodel.data_of = lambda hp: ZooHyperModel.data_of(hypermodel, hp)
    assert candidates(hypermodel, best, PanelTask) == [best[0], best[3]]
    assert candidates(hypermodel, best, ForecastTask) == best
    # A search of heads (tune --loss search) never mixes them in one ensemble.
    heads = [SimpleNamespace(hyperparameters={"window": w, "loss": loss}) for w, loss in
             ((8, "quantile"), (4, "normal"), (4, "quantile"), (8, "mse"))]
    hypermodel.data_space = {"window": 0, "loss": 0}
    assert candidates(hypermodel, heads, ForecastTask) == [heads[0], heads[2]]


def test_loss_search_ranks_heads_by_validation_crps_and_serves_the_best(tmp_path):
    """`tune --loss search`: every trial a head of its own, each scored by its
    validation CRPS; the best trial's head is what is registered, and its
    ensemble takes trials of that head only."""
    import mlflow
    import numpy as np

    from experiments.config import SEARCHED_LOSSES

    result = search(tmp_path, models=("gru",), max_trials=4, ensemble=2,
                    run={"loss": "search", "seed": 3, "combine": "none"})
    assert result.objective == "val_crps"
    trials = children_of(tmp_path / "mlflow.db", result.parent_run_id)
    heads = {t.data.params["loss_function"] for t in trials}
    assert heads <= set(SEARCHED_LOSSES) and len(heads) >= 2, heads
    assert all(np.isfinite(t.data.metrics["best_val_crps"]) for t in trials)
    best = min(trials, key=lambda t: t.data.metrics["best_val_crps"])
    assert result.best_hyperparameters["loss"] == best.data.params["loss_function"]
    assert result.task.loss_name == best.data.params["loss_function"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/lstm-zoo-sine-value@best")
    out = model.predict(model.unwrap_python_model().history)
    assert (out["lower_80"] <= out["value"]).all() and (out["value"] <= out["upper_80"]).all()
