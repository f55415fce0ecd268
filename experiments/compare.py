"""Every family (or a chosen few) on one dataset, one run each, ranked."""

from __future__ import annotations

import dataclasses

from experiments.config import RunConfig
from experiments.tasks import load_tasks
from experiments.train import run_training


@dataclasses.dataclass
class Entry:
    model: str
    metrics: dict
    run_id: str | None = None
    error: str | None = None


def compare(cfg: RunConfig, models: list[str] | None = None):
    """Train each family with its default hyperparameters.

    Returns ``(entries, skipped, task)``: one entry per trained family (a
    failed one carries its error and the others go on), ``(family, reason)``
    for families that cannot serve the task (e.g. ``conv_lstm`` on a
    series), and the task itself.
    """
    import zoo
    from experiments.training.strategy import check_cluster

    check_cluster(cfg.data_parallel, "compare")  # one process per model, not a cluster
    task = load_tasks(cfg, "compare")[1][-1]  # bad data fails here, before any run
    names = models or zoo.list_models()
    for name in names:
        zoo.get(name)  # unknown names fail before anything is trained
    skipped = [(n, f"cannot serve the {task.kind} task: {task.unusable(n)}")
               for n in names if task.unusable(n)]
    entries = []
    for name in names:
        if any(name == s for s, _ in skipped):
            continue
        run_cfg = dataclasses.replace(cfg, model=name, run_name=name)
        try:
            result = run_training(run_cfg)
        except (KeyboardInterrupt, SystemExit):
            raise
        except ValueError:
            raise  # bad data or settings: the same for every family
        except Exception as err:  # one family failing must not stop the rest
            entries.append(Entry(name, {}, error=f"{type(err).__name__}: {err}"))
            continue
        entries.append(Entry(name, result.metrics, result.run_id))
    return entries, skipped, task


def leaderboard(entries, task) -> list[tuple]:
    """Rows for a table sorted by the task's ranking metric (lower is
    better), baselines included as rows."""
    shown = task.metrics_shown
    rank = task.rank_by[len("test_"):]
    order = [rank, *[k for k in shown if k != rank]]
    done = [e for e in entries if not e.error]
    # Forecasts: each model's skill against the best baseline (by the
    # ranking metric); a panel's: the series it beats that baseline on too.
    skill = bool(done) and "test_skill_vs_best_baseline" in done[0].metrics
    won = bool(done) and "test_share_beats_best_baseline" in done[0].metrics
    # Intervals: coverage and M4's MSIS at the lowest level scored.
    levels = sorted(int(k.rsplit("_", 1)[1]) for k in (done[0].metrics if done else {})
                    if k.startswith("test_msis_"))
    level = levels[0] if levels else None
    # The whole predictive distribution: the CRPS (metrics.interval_crps).
    crps = bool(done) and "test_scaled_crps" in done[0].metrics
    extra = ((("skill",) if skill else ()) + (("series won",) if won else ())
             + ((f"{level}% covered", f"MSIS {level}%") if level else ())
             + (("CRPS",) if crps else ()))

    def extras(m):
        cells = (f"{m['test_skill_vs_best_baseline']:+.3f}",) if skill else ()
        if won:
            n = int(m["test_series_scored"])
            cells += (f"{round(m['test_share_beats_best_baseline'] * n)}/{n}",)
        if level:
            cells += (f"{m.get(f'test_coverage_{level}', float('nan')):.2f}",
                      f"{m.get(f'test_msis_{level}', float('nan')):.4g}")
        if crps:
            cells += (f"{m.get('test_scaled_crps', float('nan')):.4g}",)
        return cells

    header = ("rank", "model", *order, *extra, "run")
    rows = [(e.model, *(e.metrics[f"test_{k}"] for k in order), *extras(e.metrics),
             e.run_id[:8]) for e in done]
    if done:
        m = done[0].metrics  # baselines are the same test data for every run
        for label, prefix in task.baselines():
            rows.append((f"({label})", *(m[prefix + k] for k in order),
                         *("" for _ in extra), "baseline"))
    rows.sort(key=lambda r: r[1])
    out = [header]
    for i, r in enumerate(rows, 1):
        tail = 1 + len(extra)
        out.append((str(i), r[0], *(f"{v:.4g}" for v in r[1:-tail]), *r[-tail:]))
    for e in entries:
        if e.error:
            out.append(("-", e.model, "failed", *[""] * (len(order) - 1), e.error[:60]))
    return out
