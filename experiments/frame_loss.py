"""A loss for next-frame prediction that keeps frames sharp.

Per-pixel losses (MSE, binary cross-entropy) are minimised, when the motion
is uncertain, by the average of the possible next frames: a blur. SSIM
(Wang et al., 2004) compares local means, contrasts and structure instead,
so a blur scores badly. ``sharp_frames`` adds ``1 - SSIM`` to binary
cross-entropy: the cross-entropy keeps intensities calibrated, the SSIM
term keeps edges. Written with ``keras.ops`` only (all backends), with the
Gaussian window and constants of ``tf.image.ssim``, which the run's SSIM
metric uses.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# tf.image.ssim's defaults.
FILTER_SIZE, FILTER_SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def ssim(y_true, y_pred, max_val: float = 1.0):
    """Mean SSIM of each frame: inputs ``(..., rows, cols, channels)``,
    output one value per frame (``...``)."""
    rows, cols, channels = y_pred.shape[-3:]
    size = min(FILTER_SIZE, rows, cols)
    coords = np.arange(size, dtype="float32") - (size - 1) / 2
    g = np.exp(-coords ** 2 / (2 * FILTER_SIGMA ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    kernel = ops.convert_to_tensor(np.tile(window[:, :, None, None], (1, 1, channels, 1)))
    lead = ops.shape(y_pred)[:-3]
    t = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, rows, cols, channels))
    p = ops.reshape(y_pred, (-1, rows, cols, channels))

    def blur(x):
        return ops.depthwise_conv(x, kernel, padding="valid")

    mu_t, mu_p = blur(t), blur(p)
    var_t = blur(t * t) - mu_t ** 2
    var_p = blur(p * p) - mu_p ** 2
    cov = blur(t * p) - mu_t * mu_p
    c1, c2 = (K1 * max_val) ** 2, (K2 * max_val) ** 2
    index = ((2 * mu_t * mu_p + c1) * (2 * cov + c2)
             / ((mu_t ** 2 + mu_p ** 2 + c1) * (var_t + var_p + c2)))
    return ops.reshape(ops.mean(index, axis=(1, 2, 3)), lead)


@keras.saving.register_keras_serializable(package="lstm_zoo")
def sharp_frames(y_true, y_pred):
    """Binary cross-entropy per pixel plus ``1 - SSIM`` per frame, per sample."""
    bce = keras.losses.binary_crossentropy(y_true, y_pred)  # (batch, frames, rows, cols)
    per_frame = 1.0 - ssim(y_true, y_pred)  # (batch, frames)
    return ops.mean(bce, axis=(1, 2, 3)) + ops.mean(per_frame, axis=1)



