"""The forecasting task: a series, windows, forecasts in original units."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from experiments import data, tracking
from experiments.config import SEARCHED_LOSSES
from experiments.errors import ConfigError
from experiments.forecasting import (
    combination,
    counts,
    metrics,
    quantile_paths,
    short_series,
    statistical,
    windows,
)
from experiments.forecasting.combination import NETWORK
from experiments.forecasting.ensembles import Member, combine
from experiments.forecasting.forecaster import (
    DEFAULT_LEVELS,
    Forecaster,
    calibration_note,
    conformal_widths,
    interval_bounds,
    nested,
    quantile_corrections,
)
from experiments.tasks.base import Split, Task
from zoo.quantile_levels import (
    COUNT_DISTRIBUTIONS,
    DISTRIBUTIONS,
    check_quantiles,
    distribution_quantiles,
    interval_ends,
    median_index,
)

KIND = "forecast"
TAKES = ("data", "dataset_options", "csv", "target", "features", "time_col", "time_format",
         "max_file_mb", "fill_missing", "sort", "window", "horizon", "val_size", "test_size",
         "season", "transforms", "folds", "refit", "intervals", "autoregressive", "combine",
         "loss", "quantiles")
# Where neither the user nor the dataset (``Series.defaults``) says otherwise.
# transforms None: chosen from the training rows (statistical.choose_transforms).
DEFAULTS = {"window": 24, "horizon": 1, "val_size": 0.15, "test_size": 0.15,
            "transforms": None}
DATASETS = {"airline": data.load_airline, "sine": data.make_sine}
LABELS = {"ets": "ETS", "sarima": "SARIMA"}
SEARCHED = "chosen by the search, on validation RMSE in the data's units"
# The served forecast combines the networks with ETS and SARIMA unless the
# user says otherwise: on the public set's last origin this took mean OWA
# from 1.030 (the networks alone) to 0.765 (README, "Accuracy").
DEFAULT_COMBINE = "inverse_mse"


def claims(cfg) -> bool:
    return bool(cfg.csv)


def load_series(cfg) -> data.Series:
    """A series to forecast: a user CSV if ``cfg.csv``, else a named one."""
    if cfg.csv:
        if not cfg.target:
            raise ConfigError("--csv needs --target COL (the column to forecast), "
                              "or --label-col COL for sequence classification")
        return data.load_csv(cfg.csv, target=list(cfg.target), features=cfg.features,
                             time_col=cfg.time_col, time_format=cfg.time_format,
                             max_file_mb=cfg.max_file_mb, fill_missing=cfg.fill_missing,
                             sort=cfg.sort)
    try:
        return DATASETS[cfg.data](**cfg.dataset_options)
    except TypeError as err:
        raise data.DataError(f"dataset {cfg.data!r}: bad option ({err})") from None


def settings(cfg, series) -> dict:
    """Window, horizon, split sizes, transforms and season: the user's, else
    the dataset's, else ``DEFAULTS``."""
    out = {k: getattr(cfg, k) if getattr(cfg, k) is not None
           else series.defaults.get(k, default) for k, default in DEFAULTS.items()}
    if out["transforms"] is not None:
        out["transforms"] = tuple(out["transforms"])
    out["season"] = cfg.season or series.season
    return out


def fold_series(series, folds: int, n_test: int):
    """Rolling origin: fold k keeps the first ``n - (folds-1-k)*n_test``
    rows, so each fold's test block follows the previous one and every
    training part contains the last fold's."""
    n = len(series)
    return [dataclasses.replace(series, frame=series.frame.iloc[
        : n - (folds - 1 - k) * n_test]) for k in range(folds)]


