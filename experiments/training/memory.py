"""Memory that TensorFlow keeps after a model is gone.

Keras' TensorFlow optimizer all-reduces its gradients even when no
distribution strategy is in use, and ``tf.distribute`` does that through a
``tf.custom_gradient``, which registers a new gradient function in
TensorFlow's process-wide gradient registry every time a train step is
traced. Nothing ever removes these entries, and each one holds the whole
traced train step (graph, operations, constants): measured here at about
10 MB per small LSTM, so a 30-trial search kept 300 MB of dead graphs and
its memory climbed trial after trial (``make bench``, 30-trial search).

``released_traces`` drops the registrations made while it was open. Use it
around work whose models are discarded afterwards (a tuner trial): their
train steps have been traced and differentiated already, and nothing
differentiates through those graphs again.
"""

from __future__ import annotations

import contextlib

# tf.custom_gradient's names in the registry: "CustomGradient-<uid>".
_PREFIX = "CustomGradient-"


def _gradient_registry() -> dict | None:
    import keras

    from zoo import compat

    if keras.config.backend() != "tensorflow":
        return None
    return compat.tf_gradient_registry()  # None: a TensorFlow without it, left be


def custom_gradients_registered() -> int:
    """How many ``tf.custom_gradient`` functions TensorFlow holds (0 on
    other backends)."""
    registry = _gradient_registry()
    return sum(key.startswith(_PREFIX) for key in registry) if registry else 0


@contextlib.contextmanager
def released_traces():
    """Forget, on leaving, the custom gradients registered inside (see the
    module). A no-op on the JAX and PyTorch backends."""
    registry = _gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        if registry is not None:
            for key in [k for k in registry if k.startswith(_PREFIX) and k not in before]:
                registry.pop(key, None)
