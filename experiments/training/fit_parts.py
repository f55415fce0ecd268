"""What every fit is made of, written once: the optimizer and early stopping
(``train``, ``ForecastModel``, the stateful language model, every search
trial, its folds and its refit)."""

from __future__ import annotations

import keras


def make_optimizer(learning_rate: float, clipnorm: float | None = None,
                   weight_decay: float = 0.0):
    """Adam, or AdamW when ``weight_decay`` > 0 (decoupled decay, which the
    search tries for short series that over-fit)."""
    if weight_decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay,
                                      clipnorm=clipnorm)
    return keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)


def early_stopping(patience: int, monitor: str = "val_loss", restore: bool = True):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; with
    ``restore``, end with the best epoch's weights."""
    return keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=patience,
                                         restore_best_weights=restore)
