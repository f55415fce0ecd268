"""Serving: what a run logs as its model, and what answers a request.

- ``pyfunc``: the MLflow pyfunc (``ServedModel``), logged from code, with the
  functions that log, save and load it;
- ``readers``: the raw-input readers of classification and language models
  (a forecast's is ``experiments.forecasting.forecaster.Forecaster``);
- ``card``: the model card of a registered version.
"""

from experiments.serving.pyfunc import (
    CODE,
    FORECASTS,
    ServedModel,
    forecast_history,
    history_frame,
    history_from_csv,
    load,
    log_forecast_model,
    log_served,
    save_served,
)
from experiments.serving.readers import READERS, SequenceClassifier, TextGenerator

__all__ = ["CODE", "FORECASTS", "READERS", "SequenceClassifier", "ServedModel", "TextGenerator",
           "forecast_history", "history_frame", "history_from_csv", "load",
           "log_forecast_model", "log_served", "save_served"]
