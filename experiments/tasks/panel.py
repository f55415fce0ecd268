"""The panel task: one network trained over many series (a global model).

The data is long, as neuralforecast takes it: ``--id-col``, ``--time-col``
and one ``--target`` (``experiments.data.panel``). Windows are cut within
each series, each scaled by itself, and split by date for the whole panel
(``experiments.forecasting.panel_windows``). A run is scored per series
against per-series baselines and averaged over series
(``experiments.forecasting.panel_scores``), and serves a model that takes
many series' history in one request
(``experiments.forecasting.panel_forecaster``).
"""

from __future__ import annotations

import numpy as np

from experiments import tracking
from experiments.config import SEARCHED_LOSSES
from experiments.data.panel import Panel, frame_panel, load_panel_csv, make_panel
from experiments.errors import ConfigError, DataError
from experiments.forecasting import combination, metrics, panel_scores
from experiments.forecasting.combination import NETWORK
from experiments.forecasting.ensembles import Member, members_of
from experiments.forecasting.forecaster import (
    DEFAULT_LEVELS,
    calibration_note,
    interval_bounds,
    nested,
)
from experiments.forecasting.panel_forecaster import (
    SEASONAL_NAIVE,
    PanelForecaster,
    network_quantiles,
    scaled_corrections,
    scaled_widths,
    seasonal_naive,
    split_quantiles,
)
from experiments.forecasting.panel_windows import prepare_panel
from experiments.tasks.base import Split, Task
from experiments.tasks.forecast import forecaster_arguments, quantile_settings
from zoo.quantile_levels import DISTRIBUTIONS

KIND = "panel"
TAKES = ("data", "dataset_options", "csv", "target", "id_col", "time_col", "time_format",
         "max_file_mb", "window", "horizon", "val_size", "test_size", "intervals",
         "autoregressive", "refit", "features", "future_features", "static", "calendar",
         "id_embedding", "combine", "loss", "quantiles")
# None: from the panel's season (see settings); a window at least this long.
DEFAULTS = {"window": None, "horizon": None, "val_size": None, "test_size": None}
MIN_DEFAULT_WINDOW = 8
DATASETS = {"panel": make_panel}
LABELS = {"naive": "naive", "seasonal_naive": "seasonal naive", "ets": "ETS"}
# The served forecast combines the network with the seasonal naive, weighted
# on the validation windows, unless --combine none (see PanelTask.combination_of).
DEFAULT_COMBINE = "inverse_mse"
# Series left out named one by one, up to this many.
MAX_NOTES = 3
# The id embedding is a one-hot channel per series on every input row: a
# search offers it up to this many series (200 series would make the
# generated panel's inputs about 350 MB); above, --id-embedding asks for it.
MAX_SEARCHED_ID_SERIES = 100
# The heads a global model trains: a point forecast (squared error),
# quantiles (pinball loss, zoo.quantiles), or a Normal or Student-t
# distribution (likelihood, zoo.distributions), each on every window's own
# scale; tune --loss search chooses among them by each trial's validation
# CRPS. The negative binomial is left out: it models counts, and a window
# standardised by itself holds none.
PANEL_LOSSES = SEARCHED_LOSSES
PANEL_SEARCH = "search"


def claims(cfg) -> bool:
    return bool(cfg.csv and cfg.id_col and not cfg.label_col)


def load_panel(cfg) -> Panel:
    if cfg.csv:
        targets = list(cfg.target or ())
        if len(targets) != 1:
            raise ConfigError(f"a panel forecasts one --target column; received "
                              f"{targets or 'none'}")
        return load_panel_csv(cfg.csv, id_col=cfg.id_col, time_col=cfg.time_col,
                              target=targets[0], time_format=cfg.time_format,
                              max_file_mb=cfg.max_file_mb, past=cfg.features,
                              future=cfg.future_features, static=cfg.static)
    try:
        return DATASETS[cfg.data](**cfg.dataset_options)
    except TypeError as err:
        raise ConfigError(f"dataset {cfg.data!r}: bad option ({err})") from None


