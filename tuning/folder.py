"""A search's folder on disk: its name, its mark, its lock and its state file.

A search keeps keras-tuner's project (oracle, trials, checkpoints) and its own
state file in ``<directory>/<name>``. Everything here exists so that nothing a
user types can reach outside that folder:

- ``check_name``: a search name is a plain name, so ``<directory>/<name>`` is
  always a direct child of ``<directory>`` (never ``..``, ``/`` or a path).
- ``MARKER``: a file this project writes into every search folder it makes.
  ``--fresh`` deletes only a folder that carries it.
- ``SearchLock``: one process at a time owns a search folder (an ``flock``
  the kernel releases if the process dies).
- ``write_state`` / ``read_state``: the state file is replaced atomically and
  a damaged one is reported by name, as are keras-tuner's own JSON files.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import tempfile

from experiments.errors import ConfigError

MARKER = ".lstm-zoo-search"
STATE_FILE = "lstm_zoo_search.json"
LOCK_FILE = ".lstm-zoo-search.lock"
_NAME = re.compile(r"[A-Za-z0-9._-]+")
NAME_RULE = ("letters, digits, '-', '_' and '.' only (no '/' or other separators), "
             "and not '.' or '..'")


class SearchStateError(ConfigError):
    """A search's saved state cannot be used; the message names the file."""


def check_name(name: str) -> str:
    """``name`` if it is a plain search name; ``ConfigError`` naming the rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"--name must be a plain name: {NAME_RULE}; received {name!r}")
    return name


def safe_name(text: str) -> str:
    """A plain name made from ``text`` (a dataset or file name), for the
    default search name: other characters become ``-``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "search"
    return name


def folder_of(directory: str, name: str) -> str:
    """The absolute search folder ``<directory>/<name>`` for a checked name."""
    return os.path.join(os.path.abspath(directory), check_name(name))


def is_search_folder(folder: str) -> bool:
    """Whether ``folder`` was made by lstm-zoo as a search folder: it carries
    the marker, or (searches from before the marker) the state file."""
    return (not os.path.islink(folder) and os.path.isdir(folder)
            and any(os.path.isfile(os.path.join(folder, f)) for f in (MARKER, STATE_FILE)))


def check_usable(folder: str, fresh: bool = False) -> None:
    """Refuse, before anything is written, a search folder that lstm-zoo did
    not make: a symbolic link, a file, or a folder with someone's files."""
    if not os.path.lexists(folder):
        return
    if os.path.islink(folder) or not os.path.isdir(folder):
        what = "a symbolic link" if os.path.islink(folder) else "not a folder"
    elif not is_search_folder(folder) and set(os.listdir(folder)) - {LOCK_FILE}:
        what = f"a folder lstm-zoo did not make (it has no {MARKER} file)"
    else:
        return
    if fresh:
        raise ConfigError(f"--fresh refuses to delete {folder}: it is {what}. Nothing "
                          f"was deleted; choose another --name or --directory")
    raise ConfigError(f"{folder} is {what}; lstm-zoo keeps a search only in a folder it "
                      f"made, and leaves this one as it is. Choose another --name or "
                      f"--directory")


@contextlib.contextmanager
def search_folder(directory: str, name: str, *, fresh: bool = False):
    """Own the search folder ``<directory>/<name>`` for the ``with`` block.

    Checks the name, refuses a folder lstm-zoo did not make, takes the lock
    (a second process is refused), empties the folder if ``fresh`` and marks
    it. Yields the folder's absolute path.

    Raises:
        ConfigError: a bad name, a folder that is not a search folder, or a
            search that another process runs.
    """
    from experiments.tracking import check_writable

    folder = folder_of(directory, name)
    check_usable(folder, fresh)
    if not os.path.lexists(folder):
        _make_marked(folder)
    check_writable(folder, "tuner directory")  # read-only or full: exit 2, naming it
    with SearchLock(folder):
        if fresh:
            for entry in os.listdir(folder):
                path = os.path.join(folder, entry)
                if entry == LOCK_FILE:
                    continue  # held by this process while it starts over
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
        _write_marker(folder)
        yield folder


def _write_marker(folder: str) -> None:
    marker = os.path.join(folder, MARKER)
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("This folder holds an lstm-zoo hyperparameter search; "
                    "`lstm-zoo tune --fresh` may delete it.\n")


def _make_marked(folder: str) -> None:
    """Make a new search folder with its marker in one step: a marked folder
    made beside it and renamed into place. A process starting the same
    search at the same moment (a worker beside its chief) then sees either
    no folder or a marked one, never one that looks like someone else's."""
    from experiments.tracking import check_writable

    parent = os.path.dirname(folder)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(folder)}.new-")
    except OSError:
        check_writable(folder, "tuner directory")  # says what is wrong, naming it
        raise
    try:
        _write_marker(staging)
        os.rename(staging, folder)
    except OSError:  # made meanwhile by another process: it decides below
        shutil.rmtree(staging, ignore_errors=True)


class SearchLock:
    """An exclusive lock on a search folder, held for the search's lifetime.

    ``flock`` on a file inside the folder: a second process on the same
    folder is refused at once, and the kernel releases the lock when the
    holder exits, however it exits (SIGKILL included).
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._file = None

    def __enter__(self):
        os.makedirs(self.folder, exist_ok=True)
        f = open(os.path.join(self.folder, LOCK_FILE), "a+")  # held while locked
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ConfigError(
                f"the search in {self.folder} is in use by {holder}; wait for it to "
                f"end, or give this search another --name") from None
        f.seek(0)
        f.truncate()
        f.write(f"lstm-zoo tune (pid {os.getpid()})\n")
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


def write_state(folder: str, state: dict) -> None:
    """Replace the search's state file atomically: a temporary file in the
    same folder, flushed to disk, then renamed over the old one."""
    path = os.path.join(folder, STATE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def _damaged(path: str, why: str) -> SearchStateError:
    return SearchStateError(
        f"the search state file {path} is damaged ({why}); pass --fresh to start the "
        f"search over (finished runs stay in MLflow), or --name to start another")


def _load_json(path: str, required: tuple[str, ...] = ()) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _damaged(path, f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise _damaged(path, f"a JSON object was expected, found {type(value).__name__}")
    missing = [k for k in required if k not in value]
    if missing:
        raise _damaged(path, f"missing {', '.join(missing)}")
    return value


def read_state(folder: str) -> dict:
    """The search's saved state (``{}`` for a new search), after checking
    that it and keras-tuner's ``oracle.json`` and ``trial.json`` files parse.

    Raises:
        SearchStateError: naming the first damaged file.
    """
    path = os.path.join(folder, STATE_FILE)
    state = _load_json(path, ("parent_run_id", "fingerprint")) if os.path.exists(path) else {}
    oracle = os.path.join(folder, "oracle.json")
    if os.path.exists(oracle):
        _load_json(oracle, ("ongoing_trials", "tried_so_far"))
    for trial in sorted(glob.glob(os.path.join(folder, "trial_*", "trial.json"))):
        _load_json(trial, ("trial_id", "hyperparameters", "status"))
    return state
