"""Forecasts past the end of the data, from raw history, with intervals.

A ``Forecaster`` is what a served model needs besides the Keras network:
the preprocessing (``experiments.forecasting.preprocessing.Preprocessor``), the name of
the time column, and the width of each prediction interval per horizon
step (split conformal, from the validation residuals). ``forecast`` takes a
DataFrame of raw history, laid out as the user's CSV, and returns the next
steps in the data's own units::

    forecaster.forecast(model, history)            # the next `horizon` steps
    forecaster.forecast(model, history, steps=36)  # rolls forward on its own forecasts

It needs NumPy, pandas and a callable Keras model; no MLflow, no training code.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd

from experiments.forecasting import combination, counts, quantile_paths
from experiments.forecasting.ensembles import combine, members_of
from experiments.forecasting.preprocessing import Preprocessor
from zoo.quantile_levels import (
    COUNT_DISTRIBUTIONS,
    column_name,
    distribution_quantiles,
    distribution_samples,
    interval_ends,
    median_index,
)

DEFAULT_LEVELS = (80, 95)
# The most sample paths one call draws per series (params={"samples": N}).
MAX_SAMPLES = 10_000
# The column that names each series when one history holds several.
ID_COL = "unique_id"


def predict(model, x) -> np.ndarray:
    """``model`` on the batch ``x`` through Keras' compiled predict function:
    about 2 ms for a small forecaster, where an eager call runs each layer
    op by op (over 100 ms on a 2-core CPU) and ``predict`` adds its
    progress-bar and dataset machinery."""
    return np.asarray(model.predict_on_batch(x))


def check_samples(samples) -> None:
    """``samples`` (simulated futures per series) is an int from 1 to
    ``MAX_SAMPLES``, or a ``ValueError`` says so."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) \
            or not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be an int from 1 to {MAX_SAMPLES}; received "
                         f"{samples!r}")


def conformal_widths(truth, pred, levels) -> dict[str, list]:
    """Split-conformal half-widths per horizon step and target: the
    conformal quantiles (``conformal_quantiles``) of the absolute errors."""
    residuals = np.abs(np.asarray(truth, float) - np.asarray(pred, float))
    return conformal_quantiles(residuals, levels)


def quantile_corrections(truth, bands: dict) -> dict[str, list]:
    """Conformalized quantile regression (Romano et al., 2019): for each
    level, how far to move a quantile model's interval outward (inward,
    when negative) for it to cover as stated.

    The score of a calibration forecast is ``max(lower - y, y - upper)``,
    how far the truth falls outside its interval (negative inside); the
    correction is those scores' conformal quantile per step
    (``conformal_quantiles``), and the interval ``[lower - c, upper + c]``.

    Args:
        truth: ``(n, horizon, targets)`` in original units.
        bands: ``{level: (lower, upper)}``, each ``(n, horizon, targets)``.
    """
    truth = np.asarray(truth, float)
    out = {}
    for level, (lower, upper) in bands.items():
        scores = np.maximum(np.asarray(lower, float) - truth, truth - np.asarray(upper, float))
        out.update(conformal_quantiles(scores, [level]))
    return out


def conformal_quantiles(scores, levels) -> dict[str, list]:
    """Split-conformal quantiles of nonconformity ``scores`` per horizon
    step and target.

    For each level ``L`` it is the ``ceil((n + 1) L / 100)``-th
    smallest score of the ``n`` calibration forecasts at that step: for
    absolute errors, a half-width that covers a new forecast with
    probability at least ``L``% when the errors are exchangeable.

    When ``n`` is too small for a level (a short series has one or two
    validation origins), the residuals of every step are pooled instead:
    each divided by the square root of its step (forecast errors grow about
    so with the horizon, as a random walk's do), the conformal quantile
    taken over all ``n x horizon`` of them, and scaled back per step. Where
    even those are too few, the largest pooled one is used
    (``calibration_note`` says which).

    Args:
        scores: ``(n, horizon, targets)``, e.g. absolute errors in original units.
        levels: coverage levels in percent, e.g. ``(80, 95)``.

    Returns:
        ``{"80": [[quantile per target] per step], ...}``.
    """
    residuals = np.asarray(scores, float)
    errors = np.sort(residuals, axis=0)
    n, horizon = errors.shape[:2]
    if n == 0:
        raise ValueError("conformal intervals need at least one calibration forecast")
    scale = np.sqrt(np.arange(1, horizon + 1, dtype=float))[None, :, None]
    pooled = np.sort((residuals / scale).reshape(n * horizon, -1), axis=0)
    out = {}
    for level in levels:
        rank = math.ceil((n + 1) * level / 100)
        if rank <= n:
            out[str(level)] = errors[rank - 1].tolist()
            continue
        rank = min(n * horizon, math.ceil((n * horizon + 1) * level / 100))
        out[str(level)] = (pooled[rank - 1][None, :] * scale[0]).tolist()
    return out