def settings(cfg, panel: Panel) -> dict:
    """Horizon: one season (one step without a season); window: two seasons
    or two horizons, at least ``MIN_DEFAULT_WINDOW``; validation and test:
    one horizon of dates each. The user's settings first."""
    season = panel.season or 1
    horizon = cfg.horizon or panel.defaults.get("horizon") or season
    window = cfg.window or panel.defaults.get("window") or max(
        2 * max(season, horizon), MIN_DEFAULT_WINDOW)
    return {"window": window, "horizon": horizon,
            "val_size": cfg.val_size if cfg.val_size is not None else horizon,
            "test_size": cfg.test_size if cfg.test_size is not None else horizon}


def make_tasks(cfg, panel: Panel | None = None) -> list[PanelTask]:
    """The panel task of ``panel``, or of the data ``cfg`` names."""
    panel = load_panel(cfg) if panel is None else panel
    chosen = settings(cfg, panel)
    levels = cfg.intervals if cfg.intervals is not None else DEFAULT_LEVELS
    quantiles, levels = panel_quantiles(cfg, levels)
    chosen.update(calendar=tuple(cfg.calendar), id_embedding=bool(cfg.id_embedding))
    # What a search may vary: the window unless given, the id embedding
    # unless asked for.
    searchable = tuple(k for k in ("window", "id_embedding") if not getattr(cfg, k))
    searched = cfg.loss == PANEL_SEARCH  # a point network first; each trial its own head
    searchable += ("loss",) if searched else ()
    distribution = cfg.loss if cfg.loss in DISTRIBUTIONS else None
    return [PanelTask(prepare_panel(panel, **chosen), levels, cfg.autoregressive,
                      cfg.combine or DEFAULT_COMBINE, settings=chosen, searchable=searchable,
                      quantiles=() if searched else quantiles, head_quantiles=quantiles,
                      distribution=distribution)]


def panel_quantiles(cfg, levels) -> tuple[tuple, tuple]:
    """``(quantiles, levels)`` of a quantile or distribution global model
    (as ``quantile_settings``; with ``--loss search``, those of its
    quantile and distribution trials), ``()`` for a point one.

    Raises:
        ConfigError: a ``--loss`` other than ``PANEL_LOSSES`` or search,
            naming them.
    """
    if cfg.loss not in (None, *PANEL_LOSSES, PANEL_SEARCH):
        raise ConfigError(f"a panel model trains with --loss {', '.join(PANEL_LOSSES)}, "
                          f"or tune chooses among them with --loss {PANEL_SEARCH}; "
                          f"received --loss {cfg.loss} (a count distribution is for one "
                          f"series at a time: a panel's windows are each standardised, so "
                          f"hold no counts)")
    return quantile_settings(cfg, levels)


def panel_from_frame(df, model_settings: dict) -> Panel:
    """A user's long DataFrame as a panel, with a ``ForecastModel``'s columns."""
    targets = model_settings["target"]
    if len(targets) != 1:
        raise ConfigError(f"a panel forecasts one target column; received {targets}")
    return frame_panel(df, id_col=model_settings["id_col"],
                       time_col=model_settings.get("time_col"), target=targets[0],
                       time_format=model_settings.get("time_format"), name="data",
                       past=model_settings.get("features", ()),
                       future=model_settings.get("future_features", ()),
                       static=model_settings.get("static", ()))


def quantiles_in_units(part, point, spread) -> np.ndarray:
    """Quantile forecasts ``(n, horizon, quantiles)`` in the data's units:
    each quantile's distance from the median ``spread`` placed around
    ``point``, both on each window's scale."""
    return part.to_original(point)[..., None] + part.scale[:, None, None] * spread


def outputs_of(model, x, distribution=None, quantiles=()) -> np.ndarray:
    """The network's outputs on windows ``x`` (on each window's scale), a
    distribution network's as its ``quantiles`` (``network_quantiles``); for
    an ensemble (networks, or ``Member``s of a search), the mean of its
    members': they read the same windows, so this is their mean forecast."""
    return np.mean([network_quantiles(network.predict(x, verbose=0, batch_size=256),
                                      distribution, quantiles)
                    for network in networks_of(model)], axis=0)


