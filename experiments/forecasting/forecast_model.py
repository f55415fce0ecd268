"""One object owns a forecasting model's life: fit, predict, cross-validate,
save and load, on DataFrames laid out as the user's CSV.

>>> import pandas as pd
>>> from experiments.forecasting.forecast_model import ForecastModel
>>> df = pd.read_csv("airline-passengers.csv")          # Month, Passengers
>>> model = ForecastModel("gru", target="Passengers", time_col="Month",
...                       horizon=12, epochs=50).fit(df)
>>> model.predict()                   # the 12 months after the data, with intervals
>>> model.cross_validation(df, n_windows=3)   # truth, forecast and bounds per origin
>>> model.save("airline-gru"); ForecastModel.load("airline-gru").predict()

It runs the same stages as ``lstm-zoo train`` (``experiments.training.fitting``: the
network, early stopping, the refit on all the data; the task's conformal
intervals) and saves the same MLflow pyfunc the CLI logs, so a saved model
serves with ``mlflow models serve -m <folder>``. Nothing is tracked unless
asked: pass ``callbacks`` (such as ``experiments.training.curves.MetricLogger``) to
``fit`` inside a run of your own.
"""

from __future__ import annotations

import dataclasses
import os

import pandas as pd

from experiments import data, serving, tracking
from experiments.config import RunConfig
from experiments.errors import ConfigError
from experiments.forecasting.ensembles import Member
from experiments.forecasting.forecaster import check_levels
from experiments.forecasting.panel_forecaster import PanelForecaster
from experiments.tasks import forecast, load_tasks
from experiments.tasks.panel import panel_from_frame
from experiments.training import fitting

# Settings the object takes, each checked by ``RunConfig``'s constraint.
SETTINGS = ("target", "time_col", "id_col", "features", "future_features", "static",
            "calendar", "id_embedding", "time_format", "fill_missing", "sort",
            "window", "horizon", "transforms", "season", "intervals", "val_size",
            "test_size", "epochs", "batch_size", "learning_rate", "clipnorm", "patience",
            "seed", "autoregressive", "combine", "loss", "quantiles")


