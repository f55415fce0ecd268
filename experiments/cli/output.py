"""What the commands print: tables, test metrics beside the baselines, skill."""

from __future__ import annotations


def table(rows) -> str:
    """Rows as aligned text; numbers right-aligned, the first row a header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        cells = []
        for c, w in zip(row, widths, strict=True):
            c = str(c)
            numeric = c[:1].isdigit() or (c[:1] in "+-" and c[1:2].isdigit())
            cells.append(c.rjust(w) if numeric and j else c.ljust(w))
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def metrics_table(task, m, label) -> str:
    """The model's test metrics next to the task's baselines."""
    names = task.metrics_shown
    rows = [("", *names)]
    served = [("served combination", "test_combined_")] if "test_combined_rmse" in m else []
    for name, prefix in ((label, "test_"), *served, *task.baselines()):
        rows.append((name, *(f"{m[prefix + k]:.4g}" for k in names)))
    return (f"{task.kind} on {task.name}, test split ({task.test_size_text()}):\n"
            + table(rows))


def metric_of(task) -> str:
    """The test metric skill is measured on, as the user reads it."""
    return {"test_rmse": "RMSE", "test_mase": "mean MASE over series"}.get(
        task.rank_by, task.rank_by)


def skill_lines(task, m, who) -> str:
    """The model's skill against the seasonal naive and the best baseline,
    and what each statistical baseline was (or why it was skipped)."""
    lines = [""]
    if "test_share_beats_seasonal_naive" in m:  # a panel: counted over its series
        n = int(m["test_series_scored"])
        wins = {key: round(m[f"test_share_beats_{key}"] * n)
                for key in ("seasonal_naive", "best_baseline")}
        lines.append(f"by MASE, {who} beats the seasonal naive on {wins['seasonal_naive']} "
                     f"of {n} series and its best baseline on {wins['best_baseline']} "
                     f"(each series' scores: per_series.csv in the run)")
    for key, against in (("test_skill_vs_seasonal_naive", "seasonal naive"),
                         ("test_skill_vs_best_baseline", None)):
        value = m.get(key)
        if value is None:
            continue
        if against is None:
            # "test_seasonal_naive_" -> "seasonal_naive": the baselines' names
            labels = {prefix[len("test_"):-1]: label for label, prefix in task.baselines()}
            metric = task.rank_by[len("test_"):]
            best = min(labels, key=lambda n: m.get(f"test_{n}_{metric}", float("inf")))
            against = f"the best baseline, {labels[best]}"
        lines.append(f"skill vs {against}: {value:+.3f} (on {metric_of(task)}; {who} "
                     f"{'beats' if value > 0 else 'LOSES TO'} it)")
    lines += [f"  {note}" for note in task.baseline_notes()]
    from experiments.tasks.forecast import SEARCHED

    reason = task.transforms_reason
    if reason == SEARCHED and "loss" in task.searchable:  # tune --loss search
        p = task.prepared
        lines.append(f"window {p.window}, transforms {'+'.join(p.transforms) or 'none'} "
                     f"and the head (--loss {task.loss_name}) chosen by the search, on "
                     f"validation CRPS")
    elif reason == SEARCHED:
        p = task.prepared
        lines.append(f"window {p.window} and transforms "
                     f"{'+'.join(p.transforms) or 'none'} {SEARCHED}")
    elif reason:
        lines.append(f"transforms chosen from the training rows: {reason}")
    combined = m.get("test_combined_skill_vs_best_baseline")
    if combined is not None:
        lines.append(f"skill of the served combination vs the best baseline: {combined:+.3f} "
                     f"({'beats' if combined > 0 else 'LOSES TO'} it)")
    if task.combination_verdict:
        lines.append(f"note: {task.combination_verdict}")
    lines += [f"note: {adjustment}" for adjustment in task.adjustments]
    if task.interval_note:
        lines.append(f"note: {task.interval_note}")
    return "\n".join(lines)


def cell_text(value) -> str:
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S").removesuffix(" 00:00:00")
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def last_time(history, forecaster) -> str:
    if forecaster.time_col:
        return str(history[forecaster.time_col].iloc[-1]).removesuffix("T00:00:00")
    return f"row {len(history)}"
