"""lstm-zoo's model zoo: reference Keras 3 builders for recurrent networks.

>>> from zoo import build_model, list_models
>>> model = build_model("gru", (24, 1), 12)   # 24 steps in, 12 steps out

Only ``keras.layers`` and ``keras.ops`` are used, so every builder runs on
the TensorFlow, JAX and PyTorch backends.

The public names below load on first use (PEP 562): ``zoo.constraints`` and
``zoo.space``, plain data that the command line reads at start-up, import
without Keras.
"""

import importlib

from zoo import startup

# Before Keras imports TensorFlow: its C++ start-up lines stay off the terminal.
startup.install()

# Public name -> the module that defines it.
_EXPORTS = {
    "CudnnStatus": "zoo.cudnn", "cudnn_report": "zoo.cudnn",
    "attention_weights": "zoo.families.attention_lstm",
    "start_autoregressive": "zoo.heads",
    "CudnnWarning": "zoo.registry", "ModelInfo": "zoo.registry",
    "build_model": "zoo.registry", "comparable": "zoo.registry", "get": "zoo.registry",
    "list_models": "zoo.registry", "register": "zoo.registry",
    "registered": "zoo.registry", "search_space": "zoo.registry",
    "unregister": "zoo.registry",
    "DistributionLoss": "zoo.distributions", "with_distribution": "zoo.distributions",
    "start_spread": "zoo.distributions",
    "QuantileLoss": "zoo.quantiles", "with_quantiles": "zoo.quantiles",
    "ModelFileError": "zoo.saving", "load_model": "zoo.saving",
    "Choice": "zoo.space", "Float": "zoo.space", "Int": "zoo.space",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    # The families register themselves when imported: before any name is used.
    importlib.import_module("zoo.families")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