def calibration_note(n: int, levels, horizon: int = 1) -> str | None:
    """What to tell the user when ``n`` calibration forecasts are too few
    for a level at each step: its widths then pool the ``n x horizon``
    errors of every step (see ``conformal_widths``), and where even those
    are too few, are the largest error seen, which covers less often than
    the level says."""
    short = [level for level in levels if math.ceil((n + 1) * level / 100) > n]
    if not short:
        return None
    need = max(math.ceil(level / (100 - level)) for level in short)
    note = (f"intervals: {n} out-of-sample forecast(s) calibrate them, too few for "
            f"{', '.join(f'{level}%' for level in short)} at each step (that needs {need})")
    pooled = n * horizon
    still = [level for level in short if math.ceil((pooled + 1) * level / 100) > pooled]
    if horizon > 1:
        note += (f"; those widths pool the errors of all {horizon} steps ({pooled}), "
                 f"scaled by the square root of the step")
    if still:
        note += (f"; for {', '.join(f'{level}%' for level in still)} the bounds are the "
                 f"largest errors seen and likely cover less than stated")
    return note


def interval_indexes(quantiles, level) -> tuple[int, int]:
    """Where the quantiles that bound a central ``level``% interval are."""
    low, high = interval_ends(level)
    return list(quantiles).index(low), list(quantiles).index(high)


def interval_bounds(point, half, spread=None, quantiles=(), level=None):
    """``(lower, upper)`` of an interval around ``point``: ``point -/+ half``
    (a conformal half-width); with a quantile network's ``spread`` (each
    quantile's distance from the median, ``(..., quantiles)``), its
    ``level``% quantiles placed around ``point``, each moved outward by the
    correction ``half``, never inward past the point (an interval never
    excludes its forecast)."""
    if spread is None:
        return point - half, point + half
    low, high = interval_indexes(quantiles, level)
    return (point - np.maximum(half - spread[..., low], 0.0),
            point + np.maximum(half + spread[..., high], 0.0))


def nested(bounds: dict) -> dict:
    """Interval bounds ``{level: (lower, upper)}`` with each level's interval
    widened to hold every narrower level's. A quantile network's intervals
    are corrected level by level (``quantile_corrections``), and can cross:
    where its 95% quantiles were moved inward and its 80% ones outward, the
    95% band would end inside the 80% one."""
    out, inner = {}, None
    for level in sorted(bounds, key=float):
        lower, upper = (np.asarray(b, dtype="float64") for b in bounds[level])
        if inner is not None:
            lower, upper = np.minimum(lower, inner[0]), np.maximum(upper, inner[1])
        out[level] = inner = (lower, upper)
    return out


def coverage(truth, pred, widths) -> float:
    """The fraction of ``truth`` inside ``pred ± widths`` (``widths`` per step
    and target, as ``conformal_widths`` gives for one level)."""
    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    w = np.asarray(widths, float)[None, : truth.shape[1]]
    return float(np.mean(np.abs(truth - pred) <= w))


