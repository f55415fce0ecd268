"""The structure holds: one validated configuration, a preprocessing object
that round-trips through JSON, settings a task does not take refused, and a
family registered anywhere reaching the CLI, the tuner and the registry-wide
tests."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import zoo
from experiments import cli, data
from experiments.config import RunConfig
from experiments.errors import ConfigError
from experiments.forecasting.preprocessing import Preprocessor
from tests import tiny_family
from tests.conftest import REPO

# === The configuration's constraints: one case per kind of error ===


@pytest.mark.parametrize("kwargs,message", [
    ({"window": 0}, r"--window must be an int >= 1; received 0"),
    ({"epochs": 2.5}, r"--epochs must be an int >= 1; received 2.5"),
    ({"batch_size": True}, r"--batch-size must be an int >= 1; received True"),
    ({"learning_rate": 0.0}, r"--learning-rate must be a number > 0; received 0.0"),
    ({"seed": -1}, r"--seed must be an int >= 0; received -1"),
    ({"test_size": 1.5}, r"--test-size must be a fraction in \(0, 1\), a row count >= 1 "
                         r"or a date; received 1.5"),
    ({"transforms": ("log", "cube")}, r"--transform must be transforms among \['log', "
                                      r"'diff', 'seasonal_diff'\].*received \('log', 'cube'\)"),
    ({"csv": 3}, r"--csv must be a file path; received 3"),
    ({"dataset_options": ["count=3"]}, r"--data-option must be KEY=VALUE options"),
])
def test_each_kind_of_bad_setting_names_flag_allowed_and_received(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kwargs)


def test_defaults_are_resolved_in_one_place():
    cfg = RunConfig(data="sine").resolved()
    assert (cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.patience, cfg.seed) == (
        200, 32, 1e-3, 20, 42)
    assert RunConfig(data="sine", epochs=3).resolved().epochs == 3


# === A setting the task (or command) does not take is refused ===

@pytest.mark.parametrize("flags,unused,kind", [
    (["--data", "sine", "--label-col", "y"], "--label-col", "forecast"),
    (["--data", "memory", "--window", "5"], "--window", "classification"),
    (["--data", "memory", "--transform", "log"], "--transform", "classification"),
    (["--data", "moving_digits", "--season", "4"], "--season", "frames"),
    (["--data", "timemachine", "--horizon", "3"], "--horizon", "language_model"),
])
def test_a_setting_the_task_does_not_take_is_refused(flags, unused, kind, tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    code = cli.main(["train", "--model", "gru", *flags, "--tracking-uri", f"sqlite:///{db}"])
    assert code == 2
    assert f"{unused} is not used by the {kind} task" in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.parametrize("flag,value", [("--batch-size", "16"), ("--learning-rate", "0.01")])
def test_tune_refuses_what_it_would_ignore(flag, value, tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    code = cli.main(["tune", "--data", "sine", flag, value, "--tracking-uri",
                     f"sqlite:///{db}", "--directory", str(tmp_path / "tuner")])
    assert code == 2
    assert flag in capsys.readouterr().err
    assert not db.exists()


# === The preprocessing object ===

def series(values, transforms_index=True):
    index = pd.date_range("2000-01-01", periods=len(values), freq="MS")
    frame = pd.DataFrame({"y": values, "x": np.cos(np.arange(len(values)))}, index=index)
    return data.Series(name="t", frame=frame, targets=("y",), features=("y", "x"),
                       source="generated:test", season=12)


@pytest.mark.parametrize("transforms", [(), ("log",), ("log", "diff"),
                                        ("diff", "seasonal_diff"), ("log", "seasonal_diff")])
def test_preprocessing_round_trips_through_json_and_inverts(transforms):
    t = np.arange(120)
    values = 100 + t + 20 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 2, 120)
    s = series(values)
    pre = Preprocessor.fit(s, window=24, horizon=6, transforms=transforms, season=12,
                           n_train=80)
    again = Preprocessor.from_config(json.loads(json.dumps(pre.to_config())))
    assert again == pre
    assert again.freq == "MS" and again.last_time.startswith("2009-12-01")
    assert len(again.tail.get("y", [])) == pre.lost
    a, b = pre.transform(s.frame), again.transform(s.frame)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-6, equal_nan=True)
    # The scaler saw the training rows only.
    train = a.iloc[pre.lost:80]
    np.testing.assert_allclose(train.mean().to_numpy(), 0, atol=1e-6)
    # inverse_transform undoes transform: the true future, fed back as model
    # outputs, comes back in the data's own units.
    origins = np.arange(pre.lost + 30, 110)
    z = np.stack([a["y"].to_numpy()[o + 1:o + 7] for o in origins])
    past = np.stack([values[o - pre.lost + 1:o + 1] for o in origins])[..., None]
    back = again.inverse_transform(z, past)
    truth = np.stack([values[o + 1:o + 7] for o in origins])[..., None]
    np.testing.assert_allclose(back, truth, rtol=1e-6)


def test_preprocessing_needs_no_training_code():
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys, experiments.forecasting.preprocessing\n"
         "heavy = [m for m in ('keras', 'tensorflow', 'mlflow', 'experiments.train',"
         " 'experiments.training.fitting') if m in sys.modules]\n"
         "print(heavy)"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# === A family registered anywhere is everywhere ===

def test_a_registered_family_reaches_the_cli_and_the_tuner():
    from tuning.hypermodel import ZooHyperModel

    with zoo.registered(tiny_family.NAME, tiny_family.build_tiny, space=tiny_family.SPACE):
        args = cli.build_parser().parse_args(
            ["train", "--model", tiny_family.NAME, "--extra-width", "2"])
        assert args.extra_width == 2
        assert cli.run_config(args).hyperparameters == {"extra_width": 2}
        hypermodel = ZooHyperModel([tiny_family.NAME, "gru"], (6, 1), 2)
        assert "extra_width" in hypermodel.space()[tiny_family.NAME]
        import keras_tuner as kt

        hp = kt.HyperParameters()
        hypermodel.build(hp)
        assert hp.values["family"] in (tiny_family.NAME, "gru")
        assert f"{tiny_family.NAME}/extra_width" in hp.values
    assert tiny_family.NAME not in zoo.list_models()  # gone after the block


@pytest.mark.slow
def test_a_registered_family_runs_through_the_registry_wide_tests():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "tests.tiny_family", "tests/zoo/test_zoo.py", "-k",
         "tiny_test and not fresh_process"],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 15, summary  # every parametrized registry-wide test, for it too
