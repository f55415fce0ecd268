"""The served reader of a global model: a long table of many series'
history in, each series' dated forecast and interval bounds out.

Each series is forecast from its own last ``window`` values, scaled by
themselves (``experiments.forecasting.panel_windows``), so a series never
seen in training is forecast as well as one that was. The intervals are
split-conformal on the validation windows of every series, measured on
each window's own scale, so they too scale with the series. A quantile
network's (``--loss quantile``) intervals are its own quantiles, each moved
by a conformalized-quantile-regression correction from the same windows
(pooled over series in the same scaled units). A distribution network's
(``--loss normal`` or ``student_t``) are the same, from the quantiles of
the distribution it forecasts on each window's scale.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from experiments.data.panel import frame_panel
from experiments.forecasting.combination import NETWORK
from experiments.forecasting.ensembles import combine, members_of
from experiments.forecasting.forecaster import (
    check_samples,
    conformal_widths,
    interval_bounds,
    interval_indexes,
    nested,
    predict,
    quantile_corrections,
)
from experiments.forecasting.panel_covariates import Covariates
from experiments.forecasting.panel_windows import scaled_inputs
from zoo.quantile_levels import (
    column_name,
    distribution_quantiles,
    distribution_samples,
    median_index,
)

SEASONAL_NAIVE = "seasonal_naive"


def seasonal_naive(windows: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """The seasonal naive forecast ``(n, horizon)`` from windows ``(n, window)``
    (any units: it picks values, so it commutes with each window's scaling):
    step ``k`` repeats the value one or more whole seasons before it."""
    k = np.arange(1, horizon + 1)
    back = season * np.ceil(k / season).astype(int)
    return np.asarray(windows)[:, windows.shape[1] - 1 + k - back]


def scaled_widths(prepared, pred_val_scaled: np.ndarray, levels) -> dict:
    """Conformal half-widths per horizon step on the windows' own scale, from
    the validation windows of every series: ``{"80": [width per step]}``."""
    if not levels or not len(prepared.val):
        return {}
    truth = np.asarray(prepared.val.y, "float64")[..., None]
    widths = conformal_widths(truth, np.asarray(pred_val_scaled, "float64")[..., None],
                              levels)
    return {level: [w[0] for w in steps] for level, steps in widths.items()}


def scaled_corrections(prepared, pred_val_scaled, spread_val_scaled, quantiles,
                       levels) -> dict:
    """A quantile network's conformalized-quantile-regression corrections
    per horizon step (``quantile_corrections``) on the windows' own scale,
    from the validation windows of every series: ``{"80": [correction per
    step]}``, how far to move each interval's ends outward (inward when
    negative). ``spread_val_scaled``: each quantile's distance from the
    median ``(n, horizon, quantiles)``, placed around ``pred_val_scaled``."""
    if not levels or not len(prepared.val):
        return {}
    truth = np.asarray(prepared.val.y, "float64")[..., None]
    bands = {level: tuple((pred_val_scaled + spread_val_scaled[..., i])[..., None]
                          for i in interval_indexes(quantiles, level))
             for level in levels}
    corrections = quantile_corrections(truth, bands)
    return {level: [c[0] for c in steps] for level, steps in corrections.items()}


def network_quantiles(raw, distribution, quantiles) -> np.ndarray:
    """A network's outputs on windows' own scale as the quantiles it
    forecasts: a distribution network's parameters ``(..., parameters)``
    as its ``quantiles`` ``(..., quantiles)`` (a location and scale on a
    window's scale are its quantiles there); any other's as they are."""
    if distribution:
        return distribution_quantiles(raw, distribution, quantiles)
    return np.asarray(raw, "float64")


def split_quantiles(raw, quantiles):
    """A network's outputs ``(..., quantiles)`` as the median and each
    quantile's distance from it; a point network's as themselves and None."""
    raw = np.asarray(raw, "float64")
    if not quantiles:
        return raw, None
    median = raw[..., median_index(quantiles)]
    return median, raw - median[..., None]


@dataclasses.dataclass(frozen=True)
class PanelForecaster:
    """What a served global model needs to read a request and write its
    answer.

    Attributes:
        id_col, time_col, target: the columns of the training data.
        freq: the spacing of every series (a pandas offset alias).
        window, horizon: input steps and steps forecast at once.
        widths: ``{"80": [half-width per step]}`` on a window's scale; for
            a quantile network, the correction of its interval's ends
            (``scaled_corrections``).
        refit: whether the network was refit on all the data.
        covariates: ``Covariates.to_config()``, or empty without any. With
            future covariates, a request gives each series' future rows
            (the target empty) after its history.
        combination: the weights of the network and of the seasonal naive
            (``{"network": w, "seasonal_naive": w}``, chosen on validation),
            or empty for the network alone; ``season``: the seasonal naive's.
        quantiles: the quantiles served (``q10``... columns), of a quantile
            network or of a distribution network's ``distribution``.
    """

    id_col: str
    time_col: str
    target: str
    freq: str
    window: int
    horizon: int
    widths: dict = dataclasses.field(default_factory=dict)
    refit: bool = False
    covariates: dict = dataclasses.field(default_factory=dict)
    combination: dict = dataclasses.field(default_factory=dict)
    season: int = 1
    quantiles: tuple = ()
    distribution: str | None = None

    @property
    def encoder(self) -> Covariates | None:
        return Covariates.from_config(self.covariates) if self.covariates else None

    @property
    def levels(self) -> list[str]:
        return sorted(self.widths, key=float)

    @property
    def min_rows(self) -> int:
        return self.window

    @property
    def columns(self) -> list[str]:
        c = self.encoder
        extra = [*c.past, *c.future, *c.static] if c else []
        return [self.id_col, self.time_col, self.target, *extra]

    def output_columns(self) -> list[str]:
        bounds = [f"{side}_{level}" for level in self.levels for side in ("lower", "upper")]
        quantiles = [column_name(q) for q in self.quantiles]
        return [self.id_col, self.time_col, self.target, *bounds, *quantiles]

    def check_history(self, history):
        """The request as a ``Panel``.

        Raises:
            ValueError (``DataError``): naming the series and row of a
                duplicate (id, time) pair, a value that is missing or no
                number, a series spaced otherwise than the model's data, or
                a series shorter than the window.
        """
        c = self.encoder or Covariates()
        panel = frame_panel(history, id_col=self.id_col, time_col=self.time_col,
                            target=self.target, name="history", freq=self.freq,
                            past=c.past, future=c.future, static=c.static,
                            future_rows=bool(c.future))
        for key, (_, values) in panel.groups().items():
            known = int(np.isfinite(values).sum())
            if known < self.window:
                raise ValueError(f"history: series {key!r} has {known} rows; the "
                                 f"model reads the last {self.window} of each series")
        return panel

    def forecast(self, model, history, steps: int | None = None) -> pd.DataFrame:
        """Each series' ``steps`` (default: the horizon) values after the end
        of its history, with interval bounds, as a long table."""
        steps = self._checked_steps(steps)
        panel = self.check_history(history)
        if self.covariates:
            return self._with_covariates(model, panel, steps)
        groups = panel.groups()
        last = np.stack([values[-self.window:] for _, values in groups.values()])
        pred, spread, scale = self.rolled(model, last, steps)
        return self._table(groups, pred, scale, steps, spread)

    def _with_covariates(self, model, panel, steps: int) -> pd.DataFrame:
        """Each series forecast a horizon at a time from its window and the
        covariates of the window and the horizon: the future covariates
        from the request's future rows, the calendar from the dates, static
        values from the history."""
        encoder, h = self.encoder, self.horizon
        blocks = -(-steps // h)
        channels, windows, groups = [], [], {}
        for key, rows in panel.frame.groupby(self.id_col, sort=False):
            known = rows[rows[self.target].notna()]
            dates = pd.date_range(known[self.time_col].iloc[-1], periods=blocks * h + 1,
                                  freq=self.freq)[1:]
            future = rows[rows[self.target].isna()].set_index(self.time_col)
            self._check_future(key, future, dates[:steps], encoder)
            ahead = pd.DataFrame({self.time_col: dates, self.id_col: key})
            for col in (*encoder.past, *encoder.future):
                ahead[col] = future[col].reindex(dates).ffill().to_numpy() \
                    if col in encoder.future else np.nan
            for col in encoder.static:
                ahead[col] = known[col].iloc[0]
            span = pd.concat([known.tail(self.window), ahead], ignore_index=True)
            channels.append(encoder.rows(span, self.time_col))
            windows.append(known[self.target].to_numpy(dtype="float64")[-self.window:])
            groups[str(key)] = (pd.DatetimeIndex(known[self.time_col]), None)
        channels, window = np.stack(channels), np.stack(windows)
        _, _, scale = scaled_inputs(window)
        out, spreads = [], []
        for b in range(blocks):
            rows = channels[:, b * h:b * h + self.window + h]
            block, spread = self.direct(model, window, rows)
            out.append(block)
            spreads.append(spread)
            window = np.concatenate([window, block], axis=1)[:, -self.window:]
        spread = np.concatenate(spreads, axis=1)[:, :steps] if self.quantiles else None
        return self._table(groups, np.concatenate(out, axis=1)[:, :steps], scale, steps,
                           spread)

    def _check_future(self, key, future, dates, encoder) -> None:
        """A request's future rows hold every future covariate of every date
        forecast; the first missing one is named."""
        if not encoder.future:
            return
        have = future.index
        for date in dates:
            if date not in have:
                raise ValueError(
                    f"history: series {key!r} has no row for {date.date()} with its future "
                    f"covariates {list(encoder.future)}; give a row for each date forecast "
                    f"after the history, its {self.target} left empty")

    def rolled(self, model, last: np.ndarray, steps: int):
        """Forecasts ``(series, steps)`` from raw windows ``last``, a horizon
        at a time, each block's forecasts read as history by the next; a
        quantile network's quantiles' distances from them ``(series, steps,
        quantiles)`` (else None); and the scale of each series' own last
        window."""
        _, _, scale = scaled_inputs(last)
        window, blocks, spreads = np.asarray(last, "float64"), [], []
        while sum(b.shape[1] for b in blocks) < steps:
            block, spread = self.direct(model, window)
            blocks.append(block)
            spreads.append(spread)
            window = np.concatenate([window, block], axis=1)[:, -self.window:]
        spread = np.concatenate(spreads, axis=1)[:, :steps] if self.quantiles else None
        return np.concatenate(blocks, axis=1)[:, :steps], spread, scale

    def direct(self, model, windows: np.ndarray, channels=None):
        """One horizon ``(series, horizon)`` from raw windows (and with
        covariates, their channels over the window and the horizon): the
        mean of an ensemble's members, each mapped back to the data's units;
        and a quantile network's quantiles' distances from its median
        ``(series, horizon, quantiles)``, or None."""
        x, loc, scale = scaled_inputs(windows)
        if channels is not None:
            x = self.encoder.samples(x[..., 0], channels, self.window)
        # Each window's loc and scale against (series, horizon[, quantiles]).
        shape = (-1, 1, 1) if self.quantiles else (-1, 1)
        loc, scale = loc.reshape(shape), scale.reshape(shape)
        outs = [loc + scale * network_quantiles(predict(m, x), self.distribution,
                                                self.quantiles) for m in members_of(model)]
        network, spread = split_quantiles(combine(outs), self.quantiles)
        return self._combined(network, windows), spread

    def _combined(self, network, windows) -> np.ndarray:
        """The served forecast ``(series, horizon)`` from the network's
        ``network`` on raw ``windows``: combined with the seasonal naive
        where validation chose it, else the network's own."""
        if not self.combination:
            return network
        naive = seasonal_naive(np.asarray(windows, "float64"), self.season, self.horizon)
        return (self.combination.get(NETWORK, 0.0) * network
                + self.combination.get(SEASONAL_NAIVE, 0.0) * naive)

    def _checked_steps(self, steps) -> int:
        """``steps`` to forecast (default: the horizon), at least 1."""
        steps = self.horizon if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be >= 1; received {steps}")
        return steps

    def sample_paths(self, model, history, steps: int | None = None, samples: int = 100,
                     seed: int = 0) -> pd.DataFrame:
        """``samples`` simulated futures of each series, from a distribution
        network (``--loss normal`` or ``student_t``).

        Each path's block of ``horizon`` steps is drawn from the distribution
        the network forecasts on that path's last ``window`` values (scaled
        by themselves, as every forecast is), independently across steps,
        appended to the path, and the network run again on it: past the
        horizon the spread comes from simulation. Where the served forecast
        combines the network with the seasonal naive, each draw moves with
        the combined forecast of its path, as the served quantiles do. An
        ensemble's members take turns, path by path. The draws are the
        network's distribution as trained, without the served intervals'
        calibration.

        Returns a long table: the id, the time, ``sample`` (0 to
        ``samples - 1``) and the target.

        Raises:
            ValueError: a model of another head, ``samples`` out of range,
                or a model with covariates (whose future rows a path would
                need for every step it is rolled).
        """
        if not self.distribution:
            raise ValueError("samples need a distribution model (trained with --loss normal "
                             "or student_t); this one forecasts "
                             + ("quantiles" if self.quantiles else "a mean"))
        check_samples(samples)
        steps = self._checked_steps(steps)
        if self.covariates:
            raise ValueError("samples: a panel model with covariates serves its quantiles "
                             "(the q columns), not simulated futures")
        groups = self.check_history(history).groups()
        paths = np.repeat(np.stack([values[-self.window:] for _, values in groups.values()]),
                          samples, axis=0)  # series-major: the first series' paths first
        rng = np.random.default_rng(seed)
        networks = members_of(model)
        drawn = 0
        while drawn < steps:
            windows = paths[:, -self.window:]
            x, loc, scale = scaled_inputs(windows)
            block = np.empty((len(paths), self.horizon))
            for k, network in enumerate(networks):
                mine = slice(k, None, len(networks))
                raw = np.asarray(predict(network, x[mine]), "float64")
                centre = loc[mine, None] + scale[mine, None] * raw[..., 0]
                # Each draw moves with its path's served (combined) forecast.
                shift = self._combined(centre, windows[mine]) - centre
                block[mine] = shift + loc[mine, None] + scale[mine, None] * \
                    distribution_samples(raw, self.distribution, rng)
            paths = np.concatenate([paths, block], axis=1)
            drawn += self.horizon
        return self._sample_table(groups, paths[:, self.window:self.window + steps], samples)

    def _sample_table(self, groups, drawn, samples) -> pd.DataFrame:
        """``sample_paths``' long table from ``drawn`` ``(series * samples, steps)``."""
        steps = drawn.shape[1]
        ids, times = [], []
        for key, (index, _) in groups.items():
            ids.append(np.repeat(np.asarray([key], dtype=object), samples * steps))
            future = pd.date_range(index[-1], periods=steps + 1, freq=self.freq)[1:]
            times.append(np.tile(future.to_numpy(), samples))
        return pd.DataFrame({self.id_col: np.concatenate(ids),
                             self.time_col: np.concatenate(times),
                             "sample": np.tile(np.repeat(np.arange(samples), steps), len(groups)),
                             self.target: drawn.ravel()})

    def _table(self, groups, pred, scale, steps, spread=None) -> pd.DataFrame:
        ids, futures = [], []
        for key, (times, _) in groups.items():
            ids.append(np.repeat(np.asarray([key], dtype=object), steps))
            futures.append(pd.date_range(times[-1], periods=steps + 1,
                                         freq=self.freq)[1:].to_numpy())
        table = {self.id_col: np.concatenate(ids), self.time_col: np.concatenate(futures),
                 self.target: pred.ravel()}
        k = np.arange(steps)
        # Past the horizon, the widths of the block's step grow with the
        # square root of the blocks rolled (as a random walk's errors do).
        grow = np.sqrt(k // self.horizon + 1)
        if spread is not None:
            spread = spread * grow[None, :, None]
        bounds = nested({level: interval_bounds(
            pred, scale[:, None] * (np.asarray(self.widths[level], float)[k % self.horizon]
                                    * grow)[None, :], spread, self.quantiles, int(level))
            for level in self.levels})
        for level, (lower, upper) in bounds.items():
            table[f"lower_{level}"] = lower.ravel()
            table[f"upper_{level}"] = upper.ravel()
        for i, q in enumerate(self.quantiles):
            table[column_name(q)] = (pred + spread[..., i]).ravel()
        return pd.DataFrame(table)[self.output_columns()]

    # === Plain JSON (the served model's spec.json) ===
    def to_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> PanelForecaster:
        return cls(**{**config, "quantiles": tuple(config.get("quantiles", ()))})
