"""Quantile forecasts mapped back through differencing (quantile_paths)."""

import numpy as np

from experiments.forecasting import quantile_paths


def test_through_a_cumulative_sum_a_quantiles_distance_grows_as_independent_changes_do():
    """Differencing undone is a cumulative sum: each step's change of +-1 at
    the quantiles gives +-sqrt(h) at step h, not +-h (the sum of quantiles)."""
    horizon = 4
    raw = np.zeros((2, horizon, 1, 3))
    raw[..., 0], raw[..., 2] = -1.0, 1.0
    last = np.array([[10.0], [20.0]])

    def inverse(z, copies):
        return np.tile(last, (copies, 1))[:, None, :] + np.cumsum(z, axis=1)

    out = quantile_paths.to_original(inverse, raw, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(out[..., 1], np.array([[10.0] * 4, [20.0] * 4])[..., None])
    root = np.sqrt(np.arange(1, horizon + 1))[None, :, None]
    np.testing.assert_allclose(out[..., 2] - out[..., 1], np.broadcast_to(root, (2, 4, 1)))
    np.testing.assert_allclose(out[..., 1] - out[..., 0], np.broadcast_to(root, (2, 4, 1)))


def test_without_differencing_each_quantile_maps_on_its_own():
    raw = np.random.default_rng(0).normal(size=(5, 3, 2, 3))
    raw.sort(axis=-1)
    out = quantile_paths.to_original(lambda z, copies: np.exp(z), raw, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(out, np.exp(raw))
