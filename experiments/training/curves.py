"""Per-epoch curves to MLflow: the Keras callback ``MetricLogger``."""

from __future__ import annotations

import time

import keras

from experiments.tracking import flush_on_close, raise_if_signalled


class MetricLogger(keras.callbacks.Callback):
    """Logs every epoch's metrics to the active run, and the learning rate
    as the curve ``lr`` once it changes (a constant one is a param).

    Values are buffered and sent with one ``log_batch`` call every
    ``flush_seconds`` and at the end of training, so tracking costs a few
    writes per fit rather than one per value.

    Args:
        run_id: the run to log to.
        prefix: prepended to every metric name (``"fold2_"``).
        flush_seconds: longest time a value waits in the buffer.
    """

    def __init__(self, run_id: str, prefix: str = "", flush_seconds: float = 5.0):
        super().__init__()
        self.run_id, self.prefix, self.flush_seconds = run_id, prefix, flush_seconds
        self._buffer = []
        self._rates = []          # (epoch, time, learning rate) until it changes
        self._rate_changed = False
        self._last_flush = time.monotonic()
        flush_on_close(self)

    def on_epoch_end(self, epoch, logs=None):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = dict(logs or {})
        # Keras' schedulers put the rate in the logs; it is logged as "lr", so
        # that the name is not both a metric and the learning_rate param.
        rate = values.pop("learning_rate", None)
        lr = getattr(self.model.optimizer, "learning_rate", None)
        if lr is not None:
            rate = float(keras.ops.convert_to_numpy(lr))
        for key, value in values.items():
            self._buffer.append(Metric(self.prefix + key, float(value), now, epoch))
        if rate is not None:
            self._rates.append(Metric(self.prefix + "lr", float(rate), now, epoch))
            if not self._rate_changed and self._rates[0].value != float(rate):
                self._rate_changed = True
            if self._rate_changed:  # the whole curve, from the first epoch
                self._buffer += self._rates
                self._rates = []
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()
        raise_if_signalled()  # a Ctrl-C lost in a finalizer still stops training

    def on_train_end(self, logs=None):
        self.flush()

    def flush(self):
        import mlflow

        if self._buffer:
            client = mlflow.MlflowClient()
            for i in range(0, len(self._buffer), 1000):  # MLflow's batch cap
                client.log_batch(self.run_id, metrics=self._buffer[i:i + 1000])
            self._buffer = []
        self._last_flush = time.monotonic()
