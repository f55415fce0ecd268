"""Forecasting, stage by stage: ``preprocessing`` (transforms and the scaler,
fitted on training rows), ``windows`` (leak-free splits and windows),
``metrics`` and ``statistical`` (scores in the data's units and the baselines),
``forecaster`` (raw history in, dated forecasts with intervals out), and
``forecast_model`` (``ForecastModel``: fit, predict, cross-validate, save and
load on DataFrames)."""

