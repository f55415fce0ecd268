"""The served model: an MLflow pyfunc that takes raw data, not model inputs.

One class, ``ServedModel``, loads the Keras network with what its task needs
to read raw input and write results in the user's terms:

- **forecast**: raw history laid out as the training CSV in; the next
  timestamps with forecasts and interval bounds in the data's units out
  (``experiments.forecasting.forecaster.Forecaster``);
- **classification**: raw sequences in (long form with the id, time and
  feature columns of the training CSV, or an array ``(n, steps, features)``
  for array data); the label and each class' probability out;
- **language_model**: prompts in (a ``prompt`` column); generated text out,
  with the parameters of ``generate`` (``length``, ``temperature``, ``seed``).

What a run logs (and a search registers) as its model:

- ``artifacts/network.keras``: the Keras model;
- ``artifacts/spec.json``: the task's reader and writer (scaler, transforms,
  intervals, classes, vocabulary...);
- ``artifacts/history.csv`` (forecasts only): the last rows of the training
  data, which the model continues when given no history (``lstm-zoo
  forecast`` without ``--csv``), and the source of its input example.

It is logged from code (``served_model.py``), not pickled, so loading needs
this package installed and nothing of the run's working directory::

    model = mlflow.pyfunc.load_model("models:/lstm-zoo-airline-passengers@best")
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
import numpy as np
import pandas as pd
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from experiments.forecasting.forecaster import ID_COL, Forecaster
from experiments.forecasting.panel_forecaster import PanelForecaster
from experiments.serving.readers import READERS

# The kinds whose reader forecasts (``forecast(network, history, steps)``):
# one series, or a panel of many (experiments.forecasting.panel_forecaster).
FORECASTS = ("forecast", "panel")
# The file MLflow loads the model from ("models from code": no pickle).
CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "served_model.py")
# The most one request may hold by default: bigger ones are refused before
# any work (split them). A request of 20,000 series took a server 12.5 s and
# 1.7 GB. The server's environment may set others (request_limits).
MAX_REQUEST_SERIES = 5_000
MAX_REQUEST_ROWS = 500_000

_log = logging.getLogger(__name__)


class RequestError(mlflow.exceptions.MlflowException, ValueError):
    """What is wrong with a request, in the model's words: MLflow's server
    answers it with HTTP 400 and this message alone (no stack trace), and
    Python code catches it as the ``ValueError`` it is."""

    def __init__(self, message):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def request_limits() -> tuple[int, int]:
    """``(rows, series)`` one request may hold: ``LSTM_ZOO_MAX_REQUEST_ROWS``
    and ``LSTM_ZOO_MAX_REQUEST_SERIES`` where the server's environment sets
    them, else ``MAX_REQUEST_ROWS`` and ``MAX_REQUEST_SERIES``."""
    return (int(os.environ.get("LSTM_ZOO_MAX_REQUEST_ROWS", MAX_REQUEST_ROWS)),
            int(os.environ.get("LSTM_ZOO_MAX_REQUEST_SERIES", MAX_REQUEST_SERIES)))


def check_request_size(model_input) -> None:
    """A ``RequestError`` naming the limit, for a request over
    ``request_limits()``."""
    max_rows, max_series = request_limits()
    rows = len(model_input) if model_input is not None else 0
    if rows > max_rows:
        raise RequestError(f"the request holds {rows} rows; one request may hold at most "
                           f"{max_rows} (split it into several)")
    if isinstance(model_input, pd.DataFrame) and ID_COL in model_input.columns:
        series = model_input[ID_COL].nunique()
        if series > max_series:
            raise RequestError(f"the request holds {series} series ({ID_COL!r} values); one "
                               f"request may hold at most {max_series} (split it "
                               f"into several)")


class ServedModel(mlflow.pyfunc.PythonModel):
    """Raw input in, results in the user's terms out (see the module)."""

    def load_context(self, context):
        import keras

        import zoo.families  # noqa: F401  (registers the zoo's layers for loading)

        self.kind = context.model_config["kind"]
        # A ForecastModel's own settings (experiments.forecasting.forecast_model), if saved by one.
        self.settings = context.model_config.get("settings") or {}
        members = int(context.model_config.get("members", 0))
        if members:  # an ensemble: the mean of its members' forecasts
            self.network = [keras.saving.load_model(context.artifacts[f"network_{i}"],
                                                    compile=False) for i in range(members)]
        else:
            self.network = keras.saving.load_model(context.artifacts["network"],
                                                   compile=False)
        with open(context.artifacts["spec"]) as f:
            spec = json.load(f)
        self.reader = READERS[self.kind].from_config(spec)
        history = context.artifacts.get("history")
        self.history = pd.read_csv(history) if history else None

    @property
    def forecaster(self) -> Forecaster:
        return self.reader

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        """The task's answer to ``model_input``. Bad input raises a
        ``RequestError`` with the reader's message; any other failure is
        logged here, with its traceback, and raised as an error that says
        only that the model failed: a server sends its client no paths,
        source lines or stack."""
        check_request_size(model_input)
        try:
            return self._answer(model_input, params)
        except RequestError:
            raise
        except (ValueError, KeyError, TypeError) as err:
            # str() of a KeyError is its key quoted: its message is the key.
            raise RequestError(str(err.args[0] if isinstance(err, KeyError) and err.args
                                   else err)) from None
        except Exception as err:
            _log.exception("the model failed on a request")
            raise mlflow.exceptions.MlflowException(
                f"the model failed on this request ({type(err).__name__}); the server's "
                f"log has the details", error_code=INTERNAL_ERROR) from err

    def _answer(self, model_input, params):
        params = dict(params or {})
        if self.kind in FORECASTS:
            history = model_input
            if history is None or len(history) == 0:  # continue the training data
                history = self.history
            steps = params.get("steps")
            steps = None if steps is None else int(steps)
            samples = int(params.get("samples") or 0)
            if samples:  # a distribution model's simulated futures (a long table)
                return self.reader.sample_paths(self.network, history, steps, samples,
                                                seed=int(params.get("seed") or 0))
            return self.reader.forecast(self.network, history, steps=steps)
        return self.reader.predict(self.network, model_input, **params)


