"""The served forecasting model: an MLflow pyfunc around a ``Forecaster``.

What a run logs (and a search registers) under ``model/``:

- ``artifacts/network.keras``: the Keras model;
- ``artifacts/forecaster.json``: preprocessing, time column and intervals
  (``experiments.forecaster.Forecaster``);
- ``artifacts/history.csv``: the last rows of the training data, which the
  model continues when it is given no history (``lstm-zoo forecast``
  without ``--csv``), and the model's input example.

Loading needs this package installed (``pip install -e .``) and nothing of
the run's working directory::

    model = mlflow.pyfunc.load_model("models:/lstm-zoo-airline@best")
    model.predict(history_frame)                    # the next `horizon` steps
    model.predict(history_frame, params={"steps": 24})
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile

import mlflow
import pandas as pd

from experiments.forecaster import Forecaster

# The file MLflow loads the model from ("models from code": no pickle).
CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "served_model.py")


class ForecastModel(mlflow.pyfunc.PythonModel):
    """Raw history (a DataFrame laid out as the training CSV) in; the next
    timestamps with forecasts and interval bounds, in the data's units, out."""

    def load_context(self, context):
        import keras

        import zoo  # noqa: F401  (registers the zoo's layers for loading)

        self.network = keras.saving.load_model(context.artifacts["network"], compile=False)
        with open(context.artifacts["forecaster"]) as f:
            self.forecaster = Forecaster.from_config(json.load(f))
        self.history = pd.read_csv(context.artifacts["history"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        steps = (params or {}).get("steps")
        history = model_input
        if history is None or len(history) == 0:  # no history: continue the training data
            history = self.history
        return self.forecaster.forecast(self.network, history,
                                        steps=None if steps is None else int(steps))


def history_frame(series, rows: int) -> pd.DataFrame:
    """The last ``rows`` rows of ``series`` laid out as its CSV: the time
    column first (as ISO 8601 text), then targets and features."""
    frame = series.frame[list(series.features)].iloc[-rows:]
    if isinstance(series.frame.index, pd.DatetimeIndex):
        frame = frame.reset_index()
        name = series.frame.index.name
        frame[name] = frame[name].dt.strftime("%Y-%m-%dT%H:%M:%S")
        return frame
    return frame.reset_index(drop=True)


def signature(forecaster: Forecaster, example: pd.DataFrame, output: pd.DataFrame):
    """Named columns in and out; every input column optional to MLflow, so
    that a missing one reaches ``Forecaster.check_history`` and its error
    names it; ``steps`` as a parameter (default: the horizon)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    # The time column accepts timestamps or ISO 8601 text (MLflow's datetime
    # type refuses pandas 3's text columns); Forecaster.check_history parses it.
    inputs = [ColSpec(AnyType() if c == forecaster.time_col else "double", c,
                      required=False) for c in example.columns]
    outputs = [ColSpec("datetime" if c == forecaster.time_col else
                       "long" if c == "step" else "double", c) for c in output.columns]
    params = ParamSchema([ParamSpec("steps", "long", forecaster.preprocessor.horizon)])
    return ModelSignature(Schema(inputs), Schema(outputs), params)


def log_forecast_model(network, forecaster: Forecaster, series, requirements):
    """Log the pyfunc model to the active run as ``model`` (a logged model,
    so the run's "Logged models" and the experiment's Models tab show it).

    Returns MLflow's ``ModelInfo`` (``model_uri`` is ``models:/<model id>``).
    """
    history = history_frame(series, 2 * forecaster.min_rows)
    example = history.iloc[-forecaster.min_rows:].reset_index(drop=True)
    output = forecaster.forecast(network, example)
    with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow.pyfunc"):
        paths = {"network": os.path.join(tmp, "network.keras"),
                 "forecaster": os.path.join(tmp, "forecaster.json"),
                 "history": os.path.join(tmp, "history.csv")}
        network.save(paths["network"])
        with open(paths["forecaster"], "w") as f:
            json.dump(forecaster.to_config(), f, indent=2)
        history.to_csv(paths["history"], index=False)
        return mlflow.pyfunc.log_model(
            name="model", python_model=CODE, artifacts=paths,
            signature=signature(forecaster, example, output), input_example=example,
            pip_requirements=requirements)


@contextlib.contextmanager
def _quiet(logger_name):
    """MLflow's INFO lines ("Validating input example...") off for a while."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def load(model_uri: str):
    """The served model at ``model_uri`` (``models:/name@alias``,
    ``runs:/<id>/model``, a folder) as ``(pyfunc model, ForecastModel)``.

    Raises:
        ValueError: the URI names nothing, or a model that is not one of
            lstm-zoo's forecasting models.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as err:
        text = " ".join(str(getattr(err, "message", err)).split())[:300]
        raise ValueError(f"cannot load the model {model_uri!r}: {text}") from None
    inner = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else None
    if not isinstance(inner, ForecastModel):
        raise ValueError(f"{model_uri!r} is not an lstm-zoo forecasting model (it has no "
                         f"forecaster); `lstm-zoo forecast` needs a model logged by "
                         f"`train` or registered by `tune` on a series")
    return model, inner


def history_from_csv(path: str, forecaster: Forecaster, *, time_format=None,
                     fill_missing=False, sort=False, max_file_mb=None) -> pd.DataFrame:
    """A user's CSV read and checked as for training, with the model's
    columns, laid out as the served model takes it."""
    from experiments import data

    pre = forecaster.preprocessor
    series = data.load_csv(path, target=list(pre.targets),
                           features=[f for f in pre.features if f not in pre.targets],
                           time_col=forecaster.time_col, time_format=time_format,
                           fill_missing=fill_missing, sort=sort, max_file_mb=max_file_mb)
    return history_frame(series, len(series))
