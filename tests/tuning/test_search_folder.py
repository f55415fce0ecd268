"""A search's folder: nothing outside it is ever deleted, one process owns it,
and damaged state is reported by name instead of a traceback."""

import gc
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import cli
from tests.helpers import all_runs
from tuning import folder

QUICK = ["--data", "sine", "--models", "gru", "--max-trials", "1", "--epochs", "1",
         "--patience", "1", "--window", "12", "--horizon", "3", "--val-size", "40",
         "--test-size", "40", "--seed", "1"]


def sentinels(root):
    """Files of the user's beside and above the tuner folder."""
    (root / "work").mkdir()
    files = [root / "above.txt", root / "work" / "beside.txt"]
    for f in files:
        f.write_text("the user's data\n")
    return files


@pytest.mark.parametrize("name", ["..", "/", "a/../..", ".", "a/b", "", "x y"])
def test_a_name_that_is_not_a_plain_name_is_refused_before_anything(name, tmp_path,
                                                                    capsys, monkeypatch):
    files = sentinels(tmp_path)
    monkeypatch.chdir(tmp_path / "work")
    code = cli.main(["tune", *QUICK, "--name", name, "--fresh",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--name must be a plain name" in err and repr(name) in err
    assert all(f.read_text() == "the user's data\n" for f in files)
    assert sorted(os.listdir(tmp_path / "work")) == ["beside.txt"]
    assert not (tmp_path / "mlflow.db").exists()


def test_fresh_deletes_nothing_that_is_not_a_search_folder(tmp_path, capsys):
    files = sentinels(tmp_path)
    db = tmp_path / "mlflow.db"
    # --directory at the user's folder, --name at a folder of theirs in it.
    code = cli.main(["tune", *QUICK, "--directory", str(tmp_path), "--name", "work",
                     "--fresh", "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--fresh refuses to delete {tmp_path / 'work'}" in err
    # Without --fresh the folder is not used either (keras-tuner would write there).
    code = cli.main(["tune", *QUICK, "--directory", str(tmp_path), "--name", "work",
                     "--tracking-uri", f"sqlite:///{db}"])
    assert code == 2
    assert f"{tmp_path / 'work'} is a folder lstm-zoo did not make" in capsys.readouterr().err
    # A symbolic link named like the search is not followed.
    (tmp_path / "tuner").mkdir()
    os.symlink(tmp_path / "work", tmp_path / "tuner" / "linked")
    code = cli.main(["tune", *QUICK, "--directory", str(tmp_path / "tuner"), "--name",
                     "linked", "--fresh", "--tracking-uri", f"sqlite:///{db}"])
    assert code == 2 and "is a symbolic link" in capsys.readouterr().err
    assert all(f.read_text() == "the user's data\n" for f in files)
    assert sorted(os.listdir(tmp_path / "work")) == ["beside.txt"]
    assert not db.exists()


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    """One finished one-trial search; tests copy its folder before damaging it."""
    root = tmp_path_factory.mktemp("finished")
    code = cli.main(["tune", *QUICK, "--name", "done", "--directory", str(root / "tuner"),
                     "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}"])
    assert code == 0
    return root


def test_fresh_starts_over_in_a_folder_lstm_zoo_made(finished_search, tmp_path, capsys):
    import shutil

    shutil.copytree(finished_search, tmp_path, dirs_exist_ok=True)
    project = tmp_path / "tuner" / "done"
    assert (project / folder.MARKER).exists()
    (project / "trial_0" / "stale.txt").write_text("old")
    code = cli.main(["tune", *QUICK, "--name", "done", "--directory", str(tmp_path / "tuner"),
                     "--fresh", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert code == 0
    out = capsys.readouterr().out
    best = out.split("best configuration: ", 1)[1].splitlines()[0]
    assert "units=" in best and "learning_rate=" in best  # the configuration, not a blank
    assert not (project / "trial_0" / "stale.txt").exists()
    parents = [r for r in all_runs(tmp_path / "mlflow.db")
               if r.data.tags.get("run_kind") == "search"]
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)


@pytest.mark.parametrize("damage", ["state-truncated", "state-not-object", "oracle-truncated",
                                    "trial-garbage", "oracle-wrong-shape"])
def test_damaged_search_state_exits_2_naming_the_file(damage, finished_search, tmp_path,
                                                     capsys):
    import shutil

    shutil.copytree(finished_search, tmp_path, dirs_exist_ok=True)
    project = tmp_path / "tuner" / "done"
    target = {"state": project / folder.STATE_FILE, "oracle": project / "oracle.json",
              "trial": project / "trial_0" / "trial.json"}[damage.split("-")[0]]
    text = target.read_text()
    target.write_text({"truncated": text[: len(text) // 2], "not-object": "[1, 2]",
                       "garbage": "\x00\x01not json",
                       "wrong-shape": json.dumps({"hello": 1})}[damage.split("-", 1)[1]])
    db = tmp_path / "mlflow.db"
    before = {r.info.run_id: r.info.status for r in all_runs(db)}
    code = cli.main(["tune", *QUICK, "--name", "done", "--directory", str(tmp_path / "tuner"),
                     "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(target) in err and "--fresh" in err
    assert "Traceback" not in err
    assert {r.info.run_id: r.info.status for r in all_runs(db)} == before  # all kept FINISHED
    assert set(before.values()) == {"FINISHED"}


def test_state_file_is_replaced_atomically(tmp_path):
    folder.write_state(str(tmp_path), {"parent_run_id": "a", "fingerprint": {}})
    with pytest.raises(TypeError):  # the write fails half-way through
        folder.write_state(str(tmp_path), {"parent_run_id": "b", "fingerprint": object()})
    assert folder.read_state(str(tmp_path)) == {"parent_run_id": "a", "fingerprint": {}}
    folder.write_state(str(tmp_path), {"parent_run_id": "c", "fingerprint": {}})
    assert folder.read_state(str(tmp_path))["parent_run_id"] == "c"
    assert sorted(os.listdir(tmp_path)) == [folder.STATE_FILE]  # no temporary left


@pytest.mark.slow
def test_a_second_search_on_the_same_folder_is_refused_until_the_first_dies(tmp_path,
                                                                           capsys):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "tune", *QUICK, "--epochs", "100000",
         "--patience", "100000", "--name", "busy", "--tracking-uri", uri],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "tuner" / "busy" / folder.LOCK_FILE
    try:
        deadline = time.time() + 120
        while not (lock.exists() and f"pid {first.pid}" in lock.read_text()):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.time() < deadline, "the first search never took its folder"
            time.sleep(0.2)
        code = cli.main(["tune", *QUICK, "--epochs", "100000", "--patience", "100000",
                         "--name", "busy", "--directory", str(tmp_path / "tuner"),
                         "--tracking-uri", uri])
        err = capsys.readouterr().err
        assert code == 2
        assert f"is in use by lstm-zoo tune (pid {first.pid})" in err
        assert first.poll() is None  # the first search goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel released the dead process' lock: the folder can be owned again.
    with folder.SearchLock(str(lock.parent)):
        pass


def test_a_failed_search_leaves_the_garbage_collector_unfrozen(flaky_family, tmp_path):
    from experiments.config import RunConfig
    from tuning.search import SearchConfig, SearchError, run_search

    flaky_family("nan")
    run = RunConfig(data="sine", epochs=1, patience=1, window=12, horizon=3,
                    tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(SearchError, match="all 1 trials failed"):
        run_search(SearchConfig(run=run, models=("flaky_test",), tuner="grid",
                                max_trials=1, directory=str(tmp_path / "tuner")))
    assert gc.get_freeze_count() == 0


def test_a_new_search_folder_appears_already_marked(tmp_path, monkeypatch):
    """A worker starting beside its chief must never see the chief's new
    folder unmarked (it would refuse it as someone else's): the folder is
    made marked, elsewhere, and renamed into place."""
    from tuning import folder as folder_mod

    seen = []
    rename = os.rename

    def watch(src, dst):
        seen.append(os.path.isfile(os.path.join(src, folder_mod.MARKER)))
        rename(src, dst)

    monkeypatch.setattr(folder_mod.os, "rename", watch)
    target = str(tmp_path / "tuner" / "demo")
    folder_mod._make_marked(target)
    assert seen == [True] and folder_mod.is_search_folder(target)
    # Made meanwhile by another process: no error, nothing left beside it.
    folder_mod._make_marked(target)
    assert sorted(os.listdir(tmp_path / "tuner")) == ["demo"]
    folder_mod.check_usable(target)