# === Logging ===

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


def _signature(reader, kind, example, output):
    """Named columns in and out. Input columns are optional to MLflow, so a
    missing one reaches the reader, whose error names it. Every column of a
    forecast or a classification takes any type and the reader parses it: a
    time or id column (MLflow's datetime type refuses pandas 3's text
    columns), and the values too (MLflow refuses the int64 columns that
    ``pd.read_csv`` makes of whole numbers, such as airline's passengers, for
    a double; the reader reads them, and names a cell that is no number)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import (
        AnyType,
        ColSpec,
        ParamSchema,
        ParamSpec,
        Schema,
    )

    columns = list(getattr(example, "columns", []))
    if kind in FORECASTS:
        horizon = reader.horizon if kind == "panel" else (reader.steps
                                                          or reader.preprocessor.horizon)
        # samples: simulated futures instead of the forecast table. Declared
        # for every head, so that one that draws none says so (MLflow drops a
        # parameter its signature lacks, and would answer the table instead).
        params = [ParamSpec("steps", "long", horizon), ParamSpec("samples", "long", 0),
                  ParamSpec("seed", "long", 0)]
        if kind == "forecast":
            columns.append(ID_COL)  # optional: several series in one request
    elif kind == "classification":
        params = []
    else:
        params = [ParamSpec("length", "long", 200), ParamSpec("temperature", "double", 0.8),
                  ParamSpec("seed", "long", 0)]
    if isinstance(example, np.ndarray):
        # No input schema: MLflow's tensor check would refuse float32 for a
        # float64 spec (and the reverse); the reader checks shape and values
        # and names what is wrong.
        inputs = None
    else:
        inputs = Schema([ColSpec("string" if kind == "language_model" else AnyType(), c,
                                 required=kind == "language_model")
                         for c in columns])
    outputs = Schema([ColSpec(_dtype(output[c]), c) for c in output.columns])
    return ModelSignature(inputs, outputs, ParamSchema(params) if params else None)


def _dtype(column) -> str:
    kind = column.dtype.kind
    return {"M": "datetime", "i": "long", "f": "double", "b": "boolean"}.get(kind, "string")


def log_served(kind: str, network, reader, example, requirements, history=None):
    """Log ``ServedModel`` to the active run as ``model``: a logged model,
    so the run's "Logged models" and the experiment's Models tab show it.

    Args:
        kind: the task (``forecast``, ``classification``, ``language_model``).
        network: the Keras model, or a list of them (a forecasting ensemble);
            reader: the task's reader (``READERS``).
        example: real raw input from the training data.
        history: forecasts only, the end of the training data (a DataFrame).

    Returns MLflow's ``ModelInfo`` (``model_uri`` is ``models:/<model id>``).
    """
    with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow.pyfunc"):
        return mlflow.pyfunc.log_model(name="model", **_bundle(
            tmp, kind, network, reader, example, requirements, history))


def save_served(path: str, kind: str, network, reader, example, requirements,
                history=None, settings: dict | None = None) -> None:
    """``ServedModel`` saved to the folder ``path`` (as ``log_served`` logs
    it, without any run or store): ``mlflow.pyfunc.load_model(path)`` loads
    it. ``settings``: kept in the model's config (the ``ForecastModel``'s
    own, so that ``ForecastModel.load`` restores them)."""
    with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow.pyfunc"):
        bundle = _bundle(tmp, kind, network, reader, example, requirements, history)
        bundle["model_config"]["settings"] = settings or {}
        mlflow.pyfunc.save_model(path, **bundle)


def _bundle(tmp, kind, network, reader, example, requirements, history) -> dict:
    """The files (written under ``tmp``) and arguments of a ``ServedModel``
    for MLflow's ``log_model``/``save_model``."""
    if kind in FORECASTS:
        output = reader.forecast(network, example)
    else:
        output = reader.predict(network, example, **(
            {"length": 5} if kind == "language_model" else {}))
    paths = {"spec": os.path.join(tmp, "spec.json")}
    config = {"kind": kind}
    if isinstance(network, (list, tuple)):  # an ensemble
        config["members"] = len(network)
        for i, member in enumerate(network):
            paths[f"network_{i}"] = os.path.join(tmp, f"network_{i}.keras")
            member.save(paths[f"network_{i}"])
    else:
        paths["network"] = os.path.join(tmp, "network.keras")
        network.save(paths["network"])
    with open(paths["spec"], "w") as f:
        json.dump(reader.to_config(), f, indent=2)
    if history is not None:
        paths["history"] = os.path.join(tmp, "history.csv")
        history.to_csv(paths["history"], index=False)
    return dict(python_model=CODE, artifacts=paths, model_config=config,
                signature=_signature(reader, kind, example, output), input_example=example,
                pip_requirements=requirements)


