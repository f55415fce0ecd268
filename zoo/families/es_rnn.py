"""ES-RNN (Smyl, 2018), the M4 competition's winner: exponential smoothing
normalises each window, an LSTM stack forecasts what is left.

For every target, Holt-Winters smoothing runs over the input window with a
level and a seasonal component whose coefficients are learned::

    l_t       = alpha * (y_t - s_t) + (1 - alpha) * l_{t-1}
    s_{t+m}   = gamma * (y_t - l_t) + (1 - gamma) * s_t

``alpha = sigmoid(a)`` and ``gamma = sigmoid(g)`` are weights of the model,
as are the ``m`` initial seasonal values (``m`` = ``season_length``), so the
smoothing and the network train end to end on the forecast loss. The window
the LSTM reads is the series less its last level and its season, and the
forecast is the LSTM's output plus that level and the season carried on::

    y_hat_{T+k} = l_T + s_{T+k} + lstm(y - l_T - s)_k

Smyl's smoothing is multiplicative on raw, positive values and the network
reads ``log(y / (l_T s_t))``. Here the components add, because the window
arrives in whatever space the task's transforms produce (scaled, possibly
negative): on a ``log`` transform, additive level and season *are* Smyl's
multiplicative ones. One series learns one ``alpha``, one ``gamma`` and one
initial season; a window of several targets learns one set per target while
the LSTM stack is shared across them.

Across many series (a panel), Smyl learned the smoothing per series and one
LSTM for all. Here the coefficients and the initial season are a learned
linear function of the series' trailing ``series_channels`` input features
(its static covariates, which the panel task fills with the one-hot of the
series id under ``--id-embedding``): one ``alpha``, ``gamma`` and initial
season per series, with a shared value every series starts from and a
series never seen in training (all zeros) keeps. Where the input carries
future rows after the history (known covariates over the horizon), only the
first ``history`` steps are smoothed. Smyl dilated his LSTMs for the long
M4 windows; the windows this project searches (one to three seasons) are
short enough for a plain stack, which keeps the fused cuDNN kernel.
"""

import math

import keras
from keras import ops

from zoo import checks, heads
from zoo.registry import register
from zoo.space import Float, Int

# Both smoothing coefficients start at sigmoid(0) = 0.5: halfway between
# a level that follows every value (1) and one that never moves (0).
START_LOGIT = 0.0