def check_levels(levels) -> tuple[int, ...]:
    """Interval levels as ints in (0, 100), or a ``ValueError`` naming them."""
    out = []
    for level in levels:
        try:
            value = float(level)
        except (TypeError, ValueError):
            value = float("nan")
        if not (0 < value < 100) or value != int(value):
            raise ValueError(f"--intervals takes whole percentages between 0 and 100, "
                             f"such as 80,95; received {level!r}")
        out.append(int(value))
    return tuple(sorted(set(out)))


@dataclasses.dataclass(frozen=True)
class Forecaster:
    """Raw history in, forecasts with intervals out.

    Attributes:
        preprocessor: transforms, scaler, window and horizon.
        time_col: the history's time column, or None for data without one
            (then rows are numbered and the output's first column is ``step``).
        widths: ``{"80": [[half-width per target] per horizon step]}``.
        refit: whether the network was refit on all the data.
        members: for an ensemble whose members saw different windows or
            transforms, each member's preprocessing, in the order of its
            networks; empty when every member reads ``preprocessor``'s.
            They share targets, features, horizon and spacing.
        steps: how many steps a forecast gives by default: the horizon asked
            for, when a short series' network forecasts fewer at a time
            (``experiments.forecasting.short_series``); None: the horizon.
        combination: the weights of the network and of the statistical
            members fitted on each history at forecast time, and the season
            they use (``--combine``); None: the network alone.
        quantiles: the levels a quantile network forecasts (``--loss
            quantile``; ``zoo.quantiles``), or ``()`` for a point network.
            Its median is the network's forecast; each interval is the
            quantiles at its ends, moved around the served forecast and
            widened by ``widths``, which are then conformal corrections
            (``quantile_corrections``), not half-widths.
        distribution: a distribution network's (``--loss normal``,
            ``student_t`` or ``negative_binomial``; ``zoo.distributions``),
            whose parameters are served as ``quantiles``; a count
            distribution's quantiles and interval ends as whole numbers
            (``experiments.forecasting.counts``). None otherwise.
    """

    preprocessor: Preprocessor
    time_col: str | None
    widths: dict = dataclasses.field(default_factory=dict)
    refit: bool = False
    members: tuple = ()
    steps: int | None = None
    # A combination with statistical members (experiments.forecasting.combination):
    # {"weights": {"network": w, "ets": w, ...}, "season": m, "forms": {"ets": [form
    # per target], ...}}; None: the network alone.
    combination: dict | None = None
    quantiles: tuple = ()
    distribution: str | None = None

    @property
    def levels(self) -> list[str]:
        return sorted(self.widths, key=float)

    @property
    def longest(self) -> Preprocessor:
        """The preprocessing that needs the most history (an ensemble's
        longest member's)."""
        return max(self.members or [self.preprocessor], key=lambda p: p.window + p.lost)

    @property
    def statistical_members(self) -> list[str]:
        """The statistical models (``ets``, ``sarima``) the served forecast
        combines with the network, refitted on each history."""
        weights = (self.combination or {}).get("weights", {})
        return [m for m in weights if m != combination.NETWORK]

    @property
    def min_rows(self) -> int:
        """Rows of history the model needs: its window plus what the
        differencing transforms consume (an ensemble's: its longest member's),
        or what a combination's statistical members need to be fitted."""
        rows = self.longest.window + self.longest.lost
        if self.combination:
            rows = max(rows, combination.rows_needed(self.combination["weights"],
                                                     self.combination.get("season")))
        return rows

    def member(self, i: int) -> Forecaster:
        """The forecaster of an ensemble's ``i``-th network alone (its own
        preprocessing, the ensemble's intervals)."""
        if not self.members:
            return self
        return dataclasses.replace(self, preprocessor=self.members[i], members=(),
                                   combination=None)

    @property
    def columns(self) -> list[str]:
        """The history's columns, in order: time (if any), targets, features."""
        return ([self.time_col] if self.time_col else []) + list(self.preprocessor.features)

    def output_columns(self) -> list[str]:
        pre = self.preprocessor
        cols = [self.time_col or "step", *pre.targets]
        for target in pre.targets:
            prefix = f"{target}_" if len(pre.targets) > 1 else ""
            for level in self.levels:
                cols += [f"{prefix}lower_{level}", f"{prefix}upper_{level}"]
            cols += [f"{prefix}{column_name(q)}" for q in self.quantiles]
        return cols

    # === Checking the history ===
    def check_history(self, history, spacing: bool = True) -> pd.DataFrame:
        """The history as a float frame indexed by time (or position).

        Raises:
            ValueError: naming the missing column, the row with a missing or
                non-numeric value, unsorted or irregular timestamps, or too
                few rows.
        """
        pre = self.preprocessor
        if not isinstance(history, pd.DataFrame):
            try:
                history = pd.DataFrame(history)
            except (TypeError, ValueError) as err:
                raise ValueError(f"history must be a table (a pandas DataFrame) with "
                                 f"columns {self.columns}; received "
                                 f"{type(history).__name__} ({err})") from None
        missing = [c for c in self.columns if c not in history.columns]
        if missing:
            raise ValueError(f"history is missing column {missing[0]!r}; the model needs "
                             f"the columns {self.columns}")
        if len(history) < self.min_rows:
            longest = self.longest
            lost = (f" + {longest.lost} lost to {'+'.join(longest.transforms)}"
                    if longest.lost else "")
            why = f"window {longest.window}{lost}"
            if self.min_rows > longest.window + longest.lost:
                why += (f"; {' and '.join(m.upper() for m in self.statistical_members)}, "
                        f"combined with it, need {self.min_rows}")
            raise ValueError(f"history has {len(history)} rows; the model needs at least "
                             f"{self.min_rows} ({why})")
        frame = pd.DataFrame(index=range(len(history)))
        for col in pre.features:
            values = pd.to_numeric(history[col].reset_index(drop=True), errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy())
            if len(bad):
                raw = history[col].iloc[bad[0]]
                shown = "empty (NaN)" if pd.isna(raw) else f"{raw!r}, not a number"
                raise ValueError(f"history column {col!r}, row {bad[0] + 1} is {shown}")
            frame[col] = values.to_numpy(dtype="float64")
        if self.time_col:
            frame.index = pd.DatetimeIndex(self._times(history[self.time_col]),
                                           name=self.time_col)
            if spacing:
                self._check_spacing(frame.index)
        return frame

    def _times(self, column) -> pd.DatetimeIndex:
        try:
            times = pd.to_datetime(column.reset_index(drop=True), format="ISO8601")
        except (ValueError, TypeError):
            times = pd.to_datetime(column.reset_index(drop=True), errors="coerce",
                                   format="ISO8601")
            bad = int(np.flatnonzero(times.isna().to_numpy())[0])
            raise ValueError(f"history column {self.time_col!r}, row {bad + 1}: "
                             f"{column.iloc[bad]!r} is not a timestamp (ISO 8601, "
                             f"such as 1960-12-01)") from None
        if getattr(times.dt, "tz", None) is not None:
            times = times.dt.tz_localize(None)
        missing = np.flatnonzero(times.isna().to_numpy())
        if len(missing):
            raise ValueError(f"history column {self.time_col!r}, row {missing[0] + 1}: "
                             f"the timestamp is missing")
        return pd.DatetimeIndex(times)

    def _check_spacing(self, index: pd.DatetimeIndex, expected=None) -> None:
        steps = np.flatnonzero(np.diff(index.asi8) <= 0)
        if len(steps):
            row = int(steps[0]) + 2
            raise ValueError(f"history column {self.time_col!r} is not increasing: row "
                             f"{row} ({index[row - 1]}) does not come after row {row - 1} "
                             f"({index[row - 2]}); sort the rows and remove duplicates")
        freq = self.preprocessor.freq
        if freq is None:
            return
        if expected is None:
            expected = pd.date_range(index[0], periods=len(index), freq=freq)
        off = np.flatnonzero(expected != index)
        if len(off):
            row = int(off[0])
            raise ValueError(
                f"history column {self.time_col!r} is irregular: row {row + 1} is "
                f"{index[row]}, but the model's data is spaced {freq!r}, so it should be "
                f"{expected[row]} (no gaps or extra rows)")

    # === Forecasting ===
    def forecast(self, model, history, steps: int | None = None) -> pd.DataFrame:
        """The ``steps`` values after the end of ``history``.

        Up to ``horizon`` steps come from one direct forecast. Beyond it the
        forecast rolls forward: each block's forecasts are appended to the
        history as if observed and the model is run again, so errors compound
        and the intervals widen with the square root of the number of blocks
        (an approximation: the conformal guarantee holds within the first
        block only). Rolling needs every input column to be forecast, so a
        model with extra feature columns forecasts at most ``horizon`` steps.

        Several series at once: give ``history`` a ``unique_id`` column
        (``ID_COL``) naming the series each row belongs to. Each is checked
        on its own, all of them are forecast in one call of the model, and
        the result has the same ``unique_id`` column, series in the order
        they first appear.

        Args:
            model: the Keras model (its compiled ``predict_on_batch``: no
                progress bar, no eager layer calls), or a list of them, an
                ensemble: the mean of their forecasts.
            history: raw rows, as the user's CSV (see ``columns``).
            steps: how many steps; default ``self.steps``, else the
                model's horizon.
        """
        steps = self._checked_steps(steps)
        ids, indexes, values = self._histories(history)
        weights = (self.combination or {}).get("weights", {combination.NETWORK: 1.0})
        pred, spread = 0.0, None
        if combination.NETWORK in weights or self.quantiles:
            network = self._rolled(model, values, steps)
            if self.quantiles:  # each quantile's distance from the median
                network, spread = self._median(network), network - self._median(network)[..., None]
            pred = weights.get(combination.NETWORK, 0.0) * network
        if self.statistical_members:  # fitted on each series' whole history, now
            pred = pred + self._statistical(history, ids, steps, weights)
        return self._table(ids, indexes, pred, steps, spread)

    def _checked_steps(self, steps) -> int:
        """``steps``, or by default ``self.steps`` else the horizon; a
        ``ValueError`` for a count below 1, or one past the horizon where
        rolling would need future values of extra feature columns."""
        pre = self.preprocessor
        steps = (self.steps or pre.horizon) if steps is None else steps
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be an int >= 1; received {steps!r}")
        if steps > pre.horizon and set(pre.features) != set(pre.targets):
            extra = [c for c in pre.features if c not in pre.targets]
            raise ValueError(
                f"steps={steps} goes past the model's horizon ({pre.horizon}), which "
                f"needs future values of the feature column(s) {extra}; forecast at "
                f"most {pre.horizon} steps")
        return int(steps)

    def sample_paths(self, model, history, steps: int | None = None, samples: int = 100,
                     seed: int = 0) -> pd.DataFrame:
        """``samples`` simulated futures of each series, from a distribution
        network (``--loss normal``, ``student_t`` or ``negative_binomial``).

        Each block of ``horizon`` steps is drawn from the network's
        distribution at every step (independently across steps: the network
        forecasts each step's distribution, not their joint one), mapped to
        the data's units through that path's own history (so differencing
        is undone path by path), appended to it, and the network run again
        on it. So past the horizon the spread comes from simulation. The
        paths' quantiles at a step estimate the forecast's. An ensemble's
        members take turns, path by path.

        Returns a long table: ``unique_id`` (for several series), the time
        (or ``step``), ``sample`` (0 to ``samples - 1``) and each target.
        """
        if not self.distribution:
            raise ValueError("samples need a distribution model (trained with --loss "
                             "normal, student_t or negative_binomial); this one forecasts "
                             + ("quantiles" if self.quantiles else "a mean"))
        check_samples(samples)
        steps = self._checked_steps(steps)
        ids, indexes, values = self._histories(history)
        paths = np.repeat(values, samples, axis=0)  # series-major: s0's paths, s1's...
        rng = np.random.default_rng(seed)
        blocks = []
        while sum(b.shape[1] for b in blocks) < steps:
            block = self._sampled_block(model, paths, rng)
            blocks.append(block)
            paths = np.concatenate([paths, block], axis=1)
        drawn = np.concatenate(blocks, axis=1)[:, :steps]
        if self.distribution in COUNT_DISTRIBUTIONS:
            drawn = counts.whole(drawn)
        return self._sample_table(ids, indexes, drawn, steps, samples)

    def _sampled_block(self, model, paths, rng) -> np.ndarray:
        """One drawn block per path, ``(paths, horizon, targets)``, in the
        data's units; path ``i`` from the ensemble's member ``i % members``."""
        out = np.zeros((len(paths), self.preprocessor.horizon,
                        len(self.preprocessor.targets)))
        for mine, pre, raw, past in self._member_outputs(model, paths, each_its_own=True):
            drawn = distribution_samples(raw, self.distribution, rng, *pre.target_scaling())
            out[mine] = pre.inverse_transform(drawn, past)
        return out

    def _sample_table(self, ids, indexes, drawn, steps, samples) -> pd.DataFrame:
        """``sample_paths``' long table from ``drawn`` ``(series * samples,
        steps, targets)``."""
        n = len(indexes)
        keys = pd.DataFrame(self._future_times(indexes, steps))
        if ids is not None:
            keys.insert(0, ID_COL, np.repeat(np.asarray(ids, dtype=object), steps))
        # Every series' steps repeated for each of its samples, in path order.
        order = np.concatenate([np.tile(np.arange(i * steps, (i + 1) * steps), samples)
                                for i in range(n)])
        out = keys.iloc[order].reset_index(drop=True)
        out["sample"] = np.tile(np.repeat(np.arange(samples), steps), n)
        for j, target in enumerate(self.preprocessor.targets):
            out[target] = drawn[:, :, j].ravel()
        return out

    def _median(self, quantile_forecasts) -> np.ndarray:
        return quantile_forecasts[..., median_index(self.quantiles)]

    def _statistical(self, history, ids, steps, weights) -> np.ndarray:
        """The weighted sum of the statistical members' forecasts, each fitted
        on each series' history. A member that cannot be fitted on a history
        (too regular, too short) leaves that series' forecast to the other
        members, their weights scaled to the same total, and a warning says so."""
        season = self.combination.get("season")
        out = []
        for i, values in enumerate(self._target_histories(history, ids)):
            forecasts = {}
            for name in self.statistical_members:
                forms = self.combination.get("forms", {}).get(name)
                try:
                    forecasts[name] = combination.statistical_forecast(name, values, steps,
                                                                       season, forms)
                except ValueError as err:
                    warnings.warn(f"{err}; series {i if ids is None else ids[i]!r} is "
                                  f"forecast without it", stacklevel=3)
            if not forecasts:
                raise ValueError(f"no statistical member of this combination "
                                 f"({', '.join(self.statistical_members)}) can forecast "
                                 f"this history")
            total = sum(weights[m] for m in self.statistical_members)
            scale = total / sum(weights[m] for m in forecasts)
            out.append(sum(scale * weights[m] * f for m, f in forecasts.items()))
        return np.stack(out)

    def _rolled(self, model, values, steps) -> np.ndarray:
        """The network's ``steps`` forecasts: direct blocks of ``horizon``,
        each appended to the history to forecast the next."""
        blocks = []
        while True:
            block = self._one_block(model, values)
            blocks.append(block)
            if sum(b.shape[1] for b in blocks) >= steps:
                break
            # features == targets here; a quantile network rolls on its median
            values = np.concatenate([values, self._median(block) if self.quantiles else block],
                                    axis=1)
        return np.concatenate(blocks, axis=1)[:, :steps]

    def _target_histories(self, history, ids) -> list[np.ndarray]:
        """Each series' whole checked history of the targets, ``(rows, targets)``,
        in the order of ``ids`` (one series when ``ids`` is None)."""
        targets = list(self.preprocessor.targets)
        if ids is None:
            return [self.check_history(history)[targets].to_numpy(dtype="float64")]
        return [self.check_history(history[history[ID_COL] == key])[targets]
                .to_numpy(dtype="float64") for key in ids]

    def _histories(self, history):
        """``(ids, indexes, values)``: the series' ids (None for a history
        without an ``ID_COL`` column), each one's checked time index (or row
        count), and the last ``min_rows`` rows of every series stacked,
        ``(series, min_rows, features)``.

        A batch is checked as one table (numbers, timestamps) and then
        series by series (enough rows, increasing and regular times), with
        the expected timestamps computed once per distinct start: series
        over the same period share them."""
        pre = self.preprocessor
        if not (isinstance(history, pd.DataFrame) and ID_COL in history.columns):
            frame = self.check_history(history)
            values = frame[list(pre.features)].to_numpy(dtype="float64")[-self.min_rows:]
            return None, [frame.index if self.time_col else len(frame)], values[None]
        codes, ids = pd.factorize(history[ID_COL], sort=False)
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise ValueError(f"history column {ID_COL!r} is empty on row {row + 1}; "
                             f"name the series of every row")
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(len(ids) + 1))
        try:
            whole = self.check_history(history.iloc[order], spacing=False)
        except ValueError:
            whole = None  # name the series and its row: check them one by one
        if whole is None or (np.diff(starts) < self.min_rows).any():
            for i, series_id in enumerate(ids):
                try:
                    self.check_history(history.iloc[order[starts[i]:starts[i + 1]]])
                except ValueError as err:
                    raise ValueError(f"series {ID_COL}={series_id!r}: {err}") from None
            if whole is None:  # wrong only as one table: say what is wrong
                whole = self.check_history(history.iloc[order], spacing=False)
        data = whole[list(pre.features)].to_numpy(dtype="float64")
        ends = starts[1:]
        rows = ends[:, None] - self.min_rows + np.arange(self.min_rows)
        indexes, expected = [], {}
        for i, series_id in enumerate(ids):
            if not self.time_col:
                indexes.append(int(ends[i] - starts[i]))
                continue
            index = whole.index[starts[i]:ends[i]]
            key = (index[0], len(index))
            if pre.freq and key not in expected:
                expected[key] = pd.date_range(index[0], periods=len(index), freq=pre.freq)
            try:
                self._check_spacing(index, expected.get(key))
            except ValueError as err:
                raise ValueError(f"series {ID_COL}={series_id!r}: {err}") from None
            indexes.append(index)
        return list(ids), indexes, data[rows]

    def _one_block(self, model, values) -> np.ndarray:
        """One direct forecast per series, ``(series, horizon, targets)``,
        from raw ``values`` ``(series, rows, features)``; a quantile
        network's, ``(series, horizon, targets, quantiles)``
        (``experiments.forecasting.quantile_paths``)."""
        out = []
        for _, pre, raw, past in self._member_outputs(model, values):
            if self.distribution:
                raw = distribution_quantiles(raw, self.distribution, self.quantiles,
                                             *pre.target_scaling())
            if self.quantiles:
                out.append(quantile_paths.to_original(
                    lambda z, copies, pre=pre, past=past: pre.inverse_transform(
                        z, np.tile(past, (copies, 1, 1))), raw, self.quantiles))
            else:
                out.append(pre.inverse_transform(raw, past))
        return combine(out)

    def _member_outputs(self, model, values, each_its_own=False):
        """Each member network's raw outputs on raw ``values`` ``(series,
        rows, features)``, through that member's preprocessing: yields
        ``(rows of values, preprocessor, outputs, the targets' last rows
        that undo its differencing)``. Every member forecasts every row, or
        with ``each_its_own`` member ``k`` rows ``k, k + members, ...`` (one
        sample path each)."""
        networks = members_of(model)
        pres = self.members or [self.preprocessor] * len(networks)
        if len(pres) != len(networks):
            raise ValueError(f"the forecaster has {len(pres)} members' preprocessing; "
                             f"received {len(networks)} networks")
        cols = [self.preprocessor.features.index(t) for t in self.preprocessor.targets]
        for k, (network, pre) in enumerate(zip(networks, pres, strict=True)):
            mine = (np.arange(k, len(values), len(networks)) if each_its_own
                    else np.arange(len(values)))
            part = values[mine] if each_its_own else values
            scaled = pre.transform_values(part[:, -(pre.window + pre.lost):])[:, -pre.window:]
            yield (mine, pre, predict(network, scaled.astype("float32")),
                   part[:, part.shape[1] - pre.lost:, cols])

    def _table(self, ids, indexes, pred, steps, spread=None) -> pd.DataFrame:
        """The output table: per series ``steps`` rows of times (or step
        numbers), forecasts and interval bounds; with ``ids``, an
        ``ID_COL`` column first. ``spread``: a quantile network's distance
        of each quantile from its median, ``(series, steps, targets,
        quantiles)``, placed around ``pred``."""
        pre = self.preprocessor
        table = self._future_times(indexes, steps)
        # Past the horizon, every width grows with the square root of the block.
        grow = np.sqrt(np.arange(steps) // pre.horizon + 1)
        for j, target in enumerate(pre.targets):
            table[target] = pred[:, :, j].ravel()
        for j, target in enumerate(pre.targets):
            prefix = f"{target}_" if len(pre.targets) > 1 else ""
            bounds = {}
            for level in self.levels:
                width = np.asarray(self.widths[level], float)[:, j]
                w = width[np.arange(steps) % pre.horizon] * grow
                lower, upper = interval_bounds(
                    pred[:, :, j], w, None if spread is None
                    else spread[:, :, j] * grow[None, :, None], self.quantiles, level)
                if self.distribution in COUNT_DISTRIBUTIONS:
                    lower, upper = counts.whole_bounds(lower, upper)
                bounds[level] = (lower, upper)
            for level, (lower, upper) in nested(bounds).items():
                table[f"{prefix}lower_{level}"] = lower.ravel()
                table[f"{prefix}upper_{level}"] = upper.ravel()
            for k, q in enumerate(self.quantiles):
                value = pred[:, :, j] + spread[:, :, j, k] * grow
                if self.distribution in COUNT_DISTRIBUTIONS:
                    value = counts.whole(value)
                table[f"{prefix}{column_name(q)}"] = value.ravel()
        out = pd.DataFrame(table)[self.output_columns()]
        if ids is not None:
            out.insert(0, ID_COL, np.repeat(np.asarray(ids, dtype=object), steps))
        return out

    def _future_times(self, indexes, steps) -> dict:
        """The time column (or ``step``) of ``steps`` rows after each series'
        index, ``{name: values}``."""
        if not self.time_col:
            return {"step": np.concatenate([np.arange(rows, rows + steps)
                                            for rows in indexes])}
        # (last time, spacing) per series; series ending together share
        # their future timestamps, computed once.
        keys = [(index[-1], self.preprocessor.freq or pd.infer_freq(index))
                for index in indexes]
        future = {key: pd.date_range(key[0], periods=steps + 1, freq=key[1])[1:].to_numpy()
                  for key in dict.fromkeys(keys)}
        return {self.time_col: np.concatenate([future[key] for key in keys])}

    # === Plain JSON ===
    def to_config(self) -> dict:
        config = {"preprocessor": self.preprocessor.to_config(), "time_col": self.time_col,
                  "widths": self.widths, "refit": self.refit}
        if self.members:
            config["members"] = [pre.to_config() for pre in self.members]
        if self.steps:
            config["steps"] = int(self.steps)
        if self.combination:
            config["combination"] = self.combination
        if self.quantiles:
            config["quantiles"] = list(self.quantiles)
        if self.distribution:
            config["distribution"] = self.distribution
        return config

    @classmethod
    def from_config(cls, config: dict) -> Forecaster:
        return cls(Preprocessor.from_config(config["preprocessor"]), config["time_col"],
                   dict(config.get("widths", {})), bool(config.get("refit", False)),
                   tuple(Preprocessor.from_config(c) for c in config.get("members", ())),
                   config.get("steps"), config.get("combination"),
                   tuple(config.get("quantiles", ())), config.get("distribution"))