def log_forecast_model(network, forecaster: Forecaster, series, requirements):
    """The forecasting model, its example the last ``window`` (+ the rows
    differencing needs) rows of the series."""
    history, example = forecast_history(series, forecaster)
    return log_served("forecast", network, forecaster, example, requirements, history)


def forecast_history(series, forecaster: Forecaster) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a served forecaster keeps of its data: the end of the series
    (continued when no history is given) and, within it, the input example
    (the last rows the model needs). A combination's statistical members
    refit on the history they are given, so they keep all of it."""
    rows = len(series) if forecaster.statistical_members else 2 * forecaster.min_rows
    history = history_frame(series, rows)
    return history, history.iloc[-forecaster.min_rows:].reset_index(drop=True)


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


# === Loading ===

def load(model_uri: str, kind: str | tuple[str, ...] = FORECASTS):
    """The served model at ``model_uri`` (``models:/name@alias``,
    ``runs:/<id>/model``, a folder) as ``(pyfunc model, ServedModel)``.

    Raises:
        ValueError: the URI names nothing, or a model that is not one of
            lstm-zoo's served models of task ``kind`` (or of one of them).
    """
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as err:
        text = " ".join(str(getattr(err, "message", err)).split())[:300]
        raise ValueError(f"cannot load the model {model_uri!r}: {text}") from None
    try:
        inner = model.unwrap_python_model()
    except MlflowException:
        inner = None
    if not isinstance(inner, ServedModel) or inner.kind not in kinds:
        what = {"forecast": "forecasting model logged by `train` or registered by `tune` "
                            "on a series or a panel",
                "language_model": "character-level language model (trained with --text "
                                  "or --data timemachine)",
                "classification": "sequence classifier"}[kinds[0]]
        found = getattr(inner, "kind", "not an lstm-zoo served model")
        raise ValueError(f"{model_uri!r} is not a {what} ({found})")
    return model, inner


def history_from_csv(path: str, forecaster: Forecaster, *, time_format=None,
                     fill_missing=False, sort=False, max_file_mb=None) -> pd.DataFrame:
    """A user's CSV read and checked as for training, with the model's
    columns, laid out as the served model takes it."""
    from experiments import data

    if isinstance(forecaster, PanelForecaster):
        c = forecaster.encoder
        covariates = dict(past=c.past, future=c.future, static=c.static,
                          future_rows=bool(c.future)) if c else {}
        panel = data.load_panel_csv(path, id_col=forecaster.id_col,
                                    time_col=forecaster.time_col, target=forecaster.target,
                                    time_format=time_format, max_file_mb=max_file_mb,
                                    **covariates)
        frame = panel.frame.copy()
        frame[panel.time_col] = frame[panel.time_col].dt.strftime("%Y-%m-%dT%H:%M:%S")
        return frame
    pre = forecaster.preprocessor
    series = data.load_csv(path, target=list(pre.targets),
                           features=[f for f in pre.features if f not in pre.targets],
                           time_col=forecaster.time_col, time_format=time_format,
                           fill_missing=fill_missing, sort=sort, max_file_mb=max_file_mb)
    return history_frame(series, len(series))