@keras.saving.register_keras_serializable(package="zoo")
class ExponentialSmoothing(keras.layers.Layer):
    """Holt-Winters level and additive season over each window, learned.

    Args:
        targets: how many leading input features are targets (smoothed);
            the rest pass through unchanged.
        season_length: the season in steps; 1 smooths a level only.
        horizon: how many future steps of level plus season to return.
        history: how many leading steps are the series' history, smoothed;
            None (default): every step. Targets after it are unknown and
            read as 0.
        series_channels: how many trailing features describe the series
            (constant over the window); the coefficients and the initial
            season are then a linear function of them, per series.
            0 (default): one set for every window.

    Called on ``(batch, time, features)``, returns ``[normalised, base]``:
    the window with each target less its last level and its season
    (``(batch, time, features)``), and the level plus season for the next
    ``horizon`` steps (``(batch, horizon, targets)``).
    """

    def __init__(self, targets, season_length, horizon, history=None, series_channels=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.targets = int(targets)
        self.season_length = int(season_length)
        self.horizon = int(horizon)
        self.history = None if history is None else int(history)
        self.series_channels = int(series_channels)

    @property
    def seasonal(self) -> bool:
        return self.season_length > 1

    def build(self, input_shape):
        start = keras.initializers.Constant(START_LOGIT)
        self.level_logit = self.add_weight(shape=(self.targets,), name="level_logit",
                                           initializer=start)
        if self.seasonal:
            self.season_logit = self.add_weight(shape=(self.targets,), name="season_logit",
                                                initializer=start)
            self.initial_season = self.add_weight(
                shape=(self.season_length, self.targets), name="initial_season",
                initializer="zeros")
        if self.series_channels:
            # Per-series offsets from the shared values, zero at the start:
            # every series begins with the shared smoothing.
            width = self.targets * (2 + self.season_length if self.seasonal else 1)
            self.series_kernel = self.add_weight(
                shape=(self.series_channels, width), name="series_kernel",
                initializer="zeros")

    def _per_series(self, inputs):
        """``(alpha_logit, gamma_logit, initial_season)``, each with a leading
        batch axis when the series' features set them, else shared."""
        level, season, initial = self.level_logit, None, None
        if self.seasonal:
            season, initial = self.season_logit, self.initial_season
        if not self.series_channels:
            return level, season, initial
        offsets = ops.matmul(inputs[:, 0, -self.series_channels:], self.series_kernel)
        t = self.targets
        level = level + offsets[:, :t]
        if self.seasonal:
            season = season + offsets[:, t:2 * t]
            initial = initial + ops.reshape(offsets[:, 2 * t:],
                                            (-1, self.season_length, t))
        return level, season, initial

    def call(self, inputs):
        history = inputs.shape[1] if self.history is None else self.history
        y = inputs[:, :history, :self.targets]
        steps = history
        zero = ops.zeros_like(y[:, 0])
        level_logit, season_logit, initial = self._per_series(inputs)
        alpha = ops.sigmoid(level_logit)
        m = self.season_length if self.seasonal else 1
        # season[t] is the seasonal value for step t; step t's update writes
        # season[t + m]. Without a season every value stays zero.
        season = [zero + (initial[..., i, :] if self.seasonal else 0.0) for i in range(m)]
        gamma = ops.sigmoid(season_logit) if self.seasonal else 0.0
        level = y[:, 0] - season[0]
        for t in range(steps):
            if t > 0:
                level = alpha * (y[:, t] - season[t]) + (1.0 - alpha) * level
            season.append(gamma * (y[:, t] - level) + (1.0 - gamma) * season[t]
                          if self.seasonal else zero)
        last_level = ops.expand_dims(level, 1)
        window_season = ops.stack(season[:steps], axis=1)
        normalised = y - last_level - window_season
        if inputs.shape[1] > history:  # the future rows' targets stay unknown (0)
            normalised = ops.concatenate(
                [normalised, ops.zeros_like(inputs[:, history:, :self.targets])], axis=1)
        future_season = ops.stack([season[steps + k % m] for k in range(self.horizon)], axis=1)
        rest = inputs[:, :, self.targets:]
        return [ops.concatenate([normalised, rest], axis=-1), last_level + future_season]

    def compute_output_shape(self, input_shape):
        batch, steps, features = input_shape
        return [(batch, steps, features), (batch, self.horizon, self.targets)]

    def get_config(self):
        return {**super().get_config(), "targets": self.targets,
                "season_length": self.season_length, "horizon": self.horizon,
                "history": self.history, "series_channels": self.series_channels}

    def coefficients(self, series=None) -> dict:
        """The learned ``alpha`` and ``gamma`` per target, as floats: the
        shared ones, or with ``series`` (its ``series_channels`` features,
        e.g. the one-hot of its id) that series' own."""
        if series is None:
            level, season = self.level_logit, self.season_logit if self.seasonal else None
        else:
            row = ops.convert_to_tensor(series, dtype=self.level_logit.dtype)
            level, season, _ = self._per_series(ops.reshape(row, (1, 1, -1)))
            level, season = level[0], season[0] if self.seasonal else None
        out = {"alpha": [float(v) for v in ops.convert_to_numpy(ops.sigmoid(level))]}
        if self.seasonal:
            out["gamma"] = [float(v) for v in ops.convert_to_numpy(ops.sigmoid(season))]
        return out


SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(1, 2, default=1),
    "dropout": Float(0.0, 0.5, default=0.0),
}


