"""Figures logged with every run (matplotlib, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def forecast_plot(prepared, pred: np.ndarray, baseline: np.ndarray, part,
                  title: str):
    """Actual values over the test period with the model's forecasts and the
    seasonal naive's, from origins one horizon apart so the forecasts tile
    the period. ``pred``/``baseline``: ``(n, horizon, targets)``."""
    series = prepared.series
    frame = series.frame
    horizon = prepared.horizon
    first = int(part.origins[0])
    context = max(0, first - 2 * horizon)
    fig, axes = plt.subplots(len(series.targets), 1, squeeze=False,
                             figsize=(9, 3.2 * len(series.targets)))
    for t, (ax, col) in enumerate(zip(axes[:, 0], series.targets, strict=True)):
        ax.plot(frame.index[context:], frame[col].iloc[context:], color="black",
                lw=1.2, label="actual")
        for k, i in enumerate(range(0, len(part.origins), horizon)):
            rows = part.origins[i] + np.arange(1, horizon + 1)
            when = frame.index[rows]
            ax.plot(when, pred[i, :, t], color="tab:blue", lw=1.6,
                    label="model" if k == 0 else None)
            ax.plot(when, baseline[i, :, t], color="tab:orange", lw=1, ls="--",
                    label="seasonal naive" if k == 0 else None)
        ax.axvline(frame.index[first], color="grey", lw=0.8, ls=":")
        ax.set_ylabel(col)
        ax.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


def panel_plot(prepared, table, pred: np.ndarray, title: str):
    """A global model's test forecasts of three series of a panel: the one
    it forecast best, the median and the worst by MASE, each with the
    seasonal naive's (``table``: the per-series scores; ``pred``:
    ``(test windows, horizon)`` in the data's units)."""
    ranked = table.sort_values("mase", kind="stable")["unique_id"].tolist()
    picks = {"best": ranked[0], "median": ranked[len(ranked) // 2], "worst": ranked[-1]}
    panel, part = prepared.panel, prepared.test
    fig, axes = plt.subplots(3, 1, figsize=(9, 8.5))
    for ax, (rank, key) in zip(axes, picks.items(), strict=True):
        s = prepared.ids.index(key)
        rows = np.flatnonzero(part.series == s)
        times = panel.frame.loc[panel.frame[panel.id_col] == key, panel.time_col]
        times, values = times.to_numpy(), prepared.values[key]
        first = int(part.origins[rows[0]])
        context = max(0, first - 3 * prepared.horizon)
        ax.plot(times[context:], values[context:], color="black", lw=1.2, label="actual")
        for k, i in enumerate(rows[::prepared.horizon]):
            o = int(part.origins[i])
            when = times[o + 1:o + 1 + prepared.horizon]
            ax.plot(when, pred[i][:len(when)], color="tab:blue", lw=1.6,
                    label="model" if k == 0 else None)
        row = table.loc[table["unique_id"] == key].iloc[0]
        ax.set_title(f"{rank}: {key} (MASE {row['mase']:.3g}, seasonal naive "
                     f"{row['seasonal_naive_mase']:.3g})", fontsize=9)
        ax.axvline(times[first], color="grey", lw=0.8, ls=":")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def future_plot(history, table, time_col, targets, levels, title: str):
    """The end of the history, then the forecast with its intervals shaded
    (the widest interval lightest)."""
    fig, axes = plt.subplots(len(targets), 1, squeeze=False, figsize=(9, 3.2 * len(targets)))
    x_hist = history[time_col] if time_col else np.arange(len(history))
    x_next = table[time_col or "step"]
    if time_col:
        import pandas as pd

        x_hist = pd.to_datetime(x_hist, format="ISO8601")
    shown = max(3 * len(table), 24)
    for ax, col in zip(axes[:, 0], targets, strict=True):
        prefix = f"{col}_" if len(targets) > 1 else ""
        ax.plot(x_hist[-shown:], history[col].iloc[-shown:], color="black", lw=1.2,
                label="history")
        for k, level in enumerate(sorted(levels, key=float, reverse=True)):
            ax.fill_between(x_next, table[f"{prefix}lower_{level}"],
                            table[f"{prefix}upper_{level}"], color="tab:blue",
                            alpha=0.15 + 0.15 * k, lw=0, label=f"{level}% interval")
        ax.plot(x_next, table[col], color="tab:blue", lw=1.6, label="forecast")
        ax.set_ylabel(col)
        ax.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


def learning_curves(history: dict[str, list[float]], title: str):
    """Training and validation loss per epoch (log scale when positive)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for key in ("loss", "val_loss"):
        if history.get(key):
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], label=key)
    values = [v for k in ("loss", "val_loss") for v in history.get(k, [])]
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled units)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def attention_heatmap(weights: np.ndarray, title: str):
    """Attention weights of a few samples, one row per sample: which window
    steps each prediction read. ``weights``: ``(samples, queries, steps)``;
    with several queries (a language model) each sample is its own panel."""
    samples, queries, steps = weights.shape
    if queries == 1:
        fig, ax = plt.subplots(figsize=(7, 0.5 * samples + 2), layout="constrained")
        ax.set_yticks(range(samples), labels=[str(i + 1) for i in range(samples)])
        panels = [(ax, weights[:, 0, :], "test sample")]
    else:
        fig, axes = plt.subplots(1, samples, figsize=(3.2 * samples, 3.4), squeeze=False,
                                 layout="constrained")
        panels = [(ax, weights[i], f"sample {i + 1}: query step")
                  for i, ax in enumerate(axes[0])]
    for ax, grid, ylabel in panels:
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0)
        ax.set_xlabel("window step (oldest to newest)")
        ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=[p[0] for p in panels], label="attention weight")
    fig.suptitle(title)
    return fig


def search_plot(scores: list, objective: str, title: str, numbers=None):
    """Score per trial (failed trials marked) and the best so far;
    ``numbers``: the trials' numbers (default 1, 2, ...)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.asarray(numbers) if numbers is not None else np.arange(1, len(scores) + 1)
    ok = [(i, s) for i, s in zip(x, scores, strict=True) if s is not None]
    if ok:
        ax.scatter(*zip(*ok, strict=True), label="trial", color="tab:blue")
        best, running = [], float("inf")
        for s in scores:
            if s is not None:
                running = min(running, s)
            best.append(running if np.isfinite(running) else np.nan)
        ax.step(x, best, where="post", color="tab:green", label="best so far")
    failed = [i for i, s in zip(x, scores, strict=True) if s is None]
    if failed:
        ax.scatter(failed, [ax.get_ylim()[0]] * len(failed), marker="x",
                   color="tab:red", label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def frame_strip(inputs, truth, pred):
    """Rows of samples: input frames, then true and predicted next frames."""
    n, k = inputs.shape[:2]
    m = truth.shape[1]
    cols = k + 2 * m
    fig, axes = plt.subplots(n, cols, figsize=(1.1 * cols, 1.25 * n), squeeze=False)
    for i in range(n):
        panels = ([(inputs[i, t], f"in {t + 1}") for t in range(k)]
                  + [(truth[i, t], f"true +{t + 1}") for t in range(m)]
                  + [(pred[i, t], f"pred +{t + 1}") for t in range(m)])
        for ax, (image, label) in zip(axes[i], panels, strict=True):
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                      cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=7)
    fig.tight_layout()
    return fig


def rollout_gif(model, inputs, steps: int, path: str):
    """Feed ``inputs`` (one sequence), then the model's own predictions,
    ``steps`` times; save inputs + predictions as an animated GIF."""
    from matplotlib import animation

    window = inputs.shape[0]
    frames = list(inputs)
    for _ in range(steps):
        context = np.stack(frames[-window:])[None]
        frames.append(np.asarray(model(context, training=False))[0, 0])
    fig, ax = plt.subplots(figsize=(2.4, 2.6))
    ax.set_xticks([])
    ax.set_yticks([])
    image = ax.imshow(frames[0][..., 0], cmap="gray", vmin=0, vmax=1)

    def show(i):
        image.set_data(frames[i][..., 0])
        ax.set_title("input" if i < window else f"predicted +{i - window + 1}",
                     fontsize=8)
        return (image,)

    anim = animation.FuncAnimation(fig, show, frames=len(frames), interval=250)
    anim.save(path, writer=animation.PillowWriter(fps=4))
    plt.close(fig)