def make_tasks(cfg, series=None) -> list[ForecastTask]:
    """One ``ForecastTask`` per rolling-origin fold (``cfg.folds``), of
    ``series`` or else of the data ``cfg`` names. A series too short for the
    default settings gets smaller ones (``fit_to_series``)."""
    series = load_series(cfg) if series is None else series
    chosen = settings(cfg, series)
    requested, adjustments = chosen["horizon"], ()
    if cfg.folds == 1:
        chosen, note = fit_to_series(cfg, series, chosen)
        adjustments = (note,) if note else ()
    n_test = windows.resolve_part(chosen["test_size"], len(series), series.frame.index,
                                  "test")
    folds = fold_series(series, cfg.folds, n_test)
    reason = None
    if cfg.loss in COUNT_DISTRIBUTIONS:
        chosen["transforms"], reason = count_transforms(cfg, series)
    if chosen["transforms"] is None:  # neither the user nor the dataset named any
        first = folds[0]  # the fewest training rows: no fold decides on data it tests
        n_val = windows.resolve_part(chosen["val_size"], len(first) - n_test,
                                     first.frame.index, "val")
        chosen["transforms"], reason = statistical.choose_transforms(
            first.frame[list(series.targets)].to_numpy(dtype=float),
            max(len(first) - n_test - n_val, 1), chosen["season"])
    levels = cfg.intervals if cfg.intervals is not None else DEFAULT_LEVELS
    quantiles, levels = quantile_settings(cfg, levels)
    # What a search may still choose: the settings the user did not name.
    searchable = tuple(k for k in ("window", "transforms") if getattr(cfg, k) is None
                       and not (k == "transforms" and cfg.loss in COUNT_DISTRIBUTIONS))
    searched = cfg.loss == "search"  # a point network first; each trial its own head
    searchable += ("loss",) if searched else ()
    steps = requested if requested != chosen["horizon"] else None
    return [ForecastTask(windows.prepare(s, **chosen), series.repairs, levels, reason,
                         settings=chosen, searchable=searchable,
                         autoregressive=cfg.autoregressive, steps=steps,
                         combine=cfg.combine or DEFAULT_COMBINE,
                         adjustments=adjustments, quantiles=() if searched else quantiles,
                         distribution=cfg.loss if cfg.loss in DISTRIBUTIONS else None,
                         head_quantiles=quantiles)
            for s in folds]


def count_transforms(cfg, series) -> tuple[tuple, str]:
    """A count head's transforms, none, and why; transforms the user named
    are a ``ConfigError``, targets that are not counts a ``DataError``."""
    if cfg.transforms:
        raise ConfigError(f"--loss {cfg.loss} models the counts as they are; --transform "
                          f"{','.join(cfg.transforms)} would log or difference them (leave "
                          f"--transform out, or give none)")
    counts.check_counts(series)
    return (), "none: a count distribution models the counts as they are"


def quantile_settings(cfg, levels) -> tuple[tuple, tuple]:
    """``(quantiles, levels)``: the quantiles a ``--loss quantile`` network
    forecasts, or a distribution network's served (``()`` for a point
    network), and the interval levels served.

    Left out, the quantiles are the median and the two ends of every
    interval. Given, they decide the intervals when ``--intervals`` is not
    named (80% from 0.1 and 0.9); an interval named whose ends are not
    among them is an error naming the missing quantile."""
    if cfg.loss in (None, "mse"):
        if cfg.quantiles is not None:
            raise ConfigError("--quantiles needs --loss quantile, normal, student_t or "
                              "negative_binomial (a "
                              "network that forecasts quantiles or a distribution); "
                              "received --quantiles without it")
        return (), levels
    if cfg.quantiles is None:
        ends = [q for level in levels for q in interval_ends(level)]
        return check_quantiles("--quantiles", [*ends, 0.5]), levels
    try:
        quantiles = check_quantiles("--quantiles", cfg.quantiles)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    covered = tuple(level for level in range(1, 100)
                    if set(interval_ends(level)) <= set(quantiles))
    if cfg.intervals is None:
        return quantiles, covered
    for level in levels:
        missing = [q for q in interval_ends(level) if q not in quantiles]
        if missing:
            raise ConfigError(
                f"--intervals {level} needs the quantiles {interval_ends(level)}; "
                f"--quantiles {','.join(f'{q:g}' for q in quantiles)} lacks {missing[0]:g} "
                f"(add it, or leave --intervals out for {list(covered) or 'none'})")
    return quantiles, levels


