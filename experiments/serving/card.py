"""The model card of a registered forecasting model: what a user reads on
the model version's page in the MLflow UI (its description and tags)."""

from __future__ import annotations

import pandas as pd


def model_card(*, name: str, family: str, hyperparameters: dict, task, scores: dict,
               refit: bool, run_id: str, members=()) -> tuple[str, dict[str, str]]:
    """``(description in Markdown, tags)`` for a registered version.

    Args:
        name: the registered model's name (``lstm-zoo-airline-passengers``).
        family, hyperparameters: the model.
        task: the ``ForecastTask`` it was trained on.
        scores: its test metrics (and the baselines').
        refit: whether the served network was refit on all the data.
        run_id: the run that logged it.
        members: an ensemble's members' preprocessing when they read other
            windows or transforms than ``task``'s
            (``ForecastTask.member_preprocessing``).
    """
    nan = float("nan")
    p = task.prepared
    index = task.series.frame.index
    last_seen = len(index) - 1 if refit else p.n_train - 1
    seen = f"{_when(index, 0)} to {_when(index, last_seen)}"
    digest = task.dataset().digest
    hp = {k: v for k, v in hyperparameters.items() if k not in ("family", "head")}
    shown_hp = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(hp.items()))
    combined = [("served combination", "test_combined_")] if task.combination_verdict else []
    rows = [("model", "test_"), *combined, *task.baselines()]
    metrics = [m for m in ("rmse", "mae", "mape") if f"test_{m}" in scores]
    table = ["| | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for label, prefix in rows:
        if all(prefix + m in scores for m in metrics):
            table.append(f"| {label} | " + " | ".join(
                _fmt(scores[prefix + m]) for m in metrics) + " |")
    coverage = ", ".join(f"{k.rsplit('_', 1)[1]}%: {scores[k]:.2f}"
                         for k in sorted(scores) if k.startswith("test_coverage_"))
    time_col = index.name if isinstance(index, pd.DatetimeIndex) else None
    example_rows = max(pre.window + pre.lost for pre in members or [p.preprocessor])
    description = "\n".join([
        f"**{family}** forecasting {', '.join(task.series.targets)} of "
        f"`{task.name}`, {p.horizon} step(s) ahead " + (
            "from the last " + _reads(p.preprocessor) if not members else
            "as the mean of members reading " + "; ".join(map(_reads, members))) + ".",
        "",
        f"Hyperparameters: {shown_hp}.",
        "",
        *([f"Combined with the statistical baselines (`--combine`): "
           f"{task.combination_verdict}.", ""] if task.combination_verdict else []),
        f"Trained on {seen}"
        + (" (refit on all the data, for the epochs early stopping chose)." if refit
           else " (the training split)."),
        f"Dataset digest `{digest}`.",
        "",
        f"Test metrics ({p.n_test} rows, of the model trained on the training split "
        "only, which never saw them):",
        "",
        *table,
        "",
        f"Skill vs seasonal naive: {scores.get('test_skill_vs_seasonal_naive', nan):+.3f}; "
        f"vs the best baseline: {scores.get('test_skill_vs_best_baseline', nan):+.3f}."
        + (f" Interval coverage on the test period: {coverage}." if coverage else ""),
        "",
        "How to call it (raw history in, as the CSV: "
        f"{', '.join(([time_col] if time_col else []) + list(task.series.features))}; "
        f"at least {example_rows} rows):",
        "",
        "```python",
        "import mlflow, pandas as pd",
        f"model = mlflow.pyfunc.load_model(\"models:/{name}@best\")",
        "print(model.predict(pd.read_csv(\"history.csv\")))  # or params={\"steps\": 24}",
        "```",
        "",
        f"Or: `lstm-zoo forecast --model models:/{name}@best`. Logged by run `{run_id}`.",
    ])
    tags = {
        "family": family, "task": task.kind, "dataset": task.name,
        "data_digest": digest, "trained_from": _when(index, 0),
        "trained_to": _when(index, last_seen), "refit": str(refit).lower(),
        "window": str(p.window), "horizon": str(p.horizon),
        "hyperparameters": shown_hp[:5000],
        **({"combination": task.combination_verdict[:5000]} if task.combination_verdict
           else {}),
        **{k: _fmt(scores[k]) for k in ("test_rmse", "test_seasonal_naive_rmse",
                                         "test_skill_vs_seasonal_naive",
                                         "test_skill_vs_best_baseline") if k in scores},
    }
    return description, tags


def panel_card(*, name: str, family: str, hyperparameters: dict, task, scores: dict,
               refit: bool, run_id: str) -> tuple[str, dict[str, str]]:
    """``(description in Markdown, tags)`` for a registered global model: the
    panel's test scores averaged over series, beside the per-series
    baselines', and the shares of series it beats them on."""
    p, panel = task.prepared, task.panel
    hp = {k: v for k, v in hyperparameters.items() if k not in ("family", "head")}
    shown_hp = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(hp.items()))
    rows = [("model", "test_"), *task.baselines()]
    table = ["| | mean MASE | mean sMAPE |", "|---|---|---|"]
    table += [f"| {label} | {_fmt(scores[prefix + 'mase'])} | {_fmt(scores[prefix + 'smape'])}"
              " |" for label, prefix in rows if prefix + "mase" in scores]
    covariates = [f"{what}: {', '.join(cols)}" for what, cols in (
        ("past features", panel.past), ("future features", panel.future),
        ("static", panel.static),
        ("calendar", p.covariates.calendar if p.covariates else ()),
        ("the series id, embedded", (panel.id_col,) if p.covariates and p.covariates.series_id
         else ())) if cols]
    n = int(scores.get("test_series_scored", len(p.ids)))
    shares = {k: round(scores.get(f"test_share_beats_{k}", float("nan")) * n)
              for k in ("seasonal_naive", "best_baseline")}
    columns = [panel.id_col, panel.time_col, panel.target, *panel.past, *panel.future,
               *panel.static]
    description = "\n".join([
        f"**{family}**, one network over {len(p.ids)} series of `{task.name}` "
        f"({panel.freq}), {p.horizon} step(s) ahead from each series' last {p.window}, "
        f"each window scaled by itself.",
        "", f"Hyperparameters: {shown_hp}.", "",
        *([f"Covariates: {'; '.join(covariates)}.", ""] if covariates else []),
        *([f"Combined with the seasonal naive (`--combine`): {task.combination_verdict}.",
           ""] if task.combination_verdict else []),
        "Trained on every date" + (" (refit on all the data)." if refit else
                                   f" before {p.val_start.date()}."),
        f"Test ({p.test_start.date()} on, {n} series; scores averaged over series, of the "
        f"model trained before validation):", "", *table, "",
        f"Beats the seasonal naive on {shares['seasonal_naive']} of {n} series and its best "
        f"baseline on {shares['best_baseline']} (per_series.csv in run `{run_id}`).", "",
        f"How to call it (a long table: {', '.join(columns)}; at least {p.window} rows "
        "per series" + ("; and each series' rows for the dates forecast, "
                        f"{panel.target} empty" if panel.future else "") + "):",
        "", "```python", "import mlflow, pandas as pd",
        f"model = mlflow.pyfunc.load_model(\"models:/{name}@best\")",
        "print(model.predict(pd.read_csv(\"panel.csv\")))  # every series' forecast",
        "```", "", f"Or: `lstm-zoo forecast --model models:/{name}@best --csv panel.csv`."])
    tags = {"family": family, "task": task.kind, "dataset": task.name,
            "n_series": str(len(p.ids)), "window": str(p.window), "horizon": str(p.horizon),
            "refit": str(refit).lower(), "hyperparameters": shown_hp[:5000],
            **({"combination": task.combination_verdict[:5000]}
               if task.combination_verdict else {}),
            **{k: _fmt(scores[k]) for k in ("test_mase", "test_seasonal_naive_mase",
                                             "test_share_beats_seasonal_naive",
                                             "test_share_beats_best_baseline")
               if k in scores}}
    return description, tags


def _when(index, row: int) -> str:
    value = index[row]
    if not hasattr(value, "isoformat"):
        return f"row {row + 1}"
    return value.isoformat().removesuffix("T00:00:00")


def _reads(pre) -> str:
    """What one network reads: ``24 (transforms: log, diff)``."""
    return f"{pre.window} (transforms: {', '.join(pre.transforms) or 'none'})"


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
