"""A ``keras_tuner.HyperModel`` over the zoo registry.

Each family's search space is declared beside its builder as plain data
(``zoo.search_space``) and translated here, once, into ``hp.*`` calls. With
several families the family is itself a hyperparameter (``family``) and each
family's settings sit under a conditional scope, so a trial records only the
hyperparameters it used. Learning rate (log scale) and batch size are
searched for every family, and so are a learning-rate schedule (constant,
or halved on plateaus) and weight decay (AdamW).

For forecasting, the lookback ``window`` and the ``transforms`` can be
searched too (``data``: the tasks whose ``variant`` re-cuts the windows).
Trials then differ in what their loss is measured on, so they are compared
on ``val_rmse``: the validation RMSE in the data's own units, computed
after every epoch by ``ValidationRMSE``. With the head searched too (``tune
--loss search``: point, quantile or distribution), trials are compared on
``val_crps``, a proper score of the whole forecast distribution.
"""

from __future__ import annotations

import contextlib
import math

import keras
import keras_tuner as kt

import zoo
from experiments.errors import loss_problem
from experiments.training.fit_parts import early_stopping, make_optimizer
from zoo.space import Choice, Float, Int

LEARNING_RATE = Float(1e-4, 1e-2, default=1e-3, log=True)
BATCH_SIZE = Choice((16, 32, 64), default=32)
# "plateau": halve the learning rate when the objective stops improving
# (ReduceLROnPlateau), so a trial that starts fast can still settle.
LR_SCHEDULE = Choice(("constant", "plateau"), default="constant")
# Decoupled weight decay (AdamW) for the small series that over-fit; 0: Adam.
WEIGHT_DECAY = Choice((0.0, 1e-4, 1e-3), default=0.0)


def to_hp(hp: kt.HyperParameters, name: str, spec):
    """Declare one zoo spec on ``hp`` and return its value for this trial."""
    if isinstance(spec, Int):
        return hp.Int(name, spec.low, spec.high, step=spec.step,
                      default=spec.default)
    if isinstance(spec, Float):
        return hp.Float(name, spec.low, spec.high, default=spec.default,
                        sampling="log" if spec.log else "linear")
    if isinstance(spec, Choice) and set(spec.values) == {False, True}:
        # hp.Choice would turn False/True into the ints 0/1 (bool is an int).
        return hp.Boolean(name, default=spec.default)
    if isinstance(spec, Choice):
        return hp.Choice(name, list(spec.values), default=spec.default)
    raise TypeError(f"unknown search-space spec {spec!r}")


def split_name(name: str) -> str:
    """``"gru/units"`` -> ``"units"``: the name a ``train`` run logs."""
    return name.rsplit("/", 1)[-1]


