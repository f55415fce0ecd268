"""The served model's code, as MLflow's "models from code" loads it: the
logged model refers to this file instead of a pickled object, so loading it
runs nothing but this package's code (``experiments.serving.pyfunc``)."""

import mlflow

from experiments.serving.pyfunc import ServedModel

mlflow.models.set_model(ServedModel())
