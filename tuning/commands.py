"""The ``tune`` command: a tracked hyperparameter search from the command line.

``experiments.cli`` builds the ``lstm-zoo`` parser and finds this command
group through the ``lstm_zoo.commands`` entry point (pyproject.toml), so
``experiments`` never imports ``tuning``: the search sits on top of the
stages it drives. Heavy imports happen inside the handler.
"""

from __future__ import annotations

import os

from experiments.cli import add_run_flags, metrics_table, run_config, skill_lines, table


def add_commands(sub) -> None:
    """Add ``tune`` to the ``lstm-zoo`` subcommands ``sub``."""
    p = sub.add_parser("tune", help="hyperparameter search over the zoo, "
                       "tracked in MLflow and resumable")
    p.add_argument("--models", help="all (default) or a comma-separated list")
    p.add_argument("--tuner", default="random",
                   help="random (default), bayesian, hyperband or grid")
    p.add_argument("--max-trials", type=int, default=None,
                   help="trials to run (default 10); not with hyperband, whose brackets "
                        "fix the number of trials (see --hyperband-iterations)")
    p.add_argument("--hyperband-iterations", type=int, default=1, metavar="N",
                   help="with --tuner hyperband: full sweeps over its brackets (default 1); "
                        "each trains about --epochs x log3(--epochs)^2 epochs in all")
    p.add_argument("--objective", default="val_loss",
                   help="what ranks trials: val_loss (default), loss or val_rmse (the "
                        "validation RMSE in the data's units, which a search of the window "
                        "or transforms uses in place of val_loss), or val_crps (the "
                        "validation CRPS, which --loss search uses); never the test split")
    p.add_argument("--name", help="search name, also its folder under --directory; the "
                   "same name resumes it. Letters, digits, '-', '_' and '.' only")
    p.add_argument("--directory", default="tuner",
                   help="where searches keep their state (default ./tuner)")
    p.add_argument("--fresh", action="store_true",
                   help="discard a previous search of the same name (only a folder "
                        "lstm-zoo made as a search folder is ever deleted)")
    d = p.add_argument_group("several processes (keras-tuner's chief and workers)")
    d.add_argument("--workers", type=int, metavar="N",
                   help="run the search in N worker processes on this machine, plus a "
                        "chief (one GPU per worker where there are GPUs)")
    d.add_argument("--role", choices=("chief", "worker"),
                   help="one part of a search across machines; give every part the "
                        "same arguments")
    d.add_argument("--bind", default="127.0.0.1:8470", metavar="HOST:PORT",
                   help="with --role chief: where to listen (default 127.0.0.1:8470, "
                        "this machine only)")
    d.add_argument("--chief", metavar="HOST:PORT",
                   help="with --role worker: where the chief listens")
    d.add_argument("--connect-timeout", type=float, default=60.0, metavar="S",
                   help="a worker gives up on an unreachable chief after S seconds "
                        "(default 60)")
    d.add_argument("--worker-timeout", type=float, default=60.0, metavar="S",
                   help="the chief gives the trial of a worker silent for S seconds to "
                        "another worker (default 60)")
    d.add_argument("--expect-workers", type=int, metavar="N",
                   help="with --role chief: hand out no trial until N workers have "
                        "asked for one (at most half of --connect-timeout), so that "
                        "a short search is spread over all of them")
    p.add_argument("--ensemble", type=int, default=1, metavar="K",
                   help="serve (and register) the mean of K models' forecasts, each "
                        "refit unless --no-refit; its test metrics are logged beside the "
                        "best model's as ensemble_test_* (forecasting; default 1: the best "
                        "model alone)")
    p.add_argument("--ensemble-of", choices=("trials", "seeds"), default="trials",
                   help="trials: the top K trials, whatever window and transforms each "
                        "saw (each reads the history through its own; seeds of the best "
                        "configuration fill any place left); seeds: the best "
                        "configuration from K seeds (default trials)")
    add_run_flags(p)
    p.set_defaults(func=cmd_tune)


def _without_workers(argv):
    """The tune arguments minus ``--workers N`` (what each process receives)."""
    out, skip = [], False
    for item in argv[argv.index("tune") + 1:]:
        if skip:
            skip = False
        elif item == "--workers":
            skip = True
        elif not item.startswith("--workers="):
            out.append(item)
    return out


