"""`lstm-zoo train` and `lstm-zoo compare`."""

from __future__ import annotations

from experiments.cli.flags import run_config
from experiments.cli.output import metrics_table, skill_lines, table


def cmd_train(args) -> int:
    from experiments.train import run_training

    cfg = run_config(args, model=args.model, run_name=args.run_name, verbose=2)
    result = run_training(cfg)
    if result.run_id is None:
        from experiments.training.strategy import cluster

        print(f"\n{cluster().describe()} trained its share; the chief "
              f"({cluster().addresses[0]}) records the run in MLflow")
        return 0
    print()
    print(metrics_table(result.task, result.metrics, cfg.model))
    print(skill_lines(result.task, result.metrics, "the model"))
    for repair in result.task.repairs:
        print(f"note: {repair}")
    if result.registered:
        name, version, note = result.registered
        if note:
            print(f"note: {note}")
        print(f"\nregistered as {name} version {version} (alias 'best')")
    print(f"\nrun {result.run_id}; see it with `lstm-zoo ui`")
    return 0


def cmd_compare(args) -> int:
    from experiments.compare import compare, leaderboard

    cfg = run_config(args)
    models = args.models.split(",") if args.models and args.models != "all" else None
    results, skipped, task = compare(cfg, models)
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    print()
    print(table(leaderboard(results, task)))
    failed = [r for r in results if r.error]
    print("\nOpen the MLflow UI with `lstm-zoo ui` (or `make ui`) to compare "
          "the runs side by side.")
    return 1 if failed else 0