class ForecastModel:
    """A forecasting network of one zoo family, with its data's
    preprocessing and prediction intervals.

    Args:
        family: a registered family (``zoo.list_models()``), default ``gru``;
            or a list of them, an ensemble: each trained on the same windows,
            the forecast the mean of theirs (intervals calibrated on it).
        target: the column (or columns) to forecast.
        time_col: the timestamp column, if any; forecasts are dated from it.
        id_col: a panel: the column naming each series of a long table (with
            ``time_col`` and one ``target``, as neuralforecast's ``unique_id,
            ds, y``). One network is trained over every series, each window
            scaled by itself, and ``predict`` forecasts every series given.
        features: extra input columns (for a panel: known up to each
            forecast origin only).
        future_features, static, calendar: a panel's covariates (known in
            advance over the horizon; one value per series; parts of the
            timestamps), as ``--future-features``, ``--static`` and
            ``--calendar`` (see ``experiments.forecasting.panel_covariates``).
            With future features, ``predict(df)`` needs each series' rows for
            the dates forecast, the target left empty.
        window, horizon, transforms, season, intervals, val_size,
            test_size: as ``lstm-zoo train``'s flags (``None``: the same
            defaults, chosen from the data where train chooses them).
        epochs, batch_size, learning_rate, clipnorm, patience, seed,
            autoregressive: training settings, as for ``train``.
        combine: how the served forecast combines the network with ETS
            and SARIMA, weighted on the validation forecasts (``--combine``):
            ``"inverse_mse"`` (default), ``"least_squares"``, or ``"none"``
            for the network alone.
        refit: after early stopping on the validation rows, train again on
            every row for as many epochs, and serve that network (default
            True); the intervals keep the widths calibrated out of sample.
        hyperparameters: the family's own (``units``, ``num_layers``...); for
            a list of families, a dict from family to its own.
        verbose: Keras' ``fit`` verbosity.

    Raises:
        ConfigError: a setting outside what it allows, naming it.
    """

    # What the object can do, declared rather than probed.
    supports_panels = True             # id_col: one network over many series
    # future_features (known over the horizon), static and calendar: panels only.
    supports_future_covariates = True
    supports_intervals = True

    def __init__(self, family: str | list[str] = "gru", *, target, refit: bool = True,
                 hyperparameters: dict | None = None, verbose: int = 0, **settings):
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ConfigError(f"ForecastModel takes no setting {unknown[0]!r}; it takes "
                              f"{sorted(SETTINGS)}, refit, hyperparameters and verbose")
        families = [family] if isinstance(family, str) else list(family)
        if not families:
            raise ConfigError("ForecastModel: family is an empty list; name at least one "
                              "of zoo.list_models()")
        import zoo

        for name in families:
            try:
                zoo.get(name)
            except KeyError as err:
                raise ConfigError(err.args[0]) from None
        self.family = family if isinstance(family, str) else families
        self.families = families
        self.refit, self.verbose = bool(refit), int(verbose)
        self.hyperparameters = dict(hyperparameters or {})
        if len(families) > 1:  # per member: {family: {...}}
            odd = sorted(set(self.hyperparameters) - set(families))
            if odd:
                raise ConfigError(
                    f"ForecastModel: with several families, hyperparameters maps each "
                    f"family to its own settings ({{'gru': {{'units': 32}}}}); {odd[0]!r} "
                    f"is not one of the members {families}")
        self.settings = {"target": [target] if isinstance(target, str) else list(target),
                         **{k: v for k, v in settings.items() if v is not None}}
        # Checks every value now, before any data: one configuration per member.
        self.configs = [self._run_config(name) for name in families]
        self.config = self.configs[0]
        self.network_ = self.forecaster_ = self.history_ = None
        self.training_history_: dict | list = {}

    def _hyperparameters_of(self, family: str) -> dict:
        if len(self.families) == 1:
            return self.hyperparameters
        return dict(self.hyperparameters.get(family, {}))

    def _run_config(self, family: str) -> RunConfig:
        given = dict(self.settings)
        for key in ("target", "features", "transforms", "future_features", "static",
                    "calendar", "quantiles"):
            if key in given:
                given[key] = tuple(given[key])
        if "intervals" in given:
            given["intervals"] = check_levels(given["intervals"])
        return RunConfig(model=family, refit=self.refit, verbose=self.verbose,
                         hyperparameters=self._hyperparameters_of(family), **given)

    def get_params(self) -> dict:
        """The constructor's arguments: ``ForecastModel(**m.get_params())``
        is an unfitted copy."""
        return {"family": self.family, "refit": self.refit, "verbose": self.verbose,
                "hyperparameters": dict(self.hyperparameters), **self.settings}

    # === Fit ===
    def fit(self, df: pd.DataFrame, callbacks=()) -> ForecastModel:
        """Train on ``df`` (the time column, targets and features, as the
        CSV ``train`` reads); ``callbacks``: Keras callbacks for the fit.

        Raises:
            DataError: a bad cell, column or timestamp, naming its row.
            TrainingError: the loss became NaN.
        """
        resolved, tasks = load_tasks(self.config, "train", series=self._data(df))
        task = tasks[-1]  # one task for every member: the same windows and transforms
        trained, served, histories = [], [], []
        for config in self.configs:
            cfg = dataclasses.replace(resolved, model=config.model,
                                      hyperparameters=config.hyperparameters)
            hp = fitting.resolve_hyperparameters(cfg.model, cfg.hyperparameters, task)
            model, history = fitting.train_network(cfg, task, hp, callbacks)
            trained.append(model)
            served.append(fitting.refit(cfg.model, task, hp, cfg, fitting.best_epochs(history))
                          if self.refit else model)
            histories.append(history)
        one = len(self.configs) == 1
        # An ensemble of families: one task (the same windows and transforms),
        # the mean of the members' forecasts (experiments.forecasting.ensembles).
        # Intervals from the validation rows of the networks that never saw them.
        members = trained if self.is_panel else [Member(m) for m in trained]
        self.forecaster_ = task.forecaster(trained[0] if one else members, refit=self.refit)
        self.network_ = served[0] if one else served
        self.training_history_ = histories[0] if one else histories
        if self.is_panel:
            self.history_ = task.history()
        else:
            self.history_, _ = serving.forecast_history(task.series, self.forecaster_)
        return self

    @property
    def is_panel(self) -> bool:
        return bool(self.settings.get("id_col"))

    def _data(self, df):
        """``df`` checked as a series, or as a panel with ``id_col``."""
        s = self.settings
        if self.is_panel:
            return panel_from_frame(df, s)
        return data.frame_series(
            df, target=s["target"], features=s.get("features", ()),
            time_col=s.get("time_col"), time_format=s.get("time_format"),
            fill_missing=s.get("fill_missing", False), sort=s.get("sort", False))

    def _check_fitted(self, what: str) -> None:
        if self.network_ is None:
            raise ConfigError(f"ForecastModel.{what}: fit the model first (or load one)")

    # === Predict ===
    def predict(self, df: pd.DataFrame | None = None, steps: int | None = None,
                samples: int | None = None, seed: int = 0) -> pd.DataFrame:
        """The ``steps`` (default: the horizon) timestamps after ``df`` (default:
        the data it was fit on), with the forecast and interval bounds in the
        data's units: the table the served model returns.

        ``samples``: instead, that many simulated futures of each series
        from a distribution model (``loss="normal"``, ``"student_t"`` or, for
        one series, ``"negative_binomial"``), a long table with a ``sample``
        column (``Forecaster.sample_paths``, ``PanelForecaster.sample_paths``)."""
        self._check_fitted("predict")
        history = self.history_ if df is None else df
        if samples is None:
            return self.forecaster_.forecast(self.network_, history, steps=steps)
        return self.forecaster_.sample_paths(self.network_, history, steps, samples, seed)

    # === Cross-validation ===
    def cross_validation(self, df: pd.DataFrame, n_windows: int = 3,
                         step: int | None = None) -> pd.DataFrame:
        """Rolling-origin evaluation: for each of ``n_windows`` origins,
        ``step`` rows apart (default: the horizon), a copy of this model is
        fit on the rows up to the origin and forecasts the horizon after it.

        Returns one row per origin and step: the forecast table's columns
        (time, forecasts, ``lower_XX``/``upper_XX``), ``cutoff`` (the last
        time, or row, trained on) and ``<target>_actual`` (the truth).
        """
        horizon = self.settings.get("horizon") or forecast.DEFAULTS["horizon"]
        step = horizon if step is None else step
        for name, value in (("n_windows", n_windows), ("step", step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"cross_validation: {name} must be an int >= 1; "
                                  f"received {value!r}")
        if self.is_panel:
            return self._panel_cross_validation(df, n_windows, step)
        first = len(df) - horizon - step * (n_windows - 1)
        if first < 2:
            raise ConfigError(f"cross_validation: {n_windows} origins {step} rows apart "
                              f"with horizon {horizon} need more than {len(df)} rows")
        time_col, targets = self.settings.get("time_col"), self.settings["target"]
        tables = []
        for cut in range(first, len(df) - horizon + 1, step):
            train, future = df.iloc[:cut], df.iloc[cut:cut + horizon]
            table = ForecastModel(**self.get_params()).fit(train).predict(train)
            table.insert(1, "cutoff", train[time_col].iloc[-1] if time_col else cut - 1)
            for t in targets:
                table[f"{t}_actual"] = pd.to_numeric(future[t]).to_numpy(dtype=float)
            tables.append(table)
        return pd.concat(tables, ignore_index=True)

    def _panel_cross_validation(self, df, n_windows: int, step: int | None) -> pd.DataFrame:
        """Rolling origin over a panel's dates: at each cutoff every series is
        cut at the same date, a copy of this model is fit on the rows up to it,
        and every series is forecast for the horizon after it."""
        panel = self._data(df)
        frame = panel.frame
        horizon = self.settings.get("horizon") or panel.season or 1
        step = horizon if step is None else step
        dates = pd.DatetimeIndex(sorted(frame[panel.time_col].unique()))
        first = len(dates) - horizon - step * (n_windows - 1)
        if first < 2:
            raise ConfigError(f"cross_validation: {n_windows} origins {step} dates apart "
                              f"with horizon {horizon} need more than {len(dates)} dates")
        tables = []
        for cut in range(first, len(dates) - horizon + 1, step):
            cutoff = dates[cut - 1]
            train = frame[frame[panel.time_col] <= cutoff]
            model = ForecastModel(**self.get_params()).fit(train)
            known = model.history_[panel.id_col].unique()
            table = model.predict(train[train[panel.id_col].isin(known)])
            table.insert(1, "cutoff", cutoff)
            actual = frame.rename(columns={panel.target: f"{panel.target}_actual"})
            tables.append(table.merge(actual, on=[panel.id_col, panel.time_col], how="left"))
        return pd.concat(tables, ignore_index=True)

    # === Save and load ===
    def save(self, path: str) -> str:
        """Save to the folder ``path`` (a new one) as the MLflow pyfunc
        ``lstm-zoo`` logs; ``ForecastModel.load(path)`` or
        ``mlflow.pyfunc.load_model(path)`` reads it back. No run, no store."""
        self._check_fitted("save")
        if os.path.exists(path):
            raise ConfigError(f"ForecastModel.save: {path} already exists; give a new folder")
        if self.is_panel:
            key = self.settings["id_col"]
            example = self.history_[self.history_[key].isin(
                self.history_[key].unique()[:3])].reset_index(drop=True)
        else:
            example = self.history_.iloc[-self.forecaster_.min_rows:].reset_index(drop=True)
        kind = "panel" if self.is_panel else "forecast"
        serving.save_served(path, kind, self.network_, self.forecaster_, example,
                           tracking.model_requirements(), history=self.history_,
                           settings=self.get_params())
        return path

    @classmethod
    def load(cls, path: str) -> ForecastModel:
        """A model saved by ``save`` (or logged by ``train``/``tune``: a
        folder, ``runs:/`` or ``models:/`` URI), ready to ``predict``."""
        import mlflow

        inner = mlflow.pyfunc.load_model(path).unwrap_python_model()
        if inner.kind not in serving.FORECASTS:
            raise ConfigError(f"{path} holds a {inner.kind} model, not a forecast")
        settings = dict(inner.settings) or _settings_of(inner.forecaster)
        model = cls(**settings)
        model.network_, model.forecaster_ = inner.network, inner.forecaster
        model.history_ = inner.history
        return model


def _settings_of(forecaster) -> dict:
    """The settings of a model logged by ``train`` or ``tune`` (which keep
    no ``ForecastModel`` settings): what its forecaster knows."""
    if isinstance(forecaster, PanelForecaster):
        return {"target": [forecaster.target], "time_col": forecaster.time_col,
                "id_col": forecaster.id_col, "window": forecaster.window,
                "horizon": forecaster.horizon}
    pre = forecaster.preprocessor
    features = [f for f in pre.features if f not in pre.targets]
    return {"target": list(pre.targets), "time_col": forecaster.time_col,
            "window": pre.window, "horizon": pre.horizon,
            **({"features": features} if features else {})}


__all__ = ["ForecastModel"]
