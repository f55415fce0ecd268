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
the LSTM stack is shared across them. Smyl dilated his LSTMs for the long
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

    Called on ``(batch, time, features)``, returns ``[normalised, base]``:
    the window with each target less its last level and its season
    (``(batch, time, features)``), and the level plus season for the next
    ``horizon`` steps (``(batch, horizon, targets)``).
    """

    def __init__(self, targets, season_length, horizon, **kwargs):
        super().__init__(**kwargs)
        self.targets = int(targets)
        self.season_length = int(season_length)
        self.horizon = int(horizon)

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

    def call(self, inputs):
        y = inputs[:, :, :self.targets]
        steps = y.shape[1]
        zero = ops.zeros_like(y[:, 0])
        alpha = ops.sigmoid(self.level_logit)
        m = self.season_length if self.seasonal else 1
        # season[t] is the seasonal value for step t; step t's update writes
        # season[t + m]. Without a season every value stays zero.
        season = [zero + (self.initial_season[i] if self.seasonal else 0.0) for i in range(m)]
        gamma = ops.sigmoid(self.season_logit) if self.seasonal else 0.0
        level = y[:, 0] - season[0]
        for t in range(steps):
            if t > 0:
                level = alpha * (y[:, t] - season[t]) + (1.0 - alpha) * level
            season.append(gamma * (y[:, t] - level) + (1.0 - gamma) * season[t]
                          if self.seasonal else zero)
        last_level = ops.expand_dims(level, 1)
        window_season = ops.stack(season[:steps], axis=1)
        normalised = y - last_level - window_season
        future_season = ops.stack([season[steps + k % m] for k in range(self.horizon)], axis=1)
        rest = inputs[:, :, self.targets:]
        return [ops.concatenate([normalised, rest], axis=-1), last_level + future_season]

    def compute_output_shape(self, input_shape):
        batch, steps, features = input_shape
        return [(batch, steps, features), (batch, self.horizon, self.targets)]

    def get_config(self):
        return {**super().get_config(), "targets": self.targets,
                "season_length": self.season_length, "horizon": self.horizon}

    def coefficients(self) -> dict:
        """The learned ``alpha`` and ``gamma`` per target, as floats."""
        out = {"alpha": [float(v) for v in ops.convert_to_numpy(ops.sigmoid(self.level_logit))]}
        if self.seasonal:
            out["gamma"] = [float(v) for v in
                            ops.convert_to_numpy(ops.sigmoid(self.season_logit))]
        return out


SPACE = {
    "units": Int(8, 128, step=8, default=32),
    "num_layers": Int(1, 2, default=1),
    "dropout": Float(0.0, 0.5, default=0.0),
}


@register("es_rnn", space=SPACE, heads=("forecast",))
def build_es_rnn(input_shape, outputs, *, head="forecast", units=32, num_layers=1,
                 dropout=0.0, recurrent_dropout=0.0, season_length=1, name="es_rnn"):
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
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    where = "build_es_rnn"
    args = checks.check_arguments(where, units=units, num_layers=num_layers, dropout=dropout,
                                  recurrent_dropout=recurrent_dropout)
    season_length = checks.check_int(where, "season_length", season_length, low=1)
    if input_shape[0] is None:
        raise ValueError(f"{where}: the smoothing needs a window of fixed length; "
                         f"received input_shape with time=None")
    horizon, targets = outputs if isinstance(outputs, tuple) else (outputs, 1)
    if targets > input_shape[1]:
        raise ValueError(f"{where}: {targets} targets need at least as many input "
                         f"features; received input_shape={input_shape!r}")
    inputs = keras.Input(input_shape, name="sequence")
    x, base = ExponentialSmoothing(targets, season_length, horizon,
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
