"""The frames task's loss and metrics."""

import numpy as np
import pytest

from experiments.frame_loss import sharp_frames, ssim
from experiments.tasks.frames import frame_metrics


def frames(seed=0, shape=(3, 2, 24, 24, 1)):
    rng = np.random.default_rng(seed)
    truth = rng.random(shape, dtype=np.float32)
    noisy = np.clip(truth + 0.1 * rng.standard_normal(shape), 0, 1).astype("float32")
    return truth, noisy


def test_ssim_is_tf_image_ssim_per_frame():
    import tensorflow as tf

    truth, pred = frames()
    ours = np.asarray(ssim(truth, pred))
    theirs = tf.image.ssim(truth.reshape(-1, 24, 24, 1), pred.reshape(-1, 24, 24, 1),
                           max_val=1.0).numpy().reshape(3, 2)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_sharp_frames_is_cross_entropy_plus_one_minus_ssim_and_punishes_a_blur():
    truth, pred = frames()
    eps = 1e-7
    p = np.clip(pred, eps, 1 - eps)
    bce = -(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean(axis=(1, 2, 3, 4))
    expected = bce + (1 - np.asarray(ssim(truth, pred))).mean(axis=1)
    np.testing.assert_allclose(np.asarray(sharp_frames(truth, pred)), expected, rtol=1e-4)
    # A flat grey frame at the right mean brightness: the same mean, no structure.
    blur = np.full_like(truth, truth.mean())
    assert (np.asarray(ssim(truth, blur)) < 0.05).all()
    assert (np.asarray(sharp_frames(truth, blur)) > np.asarray(sharp_frames(truth, pred))).all()


def test_psnr_of_an_exact_frame_is_capped_not_infinite():
    truth, pred = frames()
    assert frame_metrics(truth, truth)["psnr"] == pytest.approx(100.0)
    assert 15 < frame_metrics(truth, pred)["psnr"] < 30
