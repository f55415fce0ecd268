"""Every use of a private Keras, TensorFlow or keras-tuner API, in one place.

Each helper names the version it was written against. ``tests/zoo/test_compat.py``
exercises every one of them, so an upgrade that moves one fails there, loudly
and by name, rather than somewhere deep in a search. Imports are lazy: the zoo
itself needs only Keras, and keras-tuner and TensorFlow are imported only by
the helpers that use them.
"""

from __future__ import annotations

# === Keras (written against 3.15) ===

def conv_lstm_cell_class():
    """``keras.src.layers.rnn.conv_lstm.ConvLSTMCell``: the cell of
    ``ConvLSTM2D``, which ``zoo.fused`` subclasses (no public export)."""
    from keras.src.layers.rnn.conv_lstm import ConvLSTMCell

    return ConvLSTMCell


def all_layers(model) -> list:
    """Every layer inside ``model``, nested models included, without the model
    itself (``Layer._flatten_layers``; ``model.layers`` is one level only)."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def child_layers(layer) -> list:
    """The layers ``layer`` holds directly: a nested model's layers, or the
    sublayers a custom layer tracks (a decoder's LSTM)."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


# === TensorFlow (written against 2.21) ===

def tf_gradient_registry() -> dict | None:
    """TensorFlow's process-wide registry of gradient functions
    (``ops._gradient_registry._registry``), or ``None`` where it is not there
    (another backend, another TensorFlow)."""
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return None
    return registry if isinstance(registry, dict) else None


def in_multi_worker_mode(strategy) -> bool:
    """Whether ``strategy`` spans several processes (a
    ``MultiWorkerMirroredStrategy`` with a cluster in ``TF_CONFIG``):
    ``StrategyExtended._in_multi_worker_mode``."""
    return bool(strategy is not None and strategy.extended._in_multi_worker_mode())


def mend_keras_multi_worker() -> None:
    """Let Keras 3.15's TensorFlow trainer ``fit`` under a
    ``MultiWorkerMirroredStrategy`` (tensorflow/tensorflow#72388: Keras 3
    fails there before the first step). Idempotent; changes nothing for
    one process.

    - ``TensorFlowTrainer._maybe_symbolic_build`` builds the model from the
      first batch, reduced across workers with ``strategy.reduce``, which
      cannot reduce a nested batch there: a batch of this worker's own
      replica has the same shapes, which is all a symbolic build reads.
    - ``reduce_per_replica(..., "auto")`` reduces each step's metrics with
      ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars. The
      metrics are already the same on every replica (their variables are
      summed across replicas on every update), so the first replica's value
      is the answer, as Keras takes it on a TPU.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_lstm_zoo_multi_worker", False):
        return
    build, reduce = trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica

    def symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and in_multi_worker_mode(strategy):
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(batches))
                break
            iterator = None
        return build(self, iterator=iterator, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction == "auto" and in_multi_worker_mode(strategy):
            reduction = "first"
        return reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._lstm_zoo_multi_worker = True


# === keras-tuner (written against 1.4.8) ===

def oracle_client_module():
    """keras-tuner's gRPC client of a worker, whose module-level ``TIMEOUT``
    (seconds per call to the chief; an hour by default) is the only way to
    bound a worker's wait."""
    from keras_tuner.src.distribute import oracle_client

    return oracle_client


def loaded_oracle_client_module():
    """``oracle_client_module()`` if something imported it already, else
    ``None`` (so undoing a worker's settings imports nothing)."""
    import sys

    return sys.modules.get("keras_tuner.src.distribute.oracle_client")


def oracle_lock(oracle):
    """The lock keras-tuner's ``@synchronized`` oracle methods hold
    (``keras_tuner.src.engine.oracle.LOCKS``)."""
    from keras_tuner.src.engine.oracle import LOCKS

    return LOCKS[oracle]


def requeue_trial(oracle, trial_id: str) -> None:
    """Put ``trial_id`` on the oracle's retry queue (``Oracle._retry_queue``),
    so the next worker that asks for a trial gets it again."""
    oracle._retry_queue.append(trial_id)


def held_trials(oracle) -> dict:
    """``{worker: trial}`` of the trials workers hold now (a copy of
    ``Oracle.ongoing_trials``, the oracle's own bookkeeping)."""
    return dict(oracle.ongoing_trials)


def search_over(oracle) -> bool:
    """Whether no worker holds a trial or is still registered with the
    oracle (``Oracle.ongoing_trials`` and ``Oracle.tuner_ids`` empty)."""
    return not oracle.ongoing_trials and not oracle.tuner_ids


def take_back_trial(oracle, worker: str, trial_id: str) -> None:
    """Take ``trial_id`` from ``worker`` (gone silent) and queue it for the
    next worker: drop it from ``Oracle.ongoing_trials`` and the worker from
    ``Oracle.tuner_ids``, then ``requeue_trial``. Call with
    ``oracle_lock(oracle)`` held."""
    del oracle.ongoing_trials[worker]
    oracle.tuner_ids.discard(worker)
    requeue_trial(oracle, trial_id)


def wrap_oracle_calls(oracle, wrap,
                      methods=("create_trial", "update_trial", "end_trial", "get_trial")):
    """Replace each of ``oracle``'s ``methods`` (the calls workers make over
    gRPC) by ``wrap(method, name)``, on this instance only: keras-tuner has
    no hook for "a worker called"."""
    for name in methods:
        setattr(oracle, name, wrap(getattr(oracle, name), name))


def add_oracle_servicer(oracle, server):
    """Serve ``oracle`` on the gRPC ``server`` the way keras-tuner's chief does
    (``oracle_chief.OracleServicer``, ``protos.get_service_grpc``); the
    servicer, whose ``stop_triggered`` says when the search is over."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    return servicer


def guard_each_trial(tuner_class, guard):
    """A subclass of ``tuner_class`` that runs each trial inside ``guard(tuner,
    trial)``, a context manager.

    keras-tuner's ``BaseTuner._try_run_and_update_trial`` is where a trial
    runs and where its exceptions are caught and turned into a FAILED trial;
    only there can a trial be wrapped as a whole, Ctrl-C and SIGTERM included.
    """

    class Guarded(tuner_class):
        def _try_run_and_update_trial(self, trial, *args, **kwargs):
            with guard(self, trial):
                return super()._try_run_and_update_trial(trial, *args, **kwargs)

    Guarded.__name__ = Guarded.__qualname__ = tuner_class.__name__
    return Guarded


def checkpoint_path(tuner, trial) -> str:
    """Where ``tuner`` keeps ``trial``'s best weights and reloads them from
    (``Tuner._get_checkpoint_fname``): ``load_model`` and Hyperband's promoted
    trials read this file."""
    return tuner._get_checkpoint_fname(trial.trial_id)


def copied_callbacks(tuner, callbacks) -> list:
    """A fresh copy of ``callbacks`` for one execution of a trial, as
    ``Tuner.run_trial`` makes (``Tuner._deepcopy_callbacks``)."""
    return tuner._deepcopy_callbacks(callbacks)


def trial_reporter(tuner, trial):
    """The callback that reports each epoch's metrics to the oracle
    (``keras_tuner.src.engine.tuner_utils.TunerCallback``; not exported)."""
    from keras_tuner.src.engine.tuner_utils import TunerCallback

    return TunerCallback(tuner, trial)


def build_and_fit(tuner, trial, *args, **kwargs):
    """Build ``trial``'s model through the tuner (Hyperband loads a promoted
    trial's weights there) and fit it with ``HyperModel.fit``, saving the
    build config as keras-tuner does (``Tuner._build_and_fit_model``)."""
    return tuner._build_and_fit_model(trial, *args, **kwargs)


def hyperband_trials(oracle) -> int:
    """How many trials a Hyperband oracle runs in all: the sum over its
    brackets and their rounds of each round's size, times its iterations
    (``HyperbandOracle._get_num_brackets`` and ``_get_size``)."""
    brackets = oracle._get_num_brackets()
    per_iteration = sum(oracle._get_size(bracket, round_num)
                        for bracket in range(brackets)
                        for round_num in range(bracket + 1))
    return per_iteration * int(oracle.hyperband_iterations)