def fit_to_series(cfg, series, chosen) -> tuple[dict, str | None]:
    """``chosen`` with the settings neither the user nor the dataset named
    shrunk to fit a short series, and the sentence saying what changed
    (see ``experiments.forecasting.short_series``); below its minimum, a
    ``DataError`` naming it."""
    n, index = len(series), series.frame.index
    n_test = windows.resolve_part(chosen["test_size"], n, index, "test")
    n_val = windows.resolve_part(chosen["val_size"], n - n_test, index, "val")
    given = {k for k in ("window", "val_size", "test_size")
             if getattr(cfg, k) is not None or k in series.defaults}
    season = chosen["season"] or 1
    # Transforms chosen from the data difference at most once (never by season).
    lost = 1 if chosen["transforms"] is None else windows.rows_lost(chosen["transforms"],
                                                                     season)
    rolls = set(series.features) == set(series.targets)
    minimum = short_series.minimum_rows(chosen["horizon"], chosen["season"], lost=lost,
                                        rolls=rolls)
    if n < minimum and not given:
        raise data.DataError(
            f"{series.label}: {n} rows are too few to forecast {chosen['horizon']} steps; "
            f"lstm-zoo needs at least {minimum} rows (two seasons of {season} plus the "
            f"horizon, or more where that leaves too few training windows)")
    sized = dict(chosen, val_size=n_val, test_size=n_test)
    fitted, note = short_series.fit_to_length(n, sized, given, lost=lost, rolls=rolls)
    # Unchanged: keep the sizes as the user wrote them (a fraction stays one).
    return (fitted, note) if note else (chosen, None)


