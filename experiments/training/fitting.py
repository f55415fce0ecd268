"""Fitting a model: how ``train`` and ``tune`` compile and fit.

Compile options chosen for speed (``steps_per_execution``, XLA where it pays),
the input feed (``experiments.training.feed``) and ``fit`` with early stopping.
Nothing here knows about MLflow or the command line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras

import zoo
from experiments.config import budget
from experiments.errors import ConfigError, TrainingError, check_losses, loss_problem
from experiments.tasks.base import Task
from experiments.tracking import device_name
from experiments.training.fit_parts import early_stopping, make_optimizer
from experiments.training.strategy import data_parallel_scope, distributed, peer_failures
from experiments.training.window_feed import split_arguments, start_heads
from zoo.compat import all_layers
from zoo.fused import fuse_conv_lstm

# Measured with make bench / the airline and sine data on a 2-core CPU: XLA
# pays for its compile time (about 1.5 s per model) only when epochs have
# many batches: 89 batches/epoch trained 2.3x faster with XLA and
# steps_per_execution; 2 batches/epoch (airline) trained 20% slower.
XLA_MIN_STEPS_PER_EPOCH = 16
# ...and only when the training is long: XLA saves at most about 0.5 ms per
# batch on these models, so 1.5 s of compiling needs some 3,000 batches to
# pay back. Short fits (a tuner's trials of a few epochs) are faster without
# it, and every XLA-compiled model stays in TensorFlow's XLA cache, which
# is never emptied (tensorflow/tensorflow#64170): a long search of XLA trials
# would grow by about 17 MB per trial.
XLA_MIN_STEPS = 2000
STEPS_PER_EXECUTION = 16


def steps_per_execution(steps_per_epoch: int | None) -> int:
    """Batches per call into the compiled train function: up to
    ``STEPS_PER_EXECUTION``, and the whole epoch or the largest divisor of it
    from half that up. A call runs its batches even past the end of an epoch
    when the input does not end there, so only a divisor lets the feed keep
    one pipeline through all epochs; with none (a prime number of batches,
    say) the feed hands ``fit`` the arrays, as plain Keras does."""
    if not steps_per_epoch:
        return STEPS_PER_EXECUTION
    if steps_per_epoch <= STEPS_PER_EXECUTION:
        return steps_per_epoch
    for size in range(STEPS_PER_EXECUTION, STEPS_PER_EXECUTION // 2 - 1, -1):
        if steps_per_epoch % size == 0:
            return size
    return STEPS_PER_EXECUTION


def compile_options(steps_per_epoch: int | None = None, model=None,
                    epochs: int | None = None) -> dict[str, Any]:
    """How ``train`` and ``tune`` compile, chosen for speed (see ``make bench``).

    - ``steps_per_execution``: several batches per call into the compiled
      function, removing per-batch Python overhead. Callbacks still see
      every epoch. A divisor of ``steps_per_epoch`` where there is a good
      one, so that ``experiments.training.feed`` can keep one input pipeline
      through all epochs (see ``steps_per_execution``).
    - XLA (``jit_compile=True``) on a CPU-only TensorFlow when an epoch has
      at least ``XLA_MIN_STEPS_PER_EPOCH`` batches and the whole training
      (up to ``epochs``; unknown counts as long) at least ``XLA_MIN_STEPS``:
      Keras' "auto" turns it off on CPUs, yet it fuses the recurrent loop's
      small ops. On a GPU
      "auto" stays, and Keras skips XLA for layers on cuDNN, so the fused
      kernels are kept. Never for ConvLSTM, which XLA made 16x slower.
    """

    if distributed():
        # Under tf.distribute, Keras' loop of several steps per call fails
        # ("You must feed a value for placeholder tensor ..."): one step per call.
        return {}
    options = {"steps_per_execution": steps_per_execution(steps_per_epoch)}
    many_steps = ((steps_per_epoch or 0) >= XLA_MIN_STEPS_PER_EPOCH
                  and (epochs is None or epochs * steps_per_epoch >= XLA_MIN_STEPS))

    if model is not None and any(isinstance(layer, keras.layers.ConvLSTM2D)
                                 for layer in all_layers(model)):
        many_steps = False
    if keras.config.backend() == "tensorflow" and many_steps:

        if device_name() == "cpu":
            options["jit_compile"] = True
    return options


def compile_fast(model, optimizer, loss, steps_per_epoch=None, epochs=None,
                 **compile_kwargs):
    """Compile ``model`` the way ``train`` and ``tune`` run it: ConvLSTM gates
    fused into one convolution per step (``zoo.fused``; weights and saved
    files unchanged) and ``compile_options`` for this many batches per epoch
    and at most this many epochs."""

    fuse_conv_lstm(model)
    model.compile(optimizer, loss=loss,
                  **compile_options(steps_per_epoch, model, epochs), **compile_kwargs)
    return model


def compile_model(model, task: Task, learning_rate: float, clipnorm=None,
                  batch_size: int = 32, epochs: int | None = None):

    optimizer = make_optimizer(learning_rate, clipnorm)
    steps = math.ceil(len(task.train) / batch_size)
    return compile_fast(model, optimizer, task.loss, steps, epochs,
                        **task.compile_kwargs())


def train_network(cfg, task: Task, hp: dict, callbacks=()):
    """A fresh ``cfg.model`` with hyperparameters ``hp``, built for ``task``,
    compiled and fit with early stopping (``fit``), from ``cfg.seed``: the
    one path ``train`` (per fold) and ``ForecastModel.fit`` take.
    Returns ``(model, history)``."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)

    def build():
        model = zoo.build_model(cfg.model, task.input_shape, task.outputs, **hp)
        return compile_model(model, task, cfg.learning_rate, cfg.clipnorm, cfg.batch_size,
                             cfg.epochs)

    with data_parallel_scope(cfg.data_parallel):
        model = build()
    with peer_failures():
        history = fit(model, task, cfg, callbacks)
    return (single_device_copy(model, build) if cfg.data_parallel else model), history