class ZooHyperModel(kt.HyperModel):
    """Builds any zoo family for a forecasting problem.

    Args:
        families: registry names to search over (one or several).
        input_shape, outputs: as for ``zoo.build_model``.
        loss: the training loss.
        builder_arguments: ``{family: {argument: value}}`` the task fixes
            rather than the search (``Task.builder_arguments``).
    """

    def __init__(self, families, input_shape, outputs, *, head="forecast",
                 loss="mse", clipnorm=None, n_train=None, epochs=None, folds=(),
                 patience=20, data=None, builder_arguments=None):
        super().__init__(name="zoo")
        self.families = list(families)
        self.input_shape, self.outputs = input_shape, outputs
        self.head, self.loss = head, loss
        # Fixed by the task, not searched: mask_value for padded sequences,
        # autoregressive for forecasts.
        self.builder_arguments = dict(builder_arguments or {})
        # Gradient clipping to search (a zoo Choice; the task's or the
        # user's, see tuning.settings.clipnorm_space); ``None`` leaves it off.
        self.clipnorm = clipnorm
        # n_train and epochs pick the compile options (see experiments.training.fitting)
        self.n_train, self.epochs = n_train, epochs
        # Rolling-origin folds before the last one, as (x, y, x_val, y_val):
        # a trial's score is its mean best validation loss over all folds.
        self.folds, self.patience = list(folds), patience
        # Searched data settings: the tasks (folds, then the last) to take
        # variants of, and their space (ForecastTask.data_space); None when
        # the windows are fixed.
        self.data = list(data) if data else None
        # From the first fold: the fewest rows, so every choice fits every fold.
        self.data_space = self.data[0].data_space() if self.data else {}
        if not self.data_space:
            self.data = None
        # What trials are compared on (and early stopping watches): with
        # heads searched, a proper score of the whole forecast distribution.
        self.objective = ("val_crps" if "loss" in self.data_space
                          else "val_rmse" if self.data else "val_loss")

    def data_of(self, hp) -> dict:
        """This trial's searched data settings (window, transforms...)."""
        return {k: hp.get(k) for k in self.data_space}

    def tasks_for(self, hp):
        """The tasks (folds, then the last) with this trial's window and
        transforms."""
        return [t.variant(**self.data_of(hp)) for t in self.data]

    def declare_data(self, hp) -> tuple:
        """Declare the searched data settings on ``hp``; the input shape."""
        if not self.data:
            return self.input_shape
        values = {k: to_hp(hp, k, spec) for k, spec in self.data_space.items()}
        return self.data[-1].variant(**values).input_shape

    def space(self) -> dict:
        """The whole search space as plain data (for fingerprints and logs)."""
        return {
            "families": self.families,
            "learning_rate": LEARNING_RATE.as_dict(),
            "batch_size": BATCH_SIZE.as_dict(),
            "lr_schedule": LR_SCHEDULE.as_dict(), "weight_decay": WEIGHT_DECAY.as_dict(),
            "head": self.head,
            # A loss object (the quantile head's) as its plain config: no address.
            "loss": (keras.saving.serialize_keras_object(self.loss)
                     if isinstance(self.loss, keras.losses.Loss)
                     else getattr(self.loss, "__name__", self.loss)),
            "builder_arguments": self.builder_arguments,
            **{k: spec.as_dict() for k, spec in self.data_space.items()},
            **({"clipnorm": self.clipnorm.as_dict()} if self.clipnorm else {}),
            **{f: {k: s.as_dict() for k, s in zoo.search_space(f).items()}
               for f in self.families},
        }

    def build(self, hp):
        # Called repeatedly by the tuner to discover the space: keep it pure.
        input_shape = self.declare_data(hp)
        several = len(self.families) > 1
        family = (hp.Choice("family", self.families) if several
                  else self.families[0])
        chosen = {}
        for fam in self.families:
            # conditional_scope before name_scope, or "family" gets a prefix.
            # "family": the same name as the runs' family tag.
            scope = (hp.conditional_scope("family", [fam]) if several
                     else contextlib.nullcontext())
            with scope, hp.name_scope(fam):
                values = {k: to_hp(hp, k, spec)  # name_scope adds "fam/"
                          for k, spec in zoo.search_space(fam).items()}
            if fam == family:
                chosen = values
        lr = to_hp(hp, "learning_rate", LEARNING_RATE)
        batch_size = to_hp(hp, "batch_size", BATCH_SIZE)
        to_hp(hp, "lr_schedule", LR_SCHEDULE)  # a callback: see schedule()
        decay = to_hp(hp, "weight_decay", WEIGHT_DECAY)
        clip = to_hp(hp, "clipnorm", self.clipnorm) if self.clipnorm else None
        # What the task fixes may differ with its data settings (es_rnn's
        # series channels with a searched id embedding).
        fixed = (self.tasks_for(hp)[-1].builder_arguments(family) if self.data
                 else self.builder_arguments.get(family, {}))
        try:
            model = zoo.build_model(family, input_shape, self.outputs,
                                    head=self.head, **chosen, **fixed)
        except ValueError as err:  # an impossible combination: skip, no retry
            raise kt.errors.FailedTrialError(str(err)) from err
        from experiments.training.fitting import compile_fast

        # The trial's own windows: with a searched window the training set's
        # length differs, and steps_per_execution must divide its epoch for
        # the feed to keep one pipeline (see experiments.training.feed).
        n_train = len(self.tasks_for(hp)[-1].train) if self.data else self.n_train
        steps = math.ceil(n_train / batch_size) if n_train else None
        optimizer = make_optimizer(lr, clip, decay)
        # The trial's head's loss (tune --loss search: squared error, pinball or likelihood).
        loss = self.tasks_for(hp)[-1].loss if self.data else self.loss
        return compile_fast(model, optimizer, loss, steps, self.epochs)

    def schedule(self, hp, monitor=None) -> list:
        """The trial's learning-rate schedule as callbacks: with "plateau",
        halve the rate after a third of the patience without improvement of
        ``monitor`` (the objective; a refit, which has no validation part,
        watches the training loss)."""
        if hp.get("lr_schedule") != "plateau":
            return []
        return [keras.callbacks.ReduceLROnPlateau(
            monitor=monitor or self.objective, mode="min", factor=0.5,
            patience=max(2, self.patience // 3), min_lr=hp.get("learning_rate") / 64,
            verbose=0)]

    def fit(self, hp, model, x, y, validation_data=None, shuffle=True, **kwargs):
        """A trial: the earlier folds, then the last (whose model the tuner
        keeps). With searched data settings, ``x``, ``y`` and
        ``validation_data`` are replaced by this trial's windows."""
        folds, first = self.folds, []
        if self.data:
            *folds, task = self.tasks_for(hp)
            # No validation_data: ValidationRMSE predicts the validation
            # windows once per epoch and scores val_loss from the same
            # forecasts, so Keras neither traces a test function (about 2 s a
            # model) nor evaluates them a second time.
            x, y, validation_data = task.train, None, None
            # First, so that the schedule, early stopping, the checkpoint and
            # the run's curves all see it.
            first = [ValidationRMSE(task, crps=self.objective == "val_crps")]
        callbacks = [*first, *self.schedule(hp), *kwargs.pop("callbacks", [])]
        earlier = [self._fit_fold(hp, fold, kwargs.get("epochs", 1), shuffle)
                   for fold in folds]
        history = self.fit_once(hp, model, x, y, validation_data, shuffle,
                                callbacks=callbacks, **kwargs)
        if earlier:
            self._average_over_folds(history, earlier, callbacks)
        return history

    def fit_once(self, hp, model, x, y, validation_data=None, shuffle=True, **kwargs):
        """Train ``model`` on ``x``/``y`` (arrays; or a task's part as ``x``
        and None as ``y``) with this trial's batch size (a refit, or one
        fold)."""
        from experiments.tasks.base import Split
        from experiments.training.window_feed import split_arguments, start_heads

        split = x if y is None else Split(x, y)
        if not kwargs.get("initial_epoch"):
            # A trial Hyperband promoted goes on from its earlier round's
            # weights: its linear term (and spread) is trained already.
            start_heads(model, split)
        history = model.fit(**split_arguments(
            split, hp.get("batch_size"), shuffle, validation_data,
            steps_per_execution=model.steps_per_execution), **kwargs)
        _check_losses(history.history.get("loss", []))
        return history

    def _fit_fold(self, hp, fold, epochs, shuffle) -> float:
        """Train a fresh model of this trial's configuration on an earlier
        fold (arrays, or a task with searched data settings); its best
        objective."""
        callbacks = [*self.schedule(hp),
                     early_stopping(self.patience, self.objective, restore=False),
                     keras.callbacks.TerminateOnNaN()]
        validation = None  # ValidationRMSE scores it (see fit)
        if self.data:
            callbacks.insert(0, ValidationRMSE(fold, crps=self.objective == "val_crps"))
            x, y = fold.train, None
        else:
            x, y, *validation = fold
        history = self.fit_once(hp, self.build(hp), x, y, validation, shuffle,
                                epochs=epochs, verbose=0, callbacks=callbacks).history
        return min(v for v in history[self.objective] if math.isfinite(v))

    def _average_over_folds(self, history, earlier, callbacks):
        """Make the trial's objective its mean best validation loss over the
        folds: the last fold's curve is mapped by ``(sum(earlier) + v) / K``,
        which keeps its best epoch (what the checkpoint and a refit use) and
        makes its best value the mean. The raw curve stays as
        ``<objective>_last_fold``; each fold's best goes to the trial's run."""
        key = self.objective
        last = list(history.history[key])
        k = len(earlier) + 1
        history.history[f"{key}_last_fold"] = last
        history.history[key] = [(sum(earlier) + v) / k for v in last]
        best = min(v for v in last if math.isfinite(v))
        logger = next((c for c in callbacks if hasattr(c, "run_id")), None)
        if logger is not None:
            import mlflow

            mlflow.MlflowClient().log_batch(logger.run_id, metrics=[
                _metric(f"fold{i + 1}_best_{key}", v)
                for i, v in enumerate([*earlier, best])])


class ValidationRMSE(keras.callbacks.Callback):
    """Adds ``val_rmse`` and ``val_loss`` to each epoch's logs from one
    forecast of ``task``'s validation windows: ``val_rmse`` in the data's
    units, against the actual values (trials with different windows or
    transforms are compared on it: their losses are on different scales),
    and ``val_loss``, the model's loss on the same forecasts, where Keras
    would otherwise evaluate the windows once more (``fit`` then gets no
    ``validation_data``). With ``crps``, also ``val_crps``
    (``ForecastTask.validation_crps``), on which trials of different heads
    are compared."""

    def __init__(self, task, crps=False):
        super().__init__()
        self.task, self.crps = task, crps

    def on_epoch_end(self, epoch, logs=None):
        import numpy as np

        val = self.task.val
        # One compiled call (7 ms for airline's windows, where predict() costs
        # 110 ms and an eager call 470 ms: it runs every epoch).
        raw = (self.model.predict_on_batch(val.x) if len(val.x) <= 4096
               else self.model.predict(val.x, verbose=0, batch_size=1024))
        err = self.task.validation_rmse(raw)
        loss = float(np.mean(keras.ops.convert_to_numpy(
            keras.losses.get(self.model.loss)(val.y, raw))))
        if logs is not None:
            logs["val_rmse"] = err if math.isfinite(err) else float("inf")
            if self.crps:
                crps = self.task.validation_crps(raw)
                logs["val_crps"] = crps if math.isfinite(crps) else float("inf")
            logs.setdefault("val_loss", loss if math.isfinite(loss) else float("inf"))


def _check_losses(losses):
    problem = loss_problem(losses)
    if problem:
        raise kt.errors.FailedTrialError(problem)


def _metric(name, value):
    import time

    from mlflow.entities import Metric

    return Metric(name, float(value), int(time.time() * 1000), 0)
