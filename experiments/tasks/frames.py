"""Next-frame prediction with ConvLSTM: moving digits or a user ``.npy``."""

from __future__ import annotations

import os

import numpy as np

from experiments import tracking
from experiments.data import DataError, check_generated, check_input_file
from experiments.forecasting.windows import resolve_part
from experiments.tasks.base import Split, Task
from experiments.tracking import numpy_dataset

KIND = "frames"
TAKES = ("data", "dataset_options", "npy", "max_file_mb", "window", "horizon",
         "val_size", "test_size")
# window None: every frame but the horizon's.
DEFAULTS = {"horizon": 1, "val_size": 0.15, "test_size": 0.15}


def make_moving_digits(count: int = 2000, length: int = 10, size: int = 24,
                       digits: int = 1, speed: int = 2, seed: int = 0) -> np.ndarray:
    """Moving digits: handwritten 8x8 digits (scikit-learn's) bouncing in a frame.

    Deterministic for a seed. Returns ``(count, length, size, size, 1)``
    float32 in [0, 1].

    Args:
        count: number of sequences.
        length: frames per sequence.
        size: frame height and width in pixels (at least 9).
        digits: digits per sequence; overlapping digits take the brighter pixel.
        speed: largest step per frame, in pixels, along each axis.
        seed: seeds digit choice, start positions and velocities.
    """
    from sklearn.datasets import load_digits

    if size < 9 or count < 1 or length < 2 or digits < 1 or speed < 1:
        raise DataError(f"moving_digits: need size >= 9, count >= 1, length >= 2, "
                        f"digits >= 1, speed >= 1; received size={size}, "
                        f"count={count}, length={length}, digits={digits}, "
                        f"speed={speed}")
    check_generated("moving_digits", (count, length, size, size))
    images = load_digits().images.astype("float32") / 16.0
    rng = np.random.default_rng(seed)
    room = size - 8
    out = np.zeros((count, length, size, size, 1), "float32")
    steps = [s for s in range(-speed, speed + 1) if s]
    for n in range(count):
        for _ in range(digits):
            image = images[rng.integers(len(images))]
            pos = rng.integers(0, room + 1, size=2)
            vel = rng.choice(steps, size=2)
            for t in range(length):
                r, c = pos
                patch = out[n, t, r:r + 8, c:c + 8, 0]
                np.maximum(patch, image, out=patch)
                pos = pos + vel
                for axis in range(2):  # bounce off the walls
                    if pos[axis] < 0:
                        pos[axis], vel[axis] = -pos[axis], -vel[axis]
                    elif pos[axis] > room:
                        pos[axis], vel[axis] = 2 * room - pos[axis], -vel[axis]
    return out


def load_npy(path, max_file_mb=None) -> np.ndarray:
    """A user's frames, ``(samples, time, rows, cols[, channels])``."""
    path = check_input_file(path, max_file_mb, ".npy")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a NumPy .npy array ({err})") from None
    if array.ndim == 4:
        array = array[..., None]
    if array.ndim != 5:
        raise DataError(f"{path}: frames must have shape (samples, time, rows, "
                        f"cols[, channels]); received shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: frames must be numbers; received dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{path}: value {array[where]} at index {where} is not finite")
    return array.astype("float32")


