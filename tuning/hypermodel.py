"""A ``keras_tuner.HyperModel`` over the zoo registry.

Each family's search space is declared beside its builder as plain data
(``zoo.search_space``) and translated here, once, into ``hp.*`` calls. With
several families the family is itself a hyperparameter (``family``) and each
family's settings sit under a conditional scope, so a trial records only the
hyperparameters it used. Learning rate (log scale) and batch size are
searched for every family.
"""

from __future__ import annotations

import contextlib
import math

import keras
import keras_tuner as kt

import zoo
from zoo.space import Choice, Float, Int

LEARNING_RATE = Float(1e-4, 1e-2, default=1e-3, log=True)
BATCH_SIZE = Choice((16, 32, 64), default=32)


def to_hp(hp: kt.HyperParameters, name: str, spec):
    """Declare one zoo spec on ``hp`` and return its value for this trial."""
    if isinstance(spec, Int):
        return hp.Int(name, spec.low, spec.high, step=spec.step,
                      default=spec.default)
    if isinstance(spec, Float):
        return hp.Float(name, spec.low, spec.high, default=spec.default,
                        sampling="log" if spec.log else "linear")
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
    """

    def __init__(self, families, input_shape, outputs, *, head="forecast",
                 loss="mse", clipnorm=None, n_train=None, epochs=None, folds=(),
                 patience=20):
        super().__init__(name="zoo")
        self.families = list(families)
        self.input_shape, self.outputs = input_shape, outputs
        self.head, self.loss = head, loss
        # Gradient clipping to search (a zoo Choice; the task's or the
        # user's, see tuning.search.clipnorm_space); ``None`` leaves it off.
        self.clipnorm = clipnorm
        # n_train and epochs pick the compile options (see experiments.fitting)
        self.n_train, self.epochs = n_train, epochs
        # Rolling-origin folds before the last one, as (x, y, x_val, y_val):
        # a trial's score is its mean best validation loss over all folds.
        self.folds, self.patience = list(folds), patience

    def space(self) -> dict:
        """The whole search space as plain data (for fingerprints and logs)."""
        return {
            "families": self.families,
            "learning_rate": LEARNING_RATE.as_dict(),
            "batch_size": BATCH_SIZE.as_dict(),
            "head": self.head, "loss": self.loss,
            **({"clipnorm": self.clipnorm.as_dict()} if self.clipnorm else {}),
            **{f: {k: s.as_dict() for k, s in zoo.search_space(f).items()}
               for f in self.families},
        }

    def build(self, hp):
        # Called repeatedly by the tuner to discover the space: keep it pure.
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
        clip = to_hp(hp, "clipnorm", self.clipnorm) if self.clipnorm else None
        try:
            model = zoo.build_model(family, self.input_shape, self.outputs,
                                    head=self.head, **chosen)
        except ValueError as err:  # an impossible combination: skip, no retry
            raise kt.errors.FailedTrialError(str(err)) from err
        from experiments.fitting import compile_fast

        steps = math.ceil(self.n_train / batch_size) if self.n_train else None
        return compile_fast(model, keras.optimizers.Adam(lr, clipnorm=clip), self.loss,
                            steps, self.epochs)

    def fit(self, hp, model, x, y, validation_data=None, shuffle=True, **kwargs):
        from experiments.feed import fit_arguments

        earlier = [self._fit_fold(hp, fold, kwargs.get("epochs", 1), shuffle)
                   for fold in self.folds]
        history = model.fit(**fit_arguments(
            x, y, hp.get("batch_size"), shuffle, validation_data,
            steps_per_execution=model.steps_per_execution), **kwargs)
        _check_losses(history.history.get("loss", []))
        if earlier:
            self._average_over_folds(history, earlier, kwargs.get("callbacks", []))
        return history

    def _fit_fold(self, hp, fold, epochs, shuffle) -> float:
        """Train a fresh model of this trial's configuration on an earlier
        fold; its best validation loss."""
        from experiments.feed import fit_arguments

        x, y, x_val, y_val = fold
        model = self.build(hp)
        history = model.fit(**fit_arguments(
            x, y, hp.get("batch_size"), shuffle, (x_val, y_val),
            steps_per_execution=model.steps_per_execution), epochs=epochs, verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(patience=self.patience),
                       keras.callbacks.TerminateOnNaN()]).history
        _check_losses(history.get("loss", []))
        return min(v for v in history["val_loss"] if math.isfinite(v))

    def _average_over_folds(self, history, earlier, callbacks):
        """Make the trial's objective its mean best validation loss over the
        folds: the last fold's curve is mapped by ``(sum(earlier) + v) / K``,
        which keeps its best epoch (what the checkpoint and a refit use) and
        makes its best value the mean. The raw curve stays as
        ``val_loss_last_fold``; each fold's best goes to the trial's run."""
        last = list(history.history["val_loss"])
        k = len(earlier) + 1
        history.history["val_loss_last_fold"] = last
        history.history["val_loss"] = [(sum(earlier) + v) / k for v in last]
        best = min(v for v in last if math.isfinite(v))
        logger = next((c for c in callbacks if hasattr(c, "run_id")), None)
        if logger is not None:
            import mlflow

            mlflow.MlflowClient().log_batch(logger.run_id, metrics=[
                _metric(f"fold{i + 1}_best_val_loss", v)
                for i, v in enumerate([*earlier, best])])


def _check_losses(losses):
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if not losses or bad:
        epoch = bad[0] + 1 if bad else 0
        raise kt.errors.FailedTrialError(
            f"training loss became {losses[bad[0]] if bad else 'undefined'}"
            f" at epoch {epoch}")


def _metric(name, value):
    import time

    from mlflow.entities import Metric

    return Metric(name, float(value), int(time.time() * 1000), 0)
