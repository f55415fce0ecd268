"""Truncated backpropagation through time for the character language model
(``train --stateful``).

Without it every training window starts from a zero state, so a model never
learns to use more context than one window, and the first characters of each
window are guessed almost blind. Stateful training cuts the text into
``batch_size`` streams; batch ``j`` holds window ``j`` of every stream, so
row ``b`` of one batch continues row ``b`` of the batch before. The recurrent
layers keep their final states as the next batch's initial states
(``stateful=True``), and since those states are values, not part of the
graph, each gradient stops at its own window: backpropagation is truncated
at the window, the state is carried. States are reset at the start of every
epoch and before each validation pass.

Training runs on a stateful copy of the model (Keras needs a fixed batch
size for it); its weights are then copied back, so evaluation, generation and
serving use the ordinary model.
"""

from __future__ import annotations

import keras
import numpy as np

from experiments.data import DataError
from experiments.errors import check_losses
from experiments.training.fit_parts import early_stopping


def streams(ids: np.ndarray, window: int, batch_size: int, what: str = "text"):
    """``(x, y)`` ids arranged for stateful training: ``batch_size`` streams
    of consecutive windows, batch ``j`` (rows ``j*batch_size`` to
    ``(j+1)*batch_size - 1``) holding window ``j`` of every stream; ``y`` is
    ``x`` shifted by one character."""
    per_stream = (len(ids) - 1) // batch_size
    count = per_stream // window
    if count < 1:
        raise DataError(f"--stateful: the {what} part has {len(ids)} characters, too "
                        f"few for {batch_size} streams (--batch-size) of at least one "
                        f"window of {window}; lower --batch-size or --window")
    n = batch_size * per_stream

    def arrange(a):
        a = a.reshape(batch_size, per_stream)[:, :count * window]
        return a.reshape(batch_size, count, window).transpose(1, 0, 2).reshape(-1, window)

    return arrange(ids[:n]), arrange(ids[1:n + 1])


def stateful_copy(model: keras.Model, batch_size: int) -> keras.Model:
    """The same network with ``stateful=True`` recurrent layers and a fixed
    batch size, holding ``model``'s weights."""

    def clone(layer):
        config = layer.get_config()
        if "stateful" in config:  # LSTM, GRU, SimpleRNN, RNN over any cell
            config["stateful"] = True
        return layer.__class__.from_config(config)

    inputs = keras.Input(batch_shape=(batch_size, *model.input_shape[1:]))
    copy = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


class ResetStates(keras.callbacks.Callback):
    """Zero the recurrent states at each epoch's start and before validation."""

    def _reset(self):
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()


def fit_stateful(model, task, cfg, callbacks=()) -> dict:
    """Train ``model`` on ``task`` (a language model) statefully; its weights
    end as the best epoch's (early stopping on validation loss). Returns the
    history as ``fitting.fit`` does."""
    batch = cfg.batch_size
    x, y = streams(task.train_ids, task.window, batch, "training")
    x_val, y_val = streams(task.val_ids, task.window, batch, "validation")
    trained = stateful_copy(model, batch)
    trained.compile(model.optimizer.__class__.from_config(model.optimizer.get_config()),
                    loss=task.loss)
    stop = early_stopping(cfg.patience)
    history = trained.fit(
        task.one_hot(x), y, batch_size=batch, shuffle=False,  # the order is the point
        validation_data=(task.one_hot(x_val), y_val), validation_batch_size=batch,
        epochs=cfg.epochs, verbose=cfg.verbose,
        callbacks=[ResetStates(), stop, keras.callbacks.TerminateOnNaN(), *callbacks],
    ).history
    check_losses(history)
    model.set_weights(trained.get_weights())
    return history

