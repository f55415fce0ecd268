"""Every use of a private MLflow API, in one place (written against MLflow 3.17).

``tests/zoo/test_compat.py`` exercises each, so an MLflow upgrade that moves one
fails there by name. The Keras, TensorFlow and keras-tuner ones are in
``zoo/compat.py``.
"""

from __future__ import annotations

import os


def dataset_input(dataset, context: str = "training"):
    """``dataset`` (an ``mlflow.data`` dataset) as the ``DatasetInput`` that
    ``MlflowClient.log_inputs`` takes (``Dataset._to_mlflow_entity``): a
    search logs its data on every trial's run without hashing it again."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    return DatasetInput(dataset._to_mlflow_entity(),
                        tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])


def _save_keras_model(path, **kwargs):
    # mlflow.keras.save_model (MLflow 3.17) writes the input example into
    # `path` before it creates `path`, so mlflow.keras.log_model, which hands
    # it a folder that does not exist yet, fails with FileNotFoundError.
    import mlflow

    os.makedirs(path, exist_ok=True)
    return mlflow.keras.save_model(path=path, **kwargs)


def log_keras_model(model, signature, input_example, pip_requirements):
    """``mlflow.keras.log_model`` as a logged model ``model`` of the active
    run, through ``Model.log`` with a flavor object whose ``save_model``
    makes its folder first (``Model.log`` calls ``flavor.save_model``; the
    flavor protocol is internal). Returns MLflow's ``ModelInfo``."""
    import types

    import mlflow

    flavor = types.SimpleNamespace(__name__="mlflow.keras", save_model=_save_keras_model)
    return mlflow.models.Model.log(
        artifact_path=None, name="model", flavor=flavor, model=model, signature=signature,
        input_example=input_example, pip_requirements=pip_requirements)