def networks_of(model) -> list:
    """The Keras networks of ``model``: one, a list, or a search's ``Member``s."""
    return [m.network if isinstance(m, Member) else m for m in members_of(model)]


class PanelTask(Task):
    """Direct multi-step forecasting of every series of a panel by one
    network."""

    refits = True  # all_windows: a refit on every window
    # data_space, variant: the window and the id embedding searched; an
    # ensemble's members read the same windows (one served reader).
    searches_data = True
    ensembles_mix_data = False
    kind = KIND
    head = "forecast"
    loss = "mse"
    rank_by = "test_mase"
    metrics_shown = panel_scores.SCORED

    def __init__(self, prepared, levels=DEFAULT_LEVELS, autoregressive=None,
                 combine=DEFAULT_COMBINE, settings=None, searchable=(), quantiles=(),
                 head_quantiles=None, distribution=None):
        self.prepared = p = prepared
        # prepare_panel's arguments, and those a search may vary.
        self.settings = dict(settings or {"window": p.window, "horizon": p.horizon,
                                          "val_size": p.horizon, "test_size": p.horizon})
        self.searchable = tuple(searchable)
        self._variants = {}
        self._source = None  # the task this one is a variant of
        self._series_scale = None
        self.panel = p.panel
        self.name = p.panel.name
        self.input_shape, self.outputs = p.input_shape, p.outputs
        # Drawn by index: a batch is assembled when it is trained on.
        self.train = p.train
        self.val = Split(p.val.x, p.val.y)
        self.test = Split(p.test.x, p.test.y)
        self.levels = tuple(levels)
        self.autoregressive = autoregressive
        # A quantile network's levels (zoo.quantiles), trained by the pinball
        # loss, or those a distribution network (zoo.distributions, trained by
        # likelihood) serves; the median is the point forecast.
        self.quantiles, self.distribution = tuple(quantiles), distribution
        # The quantiles of a variant with a quantile or distribution head
        # (tune --loss search).
        self.head_quantiles = tuple(self.quantiles if head_quantiles is None
                                    else head_quantiles)
        if self.distribution:
            from zoo.distributions import DistributionLoss

            self.loss = DistributionLoss(self.distribution)
        elif self.quantiles:
            from zoo.quantiles import QuantileLoss

            self.loss = QuantileLoss(self.quantiles)
        # Series left out (too short), said in the run's notes: each by name,
        # or past a few, counted (left_out.txt in the run names every one).
        self.adjustments = p.left_out if len(p.left_out) <= MAX_NOTES else (
            f"{len(p.left_out)} series have fewer than window {p.window} + horizon "
            f"{p.horizon} rows before the validation period ({p.val_start.date()}); "
            f"left out of training (left_out.txt in the run names them): "
            + ", ".join(note.split("'")[1] for note in p.left_out[:MAX_NOTES]) + ", ...",)
        self._baselines = None
        # How the served forecast combines the network with the seasonal
        # naive (a combination.METHODS name, or "none"), and what it chose.
        self.combine = combine
        self.combination_verdict = None

    def data_space(self) -> dict:
        """The data settings a search varies, as zoo search-space specs: the
        window (one to three seasons) where every series kept by this task's
        is kept with it, so trials are scored on the same validation series;
        and whether the series id is an input (``--id-embedding``), for up
        to ``MAX_SEARCHED_ID_SERIES`` series."""
        from experiments.tasks.forecast import window_choices
        from zoo.space import Choice

        space = {}
        if "window" in self.searchable:
            kept = [w for w in window_choices(self.prepared.window, self.panel.season or 1)
                    if self._keeps_every_series(w)]
            space["window"] = Choice(tuple(kept), default=self.prepared.window)
        if "id_embedding" in self.searchable and len(self.prepared.ids) <= \
                MAX_SEARCHED_ID_SERIES:
            space["id_embedding"] = Choice((False, True), default=False)
        if "loss" in self.searchable:
            space["loss"] = Choice(PANEL_LOSSES, default=self.loss_name)
        return {k: v for k, v in space.items() if len(v.values) > 1}

    @property
    def loss_name(self) -> str:
        """The head, as ``--loss`` names it."""
        return self.distribution or ("quantile" if self.quantiles else "mse")

    def _keeps_every_series(self, window) -> bool:
        try:
            other = self.variant(window=window)
        except DataError:
            return False
        return other.prepared.ids == self.prepared.ids and len(other.train) > 0

    def variant(self, window=None, id_embedding=None, loss=None) -> PanelTask:
        """This task with another window or id embedding, prepared from the
        same panel, or with another head (``loss``, one of ``PANEL_LOSSES``);
        made once per setting and kept."""
        chosen = dict(self.settings)
        if window is not None:
            chosen["window"] = int(window)
        if id_embedding is not None:
            chosen["id_embedding"] = bool(id_embedding)
        loss = self.loss_name if loss is None else loss
        key = (chosen["window"], bool(chosen.get("id_embedding")), loss)
        if key == (self.settings["window"], bool(self.settings.get("id_embedding")),
                   self.loss_name):
            return self
        if key not in self._variants:
            same_windows = key[:2] == (self.settings["window"],
                                       bool(self.settings.get("id_embedding")))
            task = PanelTask(self.prepared if same_windows else prepare_panel(
                                 self.panel, **chosen), self.levels,
                             self.autoregressive, self.combine, chosen, self.searchable,
                             () if loss == "mse" else self.head_quantiles,
                             self.head_quantiles,
                             loss if loss in DISTRIBUTIONS else None)
            task._source = self  # the same series and test dates: the same baselines
            self._variants[key] = task
        return self._variants[key]

    def validation_rmse(self, raw) -> float:
        """The RMSE of the network's outputs ``raw`` on the validation
        windows, each series' errors divided by its in-sample seasonal-naive
        error (the MASE scale; M5's RMSSE): every series weighs the same, and
        trials with other windows compare on the same numbers."""
        truth, scale = self._validation_truth()
        point = self.point(self.quantile_outputs(raw))
        errors = (self.prepared.val.to_original(point) - truth) / scale[:, None]
        return float(np.sqrt(np.mean(errors ** 2)))

    def _validation_truth(self):
        """The validation windows' actual values and each window's series'
        MASE scale (on its rows before), computed once."""
        if self._series_scale is None:
            p = self.prepared
            scale = panel_scores.series_scales(p, p.val)
            self._series_scale = (p.truth(p.val), np.where(scale > 0, scale, 1.0))
        return self._series_scale

    def validation_crps(self, raw) -> float:
        """The CRPS of the network's outputs ``raw`` on the validation
        windows, each series' divided by its MASE scale: what trials of
        other heads are compared on (``tune --loss search``). A quantile
        network is scored by the pinball loss of its quantiles before
        calibration (a distribution network by the same quantiles of its
        distribution); a point network as its single value (its CRPS is its
        absolute error), as for one series (``ForecastTask.validation_crps``)."""
        truth, scale = self._validation_truth()
        median, spread = split_quantiles(self.quantile_outputs(raw), self.quantiles)
        if spread is None:  # the median alone
            spread, levels = np.zeros(median.shape + (1,)), (0.5,)
        else:
            levels = self.quantiles
        return metrics.quantile_crps(
            truth, quantiles_in_units(self.prepared.val, median, spread), levels,
            scale[:, None])

    def test_size_text(self) -> str:
        test = self.prepared.test
        return f"{len(set(test.series.tolist()))} series, {len(test)} windows"

    def builder_arguments(self, family=None):
        """The linear autoregression on the (scaled) window, on unless the
        user said no, and the season for the families that smooth it; with
        covariates, es_rnn smooths the window (not the horizon's rows after
        it), each series with its own coefficients when static inputs (or
        ``--id-embedding``) describe it."""
        covariates = self.prepared.covariates
        if covariates is None:
            arguments = forecaster_arguments(family, self.autoregressive, self.panel.season)
        else:
            arguments = forecaster_arguments(family, self.autoregressive, self.panel.season,
                                             history=self.prepared.window,
                                             series_channels=covariates.static_channels)
        if self.distribution:
            return {**arguments, "distribution": self.distribution}
        return {**arguments, "quantiles": self.quantiles} if self.quantiles else arguments

    def quantile_outputs(self, raw) -> np.ndarray:
        """A network's raw outputs as the forecasts they stand for: a
        distribution network's parameters as its quantiles
        (``network_quantiles``); any other's as they are."""
        return network_quantiles(raw, self.distribution, self.quantiles)

    def point(self, outputs) -> np.ndarray:
        """The point forecast among a network's outputs (a distribution
        network's as ``quantile_outputs``): a quantile network's median; a
        point network's outputs are themselves."""
        return split_quantiles(outputs, self.quantiles)[0]

    def all_windows(self):
        p = self.prepared
        return p.train.concat(p.val, p.test)

    def params(self):
        p = self.prepared
        return {"targets": self.panel.target, "id_col": self.panel.id_col,
                "window": p.window, "horizon": p.horizon, "freq": self.panel.freq,
                "season": self.panel.season, "n_series": len(p.ids),
                "n_left_out": len(p.left_out), "val_start": str(p.val_start.date()),
                "test_start": str(p.test_start.date()), "scaling": "per window",
                "id_embedding": bool(p.covariates and p.covariates.series_id),
                "n_train_windows": len(p.train),
                "intervals": ",".join(map(str, self.levels)) or "none",
                # A search's own task, of a point network, is where heads were searched from.
                "loss_function": ("search" if "loss" in self.searchable and self._source is None
                                  else self.loss_name),
                "quantiles": ",".join(f"{q:g}" for q in self.quantiles) or "none"}

    def dataset(self):
        return tracking.dataset_of(self.panel, index=False)

    def baselines(self):
        names = self.baseline_forecasts()[0]
        return [(LABELS[n], f"test_{n}_") for n in names]

    def baseline_forecasts(self):
        """The per-series baselines' test forecasts and notes (once)."""
        if self._source is not None:
            return self._source.baseline_forecasts()
        if self._baselines is None:
            self._baselines = panel_scores.baseline_forecasts(self.prepared,
                                                              self.prepared.test)
        return self._baselines

    def baseline_notes(self):
        return [f"{LABELS[n]}: {note}" for n, note in self.baseline_forecasts()[1].items()]

    def predict_test(self, model) -> np.ndarray:
        cached = getattr(self, "_test_outputs", None)
        if cached is None or cached[0] is not model:
            self._test_outputs = (model, outputs_of(model, self.test.x, self.distribution,
                                                    self.quantiles))
        return self._test_outputs[1]

    def network_outputs(self, model, part) -> np.ndarray:
        """The network's point forecasts of ``part``, on each window's scale."""
        return self.point(self.network_raw(model, part))

    def network_raw(self, model, part) -> np.ndarray:
        """The network's outputs on ``part``, on each window's scale: a
        quantile or distribution network's quantiles ``(n, horizon,
        quantiles)``."""
        if part is self.prepared.test:
            return np.asarray(self.predict_test(model), "float64")
        return outputs_of(model, part.x, self.distribution, self.quantiles)

    def spread(self, model, part):
        """A quantile network's quantiles' distances from its median on
        ``part`` ``(n, horizon, quantiles)``, or None."""
        return split_quantiles(self.network_raw(model, part), self.quantiles)[1]

    def interval_widths(self, model, chosen) -> dict:
        """``{"80": [per step]}`` on a window's scale, from the validation
        windows of every series: a point network's conformal half-widths,
        a quantile network's corrections of its quantiles (CQR)."""
        p = self.prepared
        val = self.served_outputs(model, p.val, chosen)
        if not self.quantiles:
            return scaled_widths(p, val, self.levels)
        return scaled_corrections(p, val, self.spread(model, p.val), self.quantiles,
                                  self.levels)

    def naive_outputs(self, part) -> np.ndarray:
        """The seasonal naive's forecasts of ``part``, on each window's scale."""
        p = self.prepared
        windows = part.x[..., 0] if p.covariates is None else part.x[:, :p.window, 0]
        return seasonal_naive(np.asarray(windows, "float64"), self.season, p.horizon)

    @property
    def season(self) -> int:
        return int(self.panel.season or 1)

    def combination_of(self, model):
        """The combination of the network and the seasonal naive to serve,
        weighted on the validation windows of every series, each on its own
        scale (``combination.choose``: never one worse there than its best
        member); None with ``--combine none`` or a window shorter than a
        season."""
        p = self.prepared
        if self.combine == "none" or self.season < 2 or p.window < self.season:
            return None
        members = {NETWORK: self.network_outputs(model, p.val)[..., None],
                   SEASONAL_NAIVE: self.naive_outputs(p.val)[..., None]}
        return combination.choose(p.val.y[..., None], members, self.combine)

    def served_outputs(self, model, part, chosen) -> np.ndarray:
        network = self.network_outputs(model, part)
        if chosen is None:
            return network
        return chosen.combine({NETWORK: network, SEASONAL_NAIVE: self.naive_outputs(part)})

    def forecast(self, model, part) -> np.ndarray:
        """The served forecasts of ``part`` (the network, combined with the
        seasonal naive where validation chose it) in the data's units."""
        return part.to_original(self.served_outputs(model, part, self.combination_of(model)))

    def per_series(self, model):
        """The test table, one row per series (see ``panel_scores.per_series``)."""
        p = self.prepared
        return panel_scores.per_series(p, p.test, self.forecast(model, p.test),
                                       self.baseline_forecasts()[0])

    def evaluate(self, model):
        """Means over series of the model's and the baselines' test scores,
        the shares of series it beats them on, and its intervals' coverage."""
        p = self.prepared
        if not len(p.test):
            raise ConfigError(f"{self.name}: no series has a full test horizon after "
                              f"{p.test_start.date()}")
        table = self.per_series(model)
        scores = {f"test_{k}": v for k, v in panel_scores.aggregate(
            table, self.baseline_forecasts()[0]).items()}
        # Skill on the mean MASE over series (scale-free, unlike an RMSE
        # pooled over series of different scales).
        names = [prefix[len("test_"):-1] for _, prefix in self.baselines()]
        best = min(names, key=lambda n: scores.get(f"test_{n}_mase", np.inf))
        for key, against in (("seasonal_naive", "seasonal_naive"), ("best_baseline", best)):
            scores[f"test_skill_vs_{key}"] = 1.0 - scores["test_mase"] / scores[
                f"test_{against}_mase"]
        chosen = self.combination_of(model)
        val, test = (self.served_outputs(model, part, chosen) for part in (p.val, p.test))
        # The intervals as served: each window's widths on its own scale;
        # widths and MSIS per series' MASE scale.
        truth, scale = p.truth(p.test), panel_scores.series_scales(p, p.test)
        spread = self.spread(model, p.test)
        bounds = nested({int(level): tuple(p.test.to_original(b) for b in interval_bounds(
            test, np.asarray(w, dtype="float64")[None, :], spread, self.quantiles, int(level)))
            for level, w in self.interval_widths(model, chosen).items()})
        for level, (lower, upper) in bounds.items():
            scored = metrics.interval_scores(truth, lower, upper, level, scale[:, None])
            scores.update({f"test_{k}_{level}": v for k, v in scored.items()})
        if bounds:
            scores["test_scaled_crps"] = metrics.interval_crps(
                truth, p.test.to_original(test), bounds, scale[:, None])
        if spread is not None:  # the quantiles as the network gives them, uncalibrated
            quantiles = quantiles_in_units(p.test, test, spread)
            scores["test_scaled_pinball"] = float(np.mean(metrics.pinball(
                truth / scale[:, None], quantiles / scale[:, None, None], self.quantiles)))
        scores["val_loss_scaled"] = float(np.mean((np.asarray(val) - p.val.y) ** 2))
        if chosen is not None:  # the network alone, for comparison
            alone = panel_scores.per_series(p, p.test, p.test.to_original(
                self.network_outputs(model, p.test)), self.baseline_forecasts()[0])
            scores["test_network_mase"] = float(alone["mase"].mean())
            scores["combined_network_weight"] = float(chosen.weights.get(NETWORK, 0.0))
        return scores

    def log_artifacts(self, model, scores):
        import mlflow

        from experiments import plots

        table = self.per_series(model)
        mlflow.log_text(table.to_csv(index=False), "per_series.csv")
        if self.prepared.left_out:
            mlflow.log_text("\n".join(self.prepared.left_out), "left_out.txt")
        mlflow.set_tags({f"baseline_{n}": note[:5000]
                         for n, note in self.baseline_forecasts()[1].items()})
        p = self.prepared
        names = sorted({network.name for network in networks_of(model)})
        title = f"{', '.join(names)} on {tracking.redact(self.name)}"
        tracking.log_figure(plots.panel_plot(p, table, self.forecast(model, p.test), title),
                            "plots/best_median_worst.png")

    def forecaster(self, model, refit: bool = False) -> PanelForecaster:
        """What serves ``model``: the panel's columns and split-conformal
        widths from the validation windows of ``model`` (the network that
        never saw them)."""
        p = self.prepared
        chosen = self.combination_of(model)
        widths = self.interval_widths(model, chosen)
        self.interval_note = calibration_note(len(p.val), self.levels, p.horizon)
        # combination.choose's words are about one series; here it is the panel.
        self.combination_verdict = None if chosen is None else chosen.verdict.replace(
            "this series", "this panel")
        covariates = p.covariates.to_config() if p.covariates is not None else {}
        return PanelForecaster(self.panel.id_col, self.panel.time_col, self.panel.target,
                               self.panel.freq, p.window, p.horizon, widths, refit,
                               covariates, dict(chosen.weights) if chosen else {},
                               self.season, self.quantiles, self.distribution)

    def history(self, rows: int | None = None):
        """The last ``rows`` (default: the window) of every series that has
        that many (those left out of training too), laid out as the user's
        long table: what the served model continues."""
        frame, key = self.panel.frame, self.panel.id_col
        rows = rows or self.prepared.window
        long_enough = frame.groupby(key)[key].transform("size") >= rows
        tail = frame[long_enough].groupby(key, sort=False).tail(rows).reset_index(drop=True)
        tail[self.panel.time_col] = tail[self.panel.time_col].dt.strftime("%Y-%m-%dT%H:%M:%S")
        return tail

    def log_served(self, model, calibrated_on=None):
        import mlflow

        from experiments import serving

        refit = calibrated_on is not None and calibrated_on is not model
        forecaster = self.forecaster(calibrated_on if refit else model, refit=refit)
        if self.interval_note:
            mlflow.set_tag("intervals_note", self.interval_note)
        if self.combination_verdict:
            mlflow.set_tag("combination", self.combination_verdict)
        networks = networks_of(model)
        model = networks[0] if len(networks) == 1 else networks
        return serving.log_served(KIND, model, forecaster, self.example(),
                                  tracking.model_requirements(), self.history())

    def example(self):
        """Real input for the served model's signature: three series' last
        rows; with future covariates, their last horizon given as the
        future rows (the target left empty)."""
        p = self.prepared
        rows = self.history(p.window + (p.horizon if self.panel.future else 0))
        rows = rows[rows[self.panel.id_col].isin(p.ids[:3])].copy()
        if self.panel.future:
            future = rows.groupby(self.panel.id_col).cumcount(ascending=False) < p.horizon
            rows[self.panel.target] = rows[self.panel.target].where(~future)
        return rows.reset_index(drop=True)

    def config(self):
        return {"scaling": "each window standardised by its own mean and standard "
                           "deviation (experiments.forecasting.panel_windows)"}

    def fingerprint(self):
        return {**super().fingerprint(), "data_digest": self.dataset().digest}