def cmd_tune(args) -> int:
    from tuning.search import SearchConfig, run_search
    from tuning.tracked import at_epoch_cap, trial_params

    # On a tracking server MLflow prints a link for every run it closes: one per
    # trial here. The search prints its own progress.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    if args.name is not None:
        from tuning.folder import check_name

        check_name(args.name)  # before anything: the name decides what --fresh deletes
    if args.workers is not None:
        from experiments import tracking
        from tuning import distributed

        if args.role:
            raise ValueError("--workers starts its own chief and workers; leave out --role")
        # The store is created once here, before several processes open it.
        tracking.init_store(tracking.resolve_uri(args.tracking_uri))
        with tracking.terminate_as_exception():  # SIGTERM reaches every process
            return distributed.launch(_without_workers(args.argv), args.workers,
                                      worker_timeout=args.worker_timeout)
    address = None
    if args.role:
        from tuning import distributed

        if args.role == "chief":
            address = distributed.parse_address(args.bind, "--bind")
        elif args.role == "worker":
            if not args.chief:
                raise ValueError("--role worker needs --chief HOST:PORT (where the chief "
                                 "listens)")
            address = distributed.parse_address(args.chief, "--chief")
    models = () if args.models in (None, "all") else tuple(args.models.split(","))
    cfg = SearchConfig(
        run=run_config(args), models=models, tuner=args.tuner,
        max_trials=args.max_trials, hyperband_iterations=args.hyperband_iterations,
        objective=args.objective,
        name=args.name, directory=args.directory, fresh=args.fresh,
        role=args.role, address=address, connect_timeout=args.connect_timeout,
        worker_timeout=args.worker_timeout, data_parallel=bool(args.data_parallel),
        ensemble=args.ensemble, ensemble_of=args.ensemble_of,
        expect_workers=args.expect_workers or 0)
    result = run_search(cfg)
    if args.role == "worker":
        return 0
    done = [t for t in result.trials if t["status"] == "COMPLETED"]
    done.sort(key=lambda t: t["score"])
    print(f"\nbest trials ({len(done)} of {len(result.trials)} completed, "
          f"ranked by {result.objective} on the validation split):")
    skip = {"trial", "status", "score", "epochs", "best_epoch", "seconds"}
    rows = [("rank", "trial", result.objective, "hyperparameters")]
    for i, t in enumerate(done[:5], 1):
        hp = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in t.items() if k not in skip and v == v
                      and v is not None)
        rows.append((str(i), t["trial"], f"{t['score']:.4g}", hp))
    print(table(rows))
    epochs = result.epochs
    capped = at_epoch_cap(result.trials, epochs)
    print(f"{len(capped)} of {len(done)} completed trials were still improving at the "
          f"epoch limit ({epochs})" + ("; a larger --epochs may find better" if capped
                                       else ""))

    best = " ".join(f"{k}={_short(v)}" for k, v in
                    trial_params(result.best_hyperparameters).items())
    print(f"\nbest configuration: {best}")
    print(metrics_table(result.task, result.test_metrics, "best model"))
    print(skill_lines(result.task, result.test_metrics, "the best model"))
    if result.ensemble_metrics:
        m = result.ensemble_metrics
        shown = "  ".join(f"{k} {m['test_' + k]:.4g}" for k in result.task.metrics_shown)
        print(f"ensemble of {args.ensemble} {args.ensemble_of}: {shown}; skill vs "
              f"the best baseline {m['test_skill_vs_best_baseline']:+.3f}")
    combined = combination_line(result)
    if combined:
        print(combined)
    if result.refit:
        print("(test metrics of the best model trained on the training split; the "
              "model served was then refit on all the data)")
    if result.registered:
        name, version = result.registered
        use = (f"lstm-zoo forecast --model models:/{name}@best"
               if result.task.kind in ("forecast", "panel")
               else f"mlflow.pyfunc.load_model('models:/{name}@best')")
        print(f"\nregistered as {name} version {version} (alias 'best'); use it with\n"
              f"  {use}")
    print("Open the MLflow UI with `lstm-zoo ui` (or `make ui`) to compare "
          "the trials.")
    return 0


def combination_line(result) -> str | None:
    """What the served combination is (the networks alone, with the
    statistical models at a weight, or the statistical models alone), and
    how it scored on test; None without a combination."""
    scores = result.ensemble_metrics or result.test_metrics
    if "test_combined_skill_vs_best_baseline" not in scores:
        return None
    weight = scores.get("combined_network_weight", 1.0)
    what = ("the statistical models alone: the networks added nothing on validation"
            if weight == 0 else "the networks alone" if weight == 1
            else f"the networks at weight {weight:.2f} with the statistical models")
    return (f"served ({what}; weights fitted on validation): test RMSE "
            f"{scores['test_combined_rmse']:.4g}; skill vs the best baseline "
            f"{scores['test_combined_skill_vs_best_baseline']:+.3f}")


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value
