"""What a learning task gives the shared training loop.

``train``, ``compare`` and ``tune`` run every task the same way (build a zoo
model with the task's head, compile with its loss, fit on its splits, log to
MLflow); a ``Task`` supplies what differs: the data splits, the head and
loss, the metrics and baselines, and the plots.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from experiments import tracking


@dataclasses.dataclass(frozen=True)
class Split:
    """Model-ready arrays of one part: inputs ``x`` and targets ``y``."""

    x: np.ndarray
    y: np.ndarray
    # Training draws batches from an index of windows instead of the arrays
    # (a panel's ``PanelWindows``, which serves as a Split).
    drawn_by_index = False

    def __len__(self):
        return len(self.x)

    def sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """At most ``size`` samples, evenly spaced (all when there are fewer):
        what the least-squares starts fit on."""
        rows = np.linspace(0, len(self) - 1, min(len(self), size)).astype(int)
        return self.x[rows], self.y[rows]


class Task:
    """Base class; subclasses fill the attributes and override the methods.

    Attributes:
        kind: ``"forecast"``, ``"frames"``, ``"language_model"`` or
            ``"classification"`` (the run's ``task`` tag).
        name: the dataset's name (the MLflow experiment by default).
        head, loss: the zoo head and the Keras loss the model trains with.
        input_shape, outputs: arguments of ``zoo.build_model``.
        train, val, test: the three parts.
        rank_by: the test metric leaderboards sort by (lower is better).
    """

    kind: str
    name: str
    head: str
    loss: str
    input_shape: tuple
    outputs: Any
    train: Split
    val: Split
    test: Split
    rank_by: str = "test_loss"
    metrics_shown: tuple[str, ...] = ()
    # Gradient clipping for a search to try (a zoo Choice), for tasks that
    # need it; None: a search leaves clipping off.
    clipnorm_space = None
    # === Capabilities, declared (train, tune and the CLI read these) ===
    # A refit on all the data and ensembles of forecasts (``all_windows``).
    refits = False
    # The window and transforms can be searched (``data_space``, ``variant``,
    # ``validation_rmse``).
    searches_data = False
    # An ensemble may mix members of different data settings (each forecast
    # in the data's units, then averaged); False: a search's ensemble keeps
    # to its best trial's.
    ensembles_mix_data = False
    # Trains with the state carried from window to window (experiments.training.stateful).
    stateful = False
    # What loading repaired, and why the transforms were chosen (run notes).
    repairs: tuple = ()
    transforms_reason: str | None = None
    # Settings shrunk to fit short data, each said in a sentence, and what to
    # say of the served intervals' calibration (run notes).
    adjustments: tuple = ()
    interval_note: str | None = None
    combination_verdict: str | None = None  # what --combine chose to serve, and why

    def baseline_notes(self) -> list[str]:
        """What each fitted baseline was, or why it was skipped."""
        return []

    def predict_test(self, model) -> np.ndarray:
        """The model's raw outputs on the test part, computed once per model
        (``evaluate`` and ``log_artifacts`` both need them)."""
        cached = getattr(self, "_test_outputs", None)
        if cached is None or cached[0] is not model:
            outputs = model.predict(self.test.x, verbose=0, batch_size=256)
            self._test_outputs = (model, outputs)
        return self._test_outputs[1]

    def test_size_text(self) -> str:
        """How big the test part is, in words, for printed tables."""
        return f"{len(self.test)} samples"

    def params(self) -> dict[str, Any]:
        """Data settings logged as MLflow params."""
        return {}

    def dataset(self):
        """The data as an ``mlflow.data`` dataset (its digest is recorded)."""
        raise NotImplementedError

    def evaluate(self, model) -> dict[str, float]:
        """Test (and validation) metrics of ``model`` and of the baselines,
        flat names such as ``test_rmse`` and ``test_naive_rmse``."""
        raise NotImplementedError

    def log_artifacts(self, model, scores: dict) -> None:
        """Task plots and files for the active run."""

    def log_served(self, model, calibrated_on=None):
        """Log the model that serves predictions as the run's ``model``.

        ``calibrated_on``: the model trained without the validation and test
        periods, when ``model`` is a refit of it (a task that calibrates
        intervals does so on that one). Returns MLflow's ``ModelInfo``.
        """
        return tracking.log_model(model, self)

    def config(self) -> dict[str, Any]:
        """What, besides params, is needed to use the logged model."""
        return {}

    def fingerprint(self) -> dict[str, Any]:
        """What must not change for a search to be resumed."""
        return {"kind": self.kind, "name": self.name, **self.params(),
                "input_shape": list(self.input_shape), "n_train": len(self.train),
                "n_val": len(self.val)}

    def baselines(self) -> list[tuple[str, str]]:
        """``(label, metric prefix)`` of the baselines, for printed tables."""
        return []

    def compile_kwargs(self) -> dict[str, Any]:
        return {}

    def unusable(self, family: str) -> str | None:
        """Why registry family ``family`` cannot serve this task, or None."""
        import zoo

        info = zoo.get(family)
        if self.head not in info.heads:
            return (f"it needs the {self.head!r} head; {family} takes input shaped "
                    f"({', '.join(info.input_axes)}) and has heads {list(info.heads)}")
        return None

    def usable_families(self) -> list[str]:
        """The registry's families that can serve this task."""
        import zoo

        return [f for f in zoo.list_models() if self.unusable(f) is None]

    def builder_arguments(self, family: str | None = None) -> dict[str, Any]:
        """Builder arguments the task fixes rather than the search
        (``mask_value`` for padded sequences, ``autoregressive`` for
        forecasts), for ``family`` when given (those its builder takes);
        none by default."""
        return {}
