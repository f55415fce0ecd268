"""After the search: the best configuration refit on all the data, and
ensembles of the top trials (or seeds), as ``Member``s of the served model."""

from __future__ import annotations

from tuning.settings import SearchConfig


def candidates(hypermodel, best, task) -> list:
    """The trials an ensemble may take, best first: those with the best
    trial's head (when the search chose it), and for a task whose members
    must read the same windows (``ensembles_mix_data`` false: a panel's one
    served reader) with its data settings too."""
    if not hypermodel.data:
        return list(best)
    # Members with other heads forecast other things (quantiles, a mean):
    # never mixed (tune --loss search).
    shared = (("loss",) if task.ensembles_mix_data else tuple(hypermodel.data_space))
    chosen = {k: v for k, v in hypermodel.data_of(best[0].hyperparameters).items()
              if k in shared}
    return [t for t in best if all(hypermodel.data_of(t.hyperparameters)[k] == v
                                   for k, v in chosen.items())]


def ensemble(cfg: SearchConfig, tuner, hypermodel, best, task, model, served, refit):
    """``cfg.ensemble`` models as one (the mean of their forecasts), scored
    on the test split beside the best model (``ensemble_test_rmse``...) and,
    with refit, each refit on all the data.

    The members: the best trial's model, then (``ensemble_of="trials"``) the
    next best trials, whatever window and transforms they saw (each member
    reads the raw history through its own preprocessing, and the ensemble
    averages forecasts in the data's units), then, for the places still
    open or with ``ensemble_of="seeds"``, the best configuration trained
    again from other seeds for as many epochs as its trial kept.

    Why across windows and transforms: on a short series validation cannot
    tell which of them will forecast best, and their errors differ. On
    airline 12 steps ahead, the linear autoregressions of the 18 searched
    settings score 17.3 to 61.9 on the test months, and their mean 13.7.

    Returns ``(served members, train-only members, the ensemble's test
    metrics, its description)``; the members are ``Member``s (see
    ``ForecastTask.forecast``).
    """
    import warnings

    import mlflow

    from experiments.forecasting.ensembles import Member
    from tuning.tracked import trial_params

    top = best[0]
    trials = [] if cfg.ensemble_of == "seeds" else best[1:cfg.ensemble]
    seeds = [cfg.run.seed + i for i in range(1, cfg.ensemble - len(trials))]

    def task_of(trial):
        return hypermodel.tasks_for(trial.hyperparameters)[-1] if hypermodel.data else task

    def member(model, own):  # the member as ForecastTask.forecast takes it
        return Member(model, None if own is task else own)

    members = [Member(model)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading")
        members += [member(tuner.load_model(t), task_of(t)) for t in trials]
    members += [Member(train_again(hypermodel, top, task.train, seed)) for seed in seeds]
    scores = task.evaluate(members)
    mlflow.log_metrics({f"ensemble_{k}": v for k, v in scores.items()})
    # Each member after the first, as (its trial, the seed it was trained from).
    origins = [(t, None) for t in trials] + [(top, seed) for seed in seeds]
    served_members = [Member(served)]
    for (t, seed), m in zip(origins, members[1:], strict=True):
        own = task_of(t)
        network = m.network
        if refit:
            network = refit_best(cfg, hypermodel, t, own, network, log=False, seed=seed)[0]
        served_members.append(member(network, own))
    families = [trial_params(t.hyperparameters.values).get(
        "family", hypermodel.families[0]) for t in [top, *trials]]
    families += [families[0]] * len(seeds)

    def settings(trial):  # what a trial saw, where the search chose it
        chosen = ", ".join(f"{k} {trial.hyperparameters.get(k)}"
                           for k in hypermodel.data_space)
        return f" ({chosen})" if chosen else ""

    parts = [f"trial {t.trial_id}{settings(t)}" for t in [top, *trials]]
    parts += [f"seed {s} of trial {top.trial_id}" for s in seeds]
    description = f"ensemble of {len(members)} ({', '.join(families)})"
    mlflow.set_tags({"ensemble": description, "ensemble_members": "; ".join(parts),
                     "ensemble_trials": ",".join(t.trial_id for t in [top, *trials])})
    return served_members, members, scores, description


def train_again(hypermodel, trial, data, seed):
    """The configuration of ``trial`` trained from ``seed`` on ``data`` (a
    ``Split``) for as many epochs as the trial kept: a seed member, a refit."""
    import keras

    from experiments.training.fitting import fit_epochs

    keras.utils.set_random_seed(seed)
    hp = trial.hyperparameters
    return fit_epochs(hypermodel.build(hp), data, hp.get("batch_size"),
                      int(trial.best_step or 0) + 1, callbacks=hypermodel.schedule(hp, "loss"))


def refit_best(cfg: SearchConfig, hypermodel, trial, task, model, log=True, seed=None):
    """The model to serve, and whether it was refit: the best configuration
    fit again on all the data (training, validation and test) for as many
    epochs as its trial kept, unless ``--no-refit`` or the task has no
    series to refit on."""
    import keras
    import mlflow

    refit = task.refits and cfg.run.refit is not False
    if log:
        mlflow.set_tags({"refit": str(refit).lower(), "test_metrics_of": (
            "the best model trained on the training split; the served model is its "
            "refit on all the data" if refit else "the served model")})
    if not refit:
        return model, False
    keras.backend.clear_session()
    refitted = train_again(hypermodel, trial, task.all_windows(),
                            cfg.run.seed if seed is None else seed)
    if log:
        mlflow.log_metric("refit_epochs", int(trial.best_step or 0) + 1)
    return refitted, True
