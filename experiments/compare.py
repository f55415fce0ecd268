"""Every family (or a chosen few) on one dataset, one run each, ranked."""

from __future__ import annotations

import dataclasses

from experiments.train import RunConfig, run_training


@dataclasses.dataclass
class Entry:
    model: str
    metrics: dict
    run_id: str | None = None
    error: str | None = None


def compare(cfg: RunConfig, models: list[str] | None = None):
    """Train each family with its default hyperparameters.

    Returns ``(entries, skipped)``: one entry per trained family (a failed
    one carries its error and the others go on), and ``(family, reason)``
    for families that cannot serve the data (e.g. ``conv_lstm`` on a series).
    """
    import zoo

    names = models or zoo.list_models()
    for name in names:
        zoo.get(name)  # unknown names fail before anything is trained
    skipped = [(n, f"needs input shaped ({', '.join(zoo.get(n).input_axes)}), "
                   f"not a series") for n in names
               if "regression" not in zoo.get(n).heads]
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
    return entries, skipped


def leaderboard(entries) -> list[tuple]:
    """Rows for a table sorted by test RMSE, baselines included as rows."""
    header = ("rank", "forecaster", "RMSE", "MAE", "MASE", "sMAPE %",
              "skill vs snaive", "run")
    done = [e for e in entries if not e.error]
    rows = []
    for e in done:
        m = e.metrics
        rows.append((e.model, m["test_rmse"], m["test_mae"], m["test_mase"],
                     m["test_smape"], f"{m['test_skill_vs_seasonal_naive']:+.3f}",
                     e.run_id[:8]))
    if done:
        m = done[0].metrics  # baselines are the same windows for every run
        for name in ("naive", "seasonal_naive"):
            p = f"test_{name}_"
            rows.append((f"({name.replace('_', ' ')})", m[p + "rmse"],
                         m[p + "mae"], m[p + "mase"], m[p + "smape"],
                         "+0.000" if name == "seasonal_naive" else
                         f"{1 - m[p + 'rmse'] / m['test_seasonal_naive_rmse']:+.3f}",
                         "baseline"))
    rows.sort(key=lambda r: r[1])
    out = [header]
    for i, r in enumerate(rows, 1):
        out.append((str(i), r[0], *(f"{v:.4g}" for v in r[1:5]), *r[5:]))
    for e in entries:
        if e.error:
            out.append(("-", e.model, "failed", "", "", "", "", e.error[:60]))
    return out