def window_choices(window: int, season: int) -> list[int]:
    """Lookbacks worth searching: one to three seasons, or half, once and
    twice the default when there is no season; the default always among them."""
    base = [season, 2 * season, 3 * season] if season > 1 else [
        max(2, window // 2), window, 2 * window]
    return sorted({*base, window})


def transform_choices(default: tuple, positive: bool, season: int) -> list[tuple]:
    """Transforms worth searching. A series the data says to difference is
    never searched undifferenced (it would leave the scaler's range); log
    only for a positive series; seasonal differencing only with a season."""
    logs = [("log",)] if positive else []
    heads = [*logs, ()]
    # diff+seasonal_diff: the airline model's (d=1, D=1) differencing.
    tails = [("diff",), *([("seasonal_diff",), ("diff", "seasonal_diff")]
                          if season > 1 else [])]
    if not any(t in default for t in ("diff", "seasonal_diff")):
        tails = [(), *tails]
    return sorted({tuple(default), *(h + t for h in heads for t in tails)},
                  key=lambda t: (len(t), t))


def forecaster_arguments(family, autoregressive, season, history=None,
                         series_channels=0) -> dict:
    """What a forecasting task fixes for ``family`` (see
    ``ForecastTask.builder_arguments``): ``autoregressive`` unless the user
    said no, ``season_length`` for the families that smooth a season and,
    for a panel's inputs with covariates, the ``history`` steps they smooth
    and the ``series_channels`` that describe each series."""
    import zoo

    if family is None:
        return {"autoregressive": autoregressive is not False}
    takes = zoo.get(family).hyperparameters
    arguments = {}
    # seq2seq_lstm takes none: its decoder forecasts step by step.
    if "autoregressive" in takes:
        arguments["autoregressive"] = autoregressive is not False
    # es_rnn smooths the data's own season.
    if "season_length" in takes:
        arguments["season_length"] = max(int(season or 1), 1)
    if history is not None and "history" in takes:
        arguments["history"] = int(history)
    if series_channels and "series_channels" in takes:
        arguments["series_channels"] = int(series_channels)
    return arguments


class ForecastTask(Task):
    """Direct multi-step forecasting of one or more columns of a series."""

    refits = True          # all_windows: a refit, ensembles of forecasts
    searches_data = True   # data_space, variant: window and transforms searched
    ensembles_mix_data = True  # members' forecasts averaged in the data's units

    kind = KIND
    head = "forecast"
    loss = "mse"
    rank_by = "test_rmse"
    metrics_shown = ("mae", "rmse", "mape", "smape", "mase")

    def __init__(self, prepared, repairs=(), levels=DEFAULT_LEVELS, transforms_reason=None,
                 settings=None, searchable=(), autoregressive=None, steps=None,
                 adjustments=(), combine="none", quantiles=(), distribution=None,
                 head_quantiles=None):
        self.prepared = p = prepared
        self.series = p.series
        self.name = p.series.name
        self.input_shape, self.outputs = p.input_shape, p.outputs
        self.train = Split(p.train.x, p.train.y)
        self.val = Split(p.val.x, p.val.y)
        self.test = Split(p.test.x, p.test.y)
        self.repairs = tuple(repairs)
        self.levels = tuple(levels)
        # Why the transforms are what they are, when chosen from the data.
        self.transforms_reason = transforms_reason
        # The settings windows were cut with, and which of them a search may
        # vary (those the user did not name): see data_space and variant.
        self.settings = dict(settings or {})
        self.searchable = tuple(searchable)
        # The linear autoregressive term under the network: on unless the
        # user said no (None: not named).
        self.autoregressive = autoregressive
        # A short series' network may forecast fewer steps at a time than
        # asked for (experiments.forecasting.short_series): the served model
        # rolls forward to ``steps``; ``adjustments`` say what was shrunk.
        self.steps = steps
        self.adjustments = tuple(adjustments)
        self.interval_note = None  # set by forecaster(): too few calibration forecasts
        # Combine the served forecast with the statistical baselines: a
        # combination.METHODS name, or "none".
        self.combine = combine
        self.combination_verdict = None  # set by forecaster()
        # A quantile network's levels (zoo.quantiles), trained by the pinball
        # loss, or those a distribution network (zoo.distributions; trained by
        # likelihood) serves; () for a point network trained by squared error.
        self.quantiles, self.distribution = tuple(quantiles), distribution
        # The quantiles a variant with a quantile or distribution head
        # forecasts (``tune --loss search``): the median and the intervals' ends.
        self.head_quantiles = tuple(self.quantiles if head_quantiles is None
                                    else head_quantiles)
        self.counts = distribution in COUNT_DISTRIBUTIONS  # whole-number intervals
        if self.distribution:
            from zoo.distributions import DistributionLoss

            scaling = {}
            if self.distribution in COUNT_DISTRIBUTIONS:  # the counts from scaled targets
                scaling = dict(zip(("center", "scale"),
                                   prepared.preprocessor.target_scaling(), strict=True))
            self.loss = DistributionLoss(self.distribution, **scaling)
        elif self.quantiles:
            from zoo.quantiles import QuantileLoss

            self.loss = QuantileLoss(self.quantiles)
        self._variants = {}
        self._source = None  # the task this one is a variant of

    def data_space(self) -> dict:
        """The data settings a search varies, as zoo search-space specs
        (``window`` and ``transforms``, the latter as comma-joined names,
        ``"none"`` for none), each defaulting to this task's. Only choices
        the training rows are long enough for are offered."""
        from zoo.space import Choice

        p = self.prepared
        values = self.series.frame[list(self.series.targets)].to_numpy(dtype=float)
        space = {}
        transforms = [tuple(p.transforms)]
        if "transforms" in self.searchable:
            transforms = transform_choices(p.transforms, bool((values > 0).all()), p.season)

        def fits(window, steps):
            # At least as many training windows as the window is long.
            lost = windows.rows_lost(steps, p.season)
            return p.n_train - lost - window - p.horizon + 1 >= max(window, 8)

        windows_ = [p.window]
        if "window" in self.searchable:
            windows_ = [w for w in window_choices(p.window, p.season)
                        if w == p.window or all(fits(w, t) for t in transforms)]
            space["window"] = Choice(tuple(windows_), default=p.window)
        if "transforms" in self.searchable:
            names = [",".join(t) or "none" for t in transforms
                     if t == tuple(p.transforms) or all(fits(w, t) for w in windows_)]
            space["transforms"] = Choice(tuple(names), default=",".join(p.transforms) or "none")
        if "loss" in self.searchable:
            space["loss"] = Choice(SEARCHED_LOSSES, default=self.loss_name)
        return {k: v for k, v in space.items() if len(v.values) > 1}

    @property
    def loss_name(self) -> str:
        """The head, as ``--loss`` names it."""
        return self.distribution or ("quantile" if self.quantiles else "mse")

    def variant(self, window=None, transforms=None, loss=None) -> ForecastTask:
        """This task with other windows or transforms, prepared from the same
        rows (transforms and scaler fitted again on the training rows only),
        or with another head (``loss``, a ``SEARCHED_LOSSES`` name); made
        once per setting and kept."""
        if isinstance(transforms, str):
            transforms = () if transforms == "none" else tuple(transforms.split(","))
        window = self.prepared.window if window is None else int(window)
        transforms = self.prepared.transforms if transforms is None else tuple(transforms)
        loss = self.loss_name if loss is None else loss
        key = (window, transforms, loss)
        if key == (self.prepared.window, tuple(self.prepared.transforms), self.loss_name):
            return self
        if key not in self._variants:
            chosen = {**self.settings, "window": window, "transforms": transforms,
                      "season": self.prepared.season}
            same_windows = key[:2] == (self.prepared.window, tuple(self.prepared.transforms))
            task = ForecastTask(
                self.prepared if same_windows else windows.prepare(self.series, **chosen),
                self.repairs, self.levels, SEARCHED, chosen, self.searchable,
                self.autoregressive, self.steps, self.adjustments, self.combine,
                quantiles=() if loss == "mse" else self.head_quantiles,
                distribution=loss if loss in DISTRIBUTIONS else None,
                head_quantiles=self.head_quantiles)
            task._source = self  # the same test rows: the same baselines
            self._variants[key] = task
        return self._variants[key]

    def validation_crps(self, raw) -> float:
        """The CRPS of the network's outputs ``raw`` on the validation
        windows, in units of the MASE scale: what trials of other heads are
        compared on (``tune --loss search``). A quantile or distribution
        network is scored by the pinball loss of its quantiles, as they
        are before calibration; a point network as the single value it
        forecasts (its CRPS is its absolute error): its conformal intervals
        are calibrated on these same windows, so cannot be scored on them."""
        p = self.prepared
        if getattr(self, "_val_truth", None) is None:
            self._val_truth = p.truth(p.val)
        out = self._in_units(raw, p.val)
        if not self.quantiles:  # the median alone
            return metrics.quantile_crps(self._val_truth, out[..., None], (0.5,),
                                         metrics.scale_for(p))
        return metrics.quantile_crps(self._val_truth, out, self.quantiles, metrics.scale_for(p))

    def validation_rmse(self, raw) -> float:
        """The RMSE, in the data's units, of the network's outputs ``raw`` on
        the validation windows: what trials of other windows and transforms
        are compared on."""
        p = self.prepared
        if getattr(self, "_val_truth", None) is None:
            self._val_truth = p.truth(p.val)
        pred = p.to_original(self.raw_point(raw), p.val.origins)
        return float(np.sqrt(np.mean((pred - self._val_truth) ** 2)))

    def builder_arguments(self, family=None):
        """What the task fixes for ``family`` rather than the search:
        ``season_length`` (the data's season) for the families that smooth
        it, and ``autoregressive``, on by default for every family that takes it.

        A linear autoregression on the window, started at its least-squares
        fit (``zoo.start_autoregressive``), is what a short series can
        teach; the network learns what it misses. Measured on
        airline one step ahead: a search without it picked networks that fit
        the 24 validation months best (RMSE 9.6) and the test months worst
        (18.2); with it, 13.5 (SARIMA 14.9).
        """
        arguments = forecaster_arguments(family, self.autoregressive, self.prepared.season)
        if self.distribution:
            arguments["distribution"] = self.distribution
        elif self.quantiles:
            arguments["quantiles"] = self.quantiles
        return arguments

    def raw_point(self, raw):
        """The point forecast among a network's raw outputs: a quantile
        network's median, a distribution network's location."""
        return raw[..., 0] if self.distribution else self.point(raw)

    def point(self, outputs):
        """The point forecast among quantile forecasts ``outputs`` (as
        ``forecasts`` gives them): their median; a point network's
        outputs are themselves."""
        return outputs[..., median_index(self.quantiles)] if self.quantiles else outputs

    def params(self):
        p = self.prepared
        return {"targets": ",".join(self.series.targets),
                "features": ",".join(self.series.features),
                "window": p.window, "horizon": p.horizon,
                "n_train": p.n_train, "n_val": p.n_val, "n_test": p.n_test,
                "transforms": ",".join(p.transforms) or "none",
                "season": p.season,
                "intervals": ",".join(map(str, self.levels)) or "none",
                # A search's own task, of a point network, is where heads were searched from.
                "loss_function": ("search" if "loss" in self.searchable and self._source is None
                                  else self.loss_name),
                "quantiles": ",".join(f"{q:g}" for q in self.quantiles) or "none"}

    def dataset(self):
        return tracking.dataset_of(self.series)

    def baselines(self):
        fitted = [(LABELS[name], f"test_{name}_") for name in self.statistical()[0]]
        return [("naive", "test_naive_"), ("seasonal naive", "test_seasonal_naive_"),
                *fitted]

    def statistical(self):
        """ETS and SARIMA forecasts for the test windows, fitted on the
        training rows (once per task): ``(forecasts, notes)``, see
        ``experiments.forecasting.statistical.forecasts``."""
        if self._source is not None:
            return self._source.statistical()
        if getattr(self, "_statistical", None) is None:
            p = self.prepared
            values = self.series.frame[list(self.series.targets)].to_numpy(dtype=float)
            self._statistical = statistical.forecasts(values, p.n_train, p.test.origins,
                                                      p.horizon, p.season)
        return self._statistical

    def baseline_notes(self) -> list[str]:
        """What each statistical baseline was, or why it was skipped."""
        return [f"{LABELS[name]}: {note}" for name, note in self.statistical()[1].items()]

    def forecast(self, model, part):
        """Forecasts for ``part`` in original units, ``(n, horizon, targets)``.

        ``model`` is a Keras model reading this task's windows, or an
        ensemble: a list of ``Member`` whose mean forecast this is (a
        member with a ``task`` of its own reads that variant's window and
        transforms: the same rows, so the same forecast origins). A
        quantile network's forecast is its median."""
        return self.point(self.forecasts(model, part))

    def forecast_and_spread(self, model, part):
        """``(forecast, spread)`` at ``part``'s origins from one run of the
        network: ``forecast``'s, and a quantile network's distance of each
        quantile from its median, ``(n, horizon, targets, quantiles)``, in
        original units (None for a point network)."""
        out = self.forecasts(model, part)
        pred = self.point(out)
        return pred, (out - pred[..., None] if self.quantiles else None)

    def forecasts(self, model, part):
        """As ``forecast``, with a quantile network's every quantile:
        ``(n, horizon, targets, quantiles)`` in the data's units (see
        ``experiments.forecasting.quantile_paths``)."""
        if isinstance(model, list):
            return combine([self._member_forecast(m, part) for m in model])
        if part is self.prepared.test:
            raw = self.predict_test(model)
        else:
            raw = model.predict(part.x, verbose=0, batch_size=1024)
        return self._in_units(raw, part)

    def _in_units(self, raw, part):
        """A network's outputs ``raw`` at ``part``'s origins in the data's
        units: ``(n, horizon, targets)``, with a last axis of quantiles for a
        quantile or distribution network."""
        if self.distribution:
            raw = distribution_quantiles(raw, self.distribution, self.quantiles,
                                         *self.prepared.preprocessor.target_scaling())
        if self.quantiles:
            return quantile_paths.to_original(
                lambda out, copies: self.prepared.to_original(out, np.tile(part.origins, copies)),
                raw, self.quantiles)
        return self.prepared.to_original(raw, part.origins)

    def calibrate(self, truth, pred, spread) -> dict:
        """Each level's interval calibration on out-of-sample forecasts
        ``pred`` of ``truth``: split-conformal half-widths, or for a
        quantile network the corrections of its quantile intervals placed
        around ``pred`` (conformalized quantile regression)."""
        if not self.quantiles:
            return conformal_widths(truth, pred, self.levels)
        return quantile_corrections(truth, {level: self.bounds(pred, spread, level)
                                            for level in self.levels})

    def bounds(self, pred, spread, level, widths=None):
        """The ``level``% interval around ``pred``: ``pred ± width``, or a
        quantile network's quantiles at its ends moved by ``widths``
        (both ``calibrate``'s, per step and target; None: unmoved)."""
        w = 0.0 if widths is None else np.asarray(widths[str(level)], float)[None]
        bounds = interval_bounds(pred, w, spread if self.quantiles else None,
                                 self.quantiles, level)
        return counts.whole_bounds(*bounds) if self.counts and self.quantiles else bounds

    def _member_forecast(self, member: Member, part):
        if member.task is None or member.task is self:
            return self.forecasts(member.network, part)
        name = next((n for n in ("train", "val", "test")
                     if part is getattr(self.prepared, n)), None)
        if name is None:
            raise ValueError("an ensemble member of another variant forecasts the "
                             "train, val or test part only")
        return member.task.forecasts(member.network, getattr(member.task.prepared, name))

    def evaluate(self, model):
        """Test metrics of ``model`` beside the baselines', its validation
        metrics, and the served forecast's test coverage. With ``--combine``,
        also the served combination's (``test_combined_*``)."""
        p = self.prepared
        pred, spread = self.forecast_and_spread(model, p.test)
        scores = {f"test_{k}": v for k, v in metrics.evaluate_forecasts(
            p, pred, p.test, self.statistical()[0]).items()}
        val_truth = p.truth(p.val)
        val_pred, val_spread = self.forecast_and_spread(model, p.val)
        val = metrics.forecast_metrics(val_truth, val_pred, metrics.scale_for(p))
        scores.update({f"val_{k}": v for k, v in val.items()})
        chosen = self.combination_of(model, val_pred)
        if chosen is not None:
            val_pred = chosen.combine({NETWORK: val_pred, **self._statistical_at(p.val)})
            pred = chosen.combine({NETWORK: pred, **self.statistical()[0]})
            served = metrics.forecast_metrics(p.truth(p.test), pred, metrics.scale_for(p))
            scores.update({f"test_combined_{k}": v for k, v in served.items()})
            labels = [prefix[len("test_"):-1] for _, prefix in self.baselines()]
            best = metrics.best_baseline(scores, labels, "test_")
            scores["test_combined_skill_vs_best_baseline"] = metrics.skill(
                served["rmse"], scores[f"test_{best}_rmse"])
            scores["combined_network_weight"] = float(chosen.weights.get(NETWORK, 0.0))
        # How often the test values fall inside the intervals calibrated on
        # the validation period (as forecaster() calibrates them), around
        # the forecast that is served.
        widths = self.calibrate(val_truth, val_pred, val_spread)
        truth, scale = p.truth(p.test), metrics.scale_for(p)
        bounds = nested({level: self.bounds(pred, spread, level, widths)
                         for level in self.levels})
        for level, (lower, upper) in bounds.items():
            scored = metrics.interval_scores(truth, lower, upper, level, scale)
            scores.update({f"test_{k}_{level}": v for k, v in scored.items()})
        if bounds:
            scores["test_scaled_crps"] = metrics.interval_crps(truth, pred, bounds, scale)
        if self.quantiles:  # the quantiles as the network gives them, uncalibrated
            scale = np.asarray(scale, dtype="float64")
            scores["test_scaled_pinball"] = float(np.mean(metrics.pinball(
                truth / scale, (pred[..., None] + spread) / scale[..., None],
                self.quantiles)))
        return scores

    def _statistical_at(self, part) -> dict:
        """The statistical baselines' forecasts at ``part``'s origins (fitted
        on the training rows only): ``{name: (n, horizon, targets)}``."""
        p = self.prepared
        if part is p.test:
            return self.statistical()[0]
        values = self.series.frame[list(self.series.targets)].to_numpy(dtype=float)
        return statistical.forecasts(values, p.n_train, part.origins, p.horizon,
                                     p.season)[0]

    def combination_of(self, model, val_pred=None):
        """With ``--combine``: the combination of ``model`` and the statistical
        baselines to serve, weighted on the validation forecasts (see
        ``experiments.forecasting.combination.choose``); else None."""
        if self.combine == "none":
            return None
        p = self.prepared
        statistical_val = self._statistical_at(p.val)
        if not statistical_val:
            return None
        if val_pred is None:
            val_pred = self.forecast(model, p.val)
        return combination.choose(p.truth(p.val), {NETWORK: val_pred, **statistical_val},
                                  self.combine)

    def forecaster(self, model, refit: bool = False) -> Forecaster:
        """What serves ``model``: preprocessing, time column, and split-
        conformal intervals from out-of-sample residuals per horizon step:
        the validation forecasts of ``model``, and when the served network
        is a refit (``refit``: ``model`` is the network trained on the
        training rows only), its test forecasts too, which it did not see
        either. The refit's own residuals there would be too small.
        ``interval_note`` says when they are too few for a level. With
        ``--combine``, the served forecast (and what the intervals are
        calibrated around) is the combination chosen on validation, whose
        verdict ``combination_verdict`` says."""
        p = self.prepared
        truth = p.truth(p.val)
        pred, spread = self.forecast_and_spread(model, p.val)
        chosen = self.combination_of(model, pred)
        if chosen is not None:
            pred = chosen.combine({NETWORK: pred, **self._statistical_at(p.val)})
        if refit and len(p.test):
            test, test_spread = self.forecast_and_spread(model, p.test)
            if chosen is not None:
                test = chosen.combine({NETWORK: test, **self.statistical()[0]})
            truth = np.concatenate([truth, p.truth(p.test)])
            pred = np.concatenate([pred, test])
            if spread is not None:
                spread = np.concatenate([spread, test_spread])
        widths = self.calibrate(truth, pred, spread)
        self.interval_note = calibration_note(len(truth), self.levels, p.horizon)
        self.combination_verdict = None if chosen is None else chosen.verdict
        index = self.series.frame.index
        time_col = index.name if isinstance(index, pd.DatetimeIndex) else None
        forms = self.statistical()[2]
        combined = None if chosen is None else {
            "weights": chosen.weights, "season": p.season,
            "forms": {m: forms[m] for m in chosen.weights if m in forms}}
        return Forecaster(p.preprocessor, time_col, widths, refit,
                          self.member_preprocessing(model), self.steps, combined,
                          self.quantiles, self.distribution)

    def member_preprocessing(self, model) -> tuple:
        """Each ensemble member's preprocessing, when some member reads
        another window or transforms than this task's; else ``()``."""
        if not (isinstance(model, list)
                and any(m.task not in (None, self) for m in model)):
            return ()
        return tuple((m.task or self).prepared.preprocessor for m in model)

    def all_windows(self):
        """Every window of the series, training through test: what a refit
        learns from (the scaler stays the one fitted on the training rows)."""
        p = self.prepared
        x = np.concatenate([p.train.x, p.val.x, p.test.x])
        y = np.concatenate([p.train.y, p.val.y, p.test.y])
        return Split(x, y)

    def log_served(self, model, calibrated_on=None):
        """The served pyfunc model (see ``experiments.serving``): raw history
        in, forecasts with intervals out."""
        import mlflow

        from experiments import serving  # MLflow's pyfunc: only when logging

        refit = calibrated_on is not None and calibrated_on is not model
        forecaster = self.forecaster(calibrated_on if refit else model, refit=refit)
        if self.interval_note:
            mlflow.set_tag("intervals_note", self.interval_note)
        if self.combination_verdict:
            mlflow.set_tag("combination", self.combination_verdict)
        if isinstance(model, list):  # the networks; their preprocessing is the forecaster's
            model = [m.network for m in model]
        return serving.log_forecast_model(model, forecaster, self.series,
                                         tracking.model_requirements())

    def log_artifacts(self, model, scores):
        import mlflow

        from experiments import plots

        p = self.prepared
        pred = self.forecast(model, p.test)
        values = self.series.frame[list(self.series.targets)].to_numpy()
        baseline = metrics.seasonal_naive(values, p.test.origins, p.horizon, p.season)
        title = f"{model.name} on {tracking.redact(self.name)}: test RMSE {scores['test_rmse']:.4g}"
        tracking.log_figure(plots.forecast_plot(p, pred, baseline, p.test, title),
                          "plots/forecast.png")
        names = ["naive", "seasonal_naive", *self.statistical()[0]]
        mlflow.set_tags({
            "beats_seasonal_naive": str(scores["test_skill_vs_seasonal_naive"] > 0),
            "best_baseline": metrics.best_baseline(scores, names, "test_"),
            "transforms_chosen": self.transforms_reason or "given",
            **{f"baseline_{name}": note[:5000]
               for name, note in self.statistical()[1].items()}})
        mlflow.log_text(self.test_forecasts(pred).to_csv(index=False), "test_forecasts.csv")

    def test_forecasts(self, pred) -> pd.DataFrame:
        """One row per test origin, step and target: the forecast and the
        actual value, in the data's units (the run's record of its test)."""
        p = self.prepared
        index = self.series.frame.index
        truth = p.truth(p.test)
        rows = []
        for i, origin in enumerate(p.test.origins):
            for h in range(p.horizon):
                for j, target in enumerate(self.series.targets):
                    rows.append({"origin": str(index[origin]), "step": h + 1,
                                 "target": target, "forecast": float(pred[i, h, j]),
                                 "actual": float(truth[i, h, j])})
        return pd.DataFrame(rows)

    def config(self):
        p = self.prepared
        return {"scaler": {"mean": p.preprocessor.mean, "std": p.preprocessor.std},
                "transforms": list(p.transforms), "season": p.season,
                # Everything that maps raw history to model inputs and back:
                # experiments.forecasting.preprocessing.Preprocessor.from_config(...)
                "preprocessing": p.preprocessor.to_config()}

    def fingerprint(self):
        return {**super().fingerprint(), "data_digest": self.dataset().digest}