def single_device_copy(model, build):
    """``model``'s weights in a fresh ``build()`` made outside any
    ``tf.distribute`` scope: what is evaluated, saved and served (a
    mirrored model's ``predict_on_batch`` pads a batch to its replicas)."""
    copy = build()
    copy.set_weights(model.get_weights())
    return copy


def fit(model, task: Task, cfg, callbacks=()):
    """Train on the training part with early stopping on validation loss
    (statefully for a task that asks for it: see ``experiments.training.stateful``).

    Raises ``TrainingError`` when the loss becomes NaN or infinite.
    """
    if cfg.patience is None:
        # A config made in a notebook, not resolved by the CLI: the default
        # patience for this much data (``config.budget``).
        cfg = dataclasses.replace(cfg, patience=budget(len(task.train), cfg.batch_size)[1])
    if task.stateful:
        from experiments.training.stateful import fit_stateful

        return fit_stateful(model, task, cfg, callbacks)
    stop = early_stopping(cfg.patience)
    start_heads(model, task.train)
    history = model.fit(
        **split_arguments(task.train, cfg.batch_size, validation=(task.val.x, task.val.y),
                          steps_per_execution=model.steps_per_execution),
        epochs=cfg.epochs,
        callbacks=[stop, keras.callbacks.TerminateOnNaN(), *callbacks],
        verbose=cfg.verbose,
    ).history
    check_losses(history)
    return history


def refit(model_name: str, task: Task, hp: dict, cfg, epochs: int):
    """A fresh ``model_name`` fit on every window of the data (training,
    validation and test) for ``epochs`` epochs, the count early stopping
    chose on the validation split; there is nothing left to stop on.

    Raises ``TrainingError`` when the loss becomes NaN or infinite.
    """
    data = task.all_windows()
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)

    def build():
        model = zoo.build_model(model_name, task.input_shape, task.outputs, **hp)
        optimizer = make_optimizer(cfg.learning_rate, cfg.clipnorm)
        return compile_fast(model, optimizer, task.loss, math.ceil(len(data) / cfg.batch_size),
                            epochs, **task.compile_kwargs())

    with data_parallel_scope(cfg.data_parallel), peer_failures():
        model = fit_epochs(build(), data, cfg.batch_size, epochs)
    return single_device_copy(model, build) if cfg.data_parallel else model


def fit_epochs(model, data, batch_size: int, epochs: int, callbacks=()):
    """Train ``model`` on ``data`` (a ``Split``) for exactly ``epochs``
    epochs, with no validation part to stop on: a refit on every window
    (``train``, ``ForecastModel``, a search's best trial and its ensemble's
    members) or an ensemble's seed member. Returns ``model``.

    Raises ``TrainingError`` when the loss becomes NaN or infinite.
    """
    start_heads(model, data)
    losses = model.fit(**split_arguments(data, batch_size,
                                         steps_per_execution=model.steps_per_execution),
                       epochs=epochs, callbacks=[keras.callbacks.TerminateOnNaN(), *callbacks],
                       verbose=0).history.get("loss", [])
    problem = loss_problem(losses)
    if problem:
        raise TrainingError(f"the refit's {problem}; try a lower learning rate, or "
                            f"--no-refit")
    return model


def best_epochs(history: dict) -> int:
    """Epochs up to the best validation loss (what early stopping kept)."""
    val = history.get("val_loss") or history.get("loss", [])
    finite = [(v, i) for i, v in enumerate(val) if math.isfinite(v)]
    return min(finite)[1] + 1 if finite else max(1, len(val))


def resolve_hyperparameters(model: str, given: dict, task: Task) -> dict:
    """The family's hyperparameters with defaults filled in (and the task's
    head); a family that cannot serve the task, or a setting it does not
    take, is an error naming what would work."""

    try:
        info = zoo.get(model)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    why = task.unusable(model)
    if why:
        raise ConfigError(f"{model} cannot serve the {task.kind} task on {task.name} "
                          f"({why}); families that can: {task.usable_families()}")
    resolved = info.defaults
    unknown = sorted(set(given) - set(resolved))
    if unknown:
        raise ConfigError(f"{model} has no hyperparameter {unknown[0]!r}; it "
                          f"takes {sorted(resolved)}")
    resolved.update(given)
    resolved.update(task.builder_arguments(model), head=task.head)
    return resolved
