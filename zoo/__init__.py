"""lstm-zoo's model zoo: reference Keras 3 builders for recurrent networks.

>>> from zoo import build_model, list_models
>>> model = build_model("gru", (24, 1), 12)   # 24 steps in, 12 steps out

Only ``keras.layers`` and ``keras.ops`` are used, so every builder runs on
the TensorFlow, JAX and PyTorch backends.
"""

from zoo import families  # noqa: E402,F401  (registers the builders)
from zoo.cudnn import CudnnStatus, cudnn_report
from zoo.families.attention_lstm import attention_weights
from zoo.heads import start_autoregressive
from zoo.registry import (
    CudnnWarning,
    ModelInfo,
    build_model,
    comparable,
    get,
    list_models,
    register,
    registered,
    search_space,
    unregister,
)
from zoo.saving import ModelFileError, load_model
from zoo.space import Choice, Float, Int

__all__ = [
    "Choice", "CudnnStatus", "attention_weights", "CudnnWarning", "Float", "Int", "ModelFileError",
    "ModelInfo", "build_model", "comparable", "cudnn_report", "get", "list_models", "load_model",
    "register", "registered", "search_space", "start_autoregressive", "unregister",
]