class FramesTask(Task):
    kind = "frames"
    head = "frames"
    rank_by = "test_mse"
    metrics_shown = ("mse", "bce", "psnr", "ssim")

    @property
    def loss(self):
        """Cross-entropy plus 1 - SSIM: per-pixel losses alone learn a blur
        (see ``experiments.frame_loss``; imported here, as it imports Keras)."""
        from experiments.frame_loss import sharp_frames

        return sharp_frames

    def __init__(self, name, source, frames, *, window, horizon, val_size, test_size):
        n, length = frames.shape[:2]
        window = window or length - horizon
        if window < 1 or window + horizon > length:
            raise DataError(f"{name}: sequences have {length} frames; window "
                            f"{window} + horizon {horizon} must fit in them")
        n_test = _count(test_size, n, "test")
        n_val = _count(val_size, n - n_test, "val")
        n_train = n - n_val - n_test
        if n_train < 1 or n_val < 1 or n_test < 1:
            raise DataError(f"{name}: {n} sequences are too few for a train / "
                            f"validation / test split ({n_train}/{n_val}/{n_test}); "
                            f"need at least 3")
        # Scale to [0, 1] with the training part's range (the head is sigmoid).
        lo, hi = float(frames[:n_train].min()), float(frames[:n_train].max())
        if hi <= lo:
            raise DataError(f"{name}: the training frames are constant ({lo})")
        scaled = np.clip((frames - lo) / (hi - lo), 0.0, 1.0)
        x, y = scaled[:, :window], scaled[:, window:window + horizon]
        self.name, self.source, self.low, self.high = name, source, lo, hi
        self.window, self.horizon = window, horizon
        self.input_shape, self.outputs = x.shape[1:], horizon
        cut = [n_train, n_train + n_val]
        self.train, self.val, self.test = (
            Split(a, b) for a, b in zip(np.split(x, cut), np.split(y, cut), strict=True))

    def params(self):
        return {"window": self.window, "horizon": self.horizon,
                "frame_shape": "x".join(map(str, self.input_shape[1:])),
                "n_train": len(self.train), "n_val": len(self.val),
                "n_test": len(self.test)}

    def dataset(self):
        return numpy_dataset(self.name, self.source, self.train.x, self.train.y)

    def baselines(self):
        return [("copy last frame", "test_copy_last_")]

    def evaluate(self, model):
        pred = self.predict_test(model)
        last = np.repeat(self.test.x[:, -1:], self.horizon, axis=1)
        scores = {f"test_{k}": v for k, v in frame_metrics(self.test.y, pred).items()}
        scores.update({f"test_copy_last_{k}": v
                       for k, v in frame_metrics(self.test.y, last).items()})
        return scores

    def log_artifacts(self, model, scores):
        import mlflow

        from experiments import plots

        pred = self.predict_test(model)
        tracking.log_figure(plots.frame_strip(self.test.x[:3], self.test.y[:3], pred[:3]),
                          "plots/frames.png")
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "predicted.gif")
            plots.rollout_gif(model, self.test.x[0], steps=8, path=path)
            mlflow.log_artifact(path, "plots")

    def config(self):
        return {"scale": {"low": self.low, "high": self.high}}


def frame_metrics(truth, pred) -> dict[str, float]:
    """Per-pixel MSE and binary cross-entropy, PSNR (at most 100 dB per frame)
    and SSIM (``tf.image.ssim``), data range 1."""
    import tensorflow as tf

    truth = np.asarray(truth, "float32")
    pred = np.asarray(pred, "float32")
    eps = 1e-7
    p = np.clip(pred, eps, 1 - eps)
    images_t = truth.reshape(-1, *truth.shape[-3:])
    images_p = pred.reshape(-1, *pred.shape[-3:])
    filter_size = min(11, *truth.shape[-3:-1])
    return {
        "mse": float(np.mean((pred - truth) ** 2)),
        "bce": float(np.mean(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)))),
        # Per frame, as tf.image.psnr, but a frame predicted exactly counts
        # as 100 dB instead of making the mean infinite.
        "psnr": float(np.mean(10 * np.log10(1.0 / np.maximum(
            np.mean((images_t - images_p) ** 2, axis=(1, 2, 3)), 1e-10)))),
        "ssim": float(np.mean(tf.image.ssim(images_t, images_p, max_val=1.0,
                                            filter_size=filter_size))),
    }


def _count(size, n, what):

    return resolve_part(size, n, None, what)


def claims(cfg) -> bool:
    return bool(cfg.npy)


def make_tasks(cfg) -> list[FramesTask]:
    options = dict(cfg.dataset_options)
    if cfg.npy:
        frames = load_npy(cfg.npy, cfg.max_file_mb)
        name = os.path.splitext(os.path.basename(cfg.npy))[0]
        source = os.path.abspath(cfg.npy)
    else:
        try:
            frames = make_moving_digits(**options)
        except TypeError as err:
            raise DataError(f"moving_digits: bad option ({err})") from None
        name, source = "moving_digits", f"generated:moving_digits({options})"
    given = {k: getattr(cfg, k) for k in DEFAULTS if getattr(cfg, k) is not None}
    return [FramesTask(name, source, frames, window=cfg.window, **{**DEFAULTS, **given})]


DATASETS = {"moving_digits": make_moving_digits}