def _smoothing_arguments(where, input_shape, targets, season_length, history,
                         series_channels) -> dict:
    """The smoothing layer's arguments, checked against the input's shape."""
    if input_shape[0] is None:
        raise ValueError(f"{where}: the smoothing needs a window of fixed length; "
                         f"received input_shape with time=None")
    if targets > input_shape[1]:
        raise ValueError(f"{where}: {targets} targets need at least as many input "
                         f"features; received input_shape={input_shape!r}")
    return {"season_length": checks.check_int(where, "season_length", season_length, low=1),
            "history": None if history is None else checks.check_int(
                where, "history", history, low=1, high=input_shape[0]),
            "series_channels": checks.check_int(where, "series_channels", series_channels,
                                                low=0, high=input_shape[1] - 1)}


@register("es_rnn", space=SPACE, heads=("forecast",))
def build_es_rnn(input_shape, outputs, *, head="forecast", units=32, num_layers=1,
                 dropout=0.0, recurrent_dropout=0.0, season_length=1, history=None,
                 series_channels=0, name="es_rnn"):
    """Exponential smoothing then an LSTM stack, trained end to end (ES-RNN).

    The smoothing's level and season normalise each window and are added
    back to the forecast (see the module docstring); its coefficients are
    weights of the model.

    Args:
        input_shape: ``(time, features)`` with a fixed ``time``; the leading
            features are the targets (as ``experiments`` windows them).
        outputs: ``horizon`` for one target, or ``(horizon, targets)``.
        head: ``"forecast"`` only.
        units: size of each LSTM layer's state. Default 32.
        num_layers: how many LSTM layers, at least 1. Default 1.
        dropout: dropout on each layer's inputs, in [0, 1).
        recurrent_dropout: dropout on the recurrent state, in [0, 1); above
            0 the LSTM loses its fused cuDNN kernel.
        season_length: the season in steps (12 for monthly data with a
            yearly cycle); 1 (default) smooths a level only. The forecast
            task sets it from the data.
        history: how many leading steps of the input are history (smoothed);
            the rest are future rows with known covariates. None (default):
            every step. The panel task sets it.
        series_channels: how many trailing input features describe the
            series (its static covariates; the one-hot of its id under
            ``--id-embedding``): smoothing coefficients and initial season
            per series, as Smyl's. 0 (default): one set. The panel task sets it.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    where = "build_es_rnn"
    args = checks.check_arguments(where, units=units, num_layers=num_layers, dropout=dropout,
                                  recurrent_dropout=recurrent_dropout)
    horizon, targets = outputs if isinstance(outputs, tuple) else (outputs, 1)
    smoothing = _smoothing_arguments(where, input_shape, targets, season_length, history,
                                     series_channels)
    inputs = keras.Input(input_shape, name="sequence")
    x, base = ExponentialSmoothing(targets, horizon=horizon, **smoothing,
                                   name="exponential_smoothing")(inputs)
    for i in range(args["num_layers"]):
        x = keras.layers.LSTM(args["units"], dropout=args["dropout"],
                              recurrent_dropout=args["recurrent_dropout"],
                              return_sequences=i < args["num_layers"] - 1,
                              name=f"lstm_{i + 1}")(x)
    # The network starts at zero: an untrained model forecasts the smoothing.
    x = keras.layers.Dense(math.prod((horizon, targets)), kernel_initializer="zeros",
                           name="normalised_forecast")(x)
    x = keras.layers.Reshape((horizon, targets), name="normalised_forecast_shape")(x)
    forecast = keras.layers.Add(name="smoothing_plus_network", dtype=heads.OUTPUT_DTYPE)([base, x])
    if not isinstance(outputs, tuple):
        forecast = keras.layers.Reshape((horizon,), name="forecast",
                                        dtype=heads.OUTPUT_DTYPE)(forecast)
    return keras.Model(inputs, forecast, name=name)
