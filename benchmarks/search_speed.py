"""Search throughput: ``lstm-zoo tune`` against the search a user would write.

The ``make demo`` search (airline, every forecasting family, random search,
12 trials, the same epochs and early stopping) runs two ways in one
benchmark run:

- ``lstm-zoo tune`` in its own process (and with ``--workers`` where asked);
- a plain script the way the keras-io examples teach, replaying the very
  same trial configurations (read back from the tuner's folder): the trial's
  windows and transforms, ``zoo.build_model`` with the task's builder
  arguments (and ``zoo.start_autoregressive``), ``model.fit`` on arrays with
  ``EarlyStopping``, MLflow's Keras autolog for each trial, and
  ``clear_session`` between trials.

Both are scored the way the search compares trials: the best validation
RMSE in the data's own units.
"""

from __future__ import annotations

import glob
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

DEMO = ["--data", "airline", "--models", "all", "--tuner", "random"]


def run_tune(trials: int, folder: str, workers: int | None = None,
             extra: tuple[str, ...] = ()) -> dict:
    """``lstm-zoo tune`` as ``make demo`` runs it, in a new process with its
    own MLflow store under ``folder``: the wall time of its trials (what
    the progress lines call elapsed), of the whole command, and each
    trial's configuration and score."""
    name = f"bench-w{workers or 1}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder}/{name}.db",
               TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "experiments.cli", "tune", *DEMO,
               "--max-trials", str(trials), "--name", name,
               "--directory", f"{folder}/tuner", *extra]
    if workers:
        command += ["--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"lstm-zoo tune failed:\n{done.stderr[-3000:]}")
    configs = []
    for path in sorted(glob.glob(f"{folder}/tuner/{name}/trial_*/trial.json")):
        with open(path) as f:
            trial = json.load(f)
        if trial["status"] == "COMPLETED" and trial.get("score") is not None:
            configs.append({"hp": trial["hyperparameters"]["values"],
                            "score": trial["score"]})
    if not configs:
        raise RuntimeError("the benchmark's search completed no trial")
    return {"workers": workers or 1, "trials": len(configs), "wall_s": wall,
            "trials_s": trials_wall(env["MLFLOW_TRACKING_URI"]),
            "best_val_rmse": min(c["score"] for c in configs), "configs": configs}


def trials_wall(uri: str) -> float:
    """Seconds from the first trial's start to the last one's end, from
    the trials' MLflow runs (the same clock for one process or several)."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    runs = [r for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id], max_results=1000)
            if "mlflow.parentRunId" in r.data.tags and r.info.end_time]
    if not runs:
        raise RuntimeError("the benchmark's search logged no finished trial")
    return (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000


def plain_replay(configs: list[dict], folder: str, epochs: int | None = None) -> dict:
    """The same trial configurations trained the plain way, in this process:
    per trial a fresh model on its windows, ``model.fit`` on arrays with
    ``EarlyStopping`` (restoring the best weights) and, for a "plateau"
    trial, ``ReduceLROnPlateau``, inside an MLflow run with
    ``mlflow.keras.autolog()``; ``clear_session`` between trials."""
    import keras
    import mlflow
    import numpy as np

    import zoo
    from experiments.config import RunConfig
    from experiments.tasks import load_tasks

    run, tasks = load_tasks(RunConfig(data="airline", epochs=epochs), "tune")
    base = tasks[-1]
    mlflow.set_tracking_uri(f"sqlite:///{folder}/plain.db")
    mlflow.set_experiment("plain-replay")
    mlflow.keras.autolog(log_models=False, silent=True)
    scores = []
    start = time.perf_counter()
    for config in configs:
        hp = config["hp"]
        keras.backend.clear_session()
        family = hp["family"]
        task = base.variant(window=hp["window"], transforms=hp["transforms"])
        prefix = f"{family}/"
        arch = {k[len(prefix):]: v for k, v in hp.items() if k.startswith(prefix)}
        # The same model as the trial's: with the task's builder arguments
        # (the autoregressive term, started at its least-squares fit).
        model = zoo.build_model(family, task.input_shape, task.outputs, **arch,
                                **base.builder_arguments(family))
        zoo.start_autoregressive(model, task.train.x, task.train.y)
        decay = hp.get("weight_decay", 0.0)
        optimizer = (keras.optimizers.AdamW(hp["learning_rate"], weight_decay=decay)
                     if decay else keras.optimizers.Adam(hp["learning_rate"]))
        model.compile(optimizer, loss=task.loss)
        callbacks = [keras.callbacks.EarlyStopping(patience=run.patience,
                                                   restore_best_weights=True)]
        if hp.get("lr_schedule") == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(
                factor=0.5, patience=max(2, run.patience // 3),
                min_lr=hp["learning_rate"] / 64))
        with mlflow.start_run():
            model.fit(task.train.x, task.train.y, batch_size=hp["batch_size"],
                      epochs=run.epochs, validation_data=(task.val.x, task.val.y),
                      callbacks=callbacks, verbose=0)
        p = task.prepared
        pred = p.to_original(model.predict(p.val.x, verbose=0), p.val.origins)
        scores.append(float(np.sqrt(np.mean((pred - p.truth(p.val)) ** 2))))
    seconds = time.perf_counter() - start
    mlflow.keras.autolog(disable=True)
    finite = [s for s in scores if math.isfinite(s)]
    return {"trials": len(configs), "trials_s": seconds, "epochs": run.epochs,
            "patience": run.patience, "val_rmse": scores,
            "best_val_rmse": min(finite) if finite else float("nan")}


def search_throughput(trials: int = 12, workers: tuple[int, ...] = (2,),
                      extra: tuple[str, ...] = ()) -> dict:
    """Both sides (and ``tune --workers N`` for each N in ``workers``) in
    one benchmark run; trials per hour from the trials' wall time.
    ``extra``: more ``tune`` arguments (the smoke test's ``--epochs 2``),
    which the plain script follows too."""
    with tempfile.TemporaryDirectory() as folder:
        tune = run_tune(trials, folder, extra=extra)
        print(f"  tune: {tune['trials']} trials in {tune['trials_s']:.0f} s", flush=True)
        parallel = []
        for n in workers:
            parallel.append(run_tune(trials, folder, workers=n, extra=extra))
            print(f"  tune --workers {n}: {parallel[-1]['trials_s']:.0f} s", flush=True)
        epochs = int(extra[extra.index("--epochs") + 1]) if "--epochs" in extra else None
        plain = plain_replay(tune["configs"], folder, epochs)
        print(f"  plain script: {plain['trials_s']:.0f} s", flush=True)
    rows = [{"side": "plain script (fit + autolog)", **plain},
            {"side": "lstm-zoo tune", **_without(tune, "configs")},
            *({"side": f"lstm-zoo tune --workers {p['workers']}", **_without(p, "configs")}
              for p in parallel)]
    for row in rows:
        row["trials_per_hour"] = 3600 * row["trials"] / row["trials_s"]
        row["vs_plain"] = row["trials_per_hour"] / rows[0]["trials_per_hour"]
    # Trial by trial (the same configuration on both sides): single trainings
    # of small models differ by tens of % with the order of their batches,
    # so the median ratio says more about a systematic difference than the
    # two bests do.
    ratios = [c["score"] / p for c, p in zip(tune["configs"], plain["val_rmse"], strict=True)
              if math.isfinite(p) and p > 0]
    return {"trials": trials, "rows": rows,
            "median_trial_rmse_ratio": statistics.median(ratios) if ratios else None}


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


def markdown(result: dict) -> list[str]:
    lines = [f"Search throughput: the `make demo` search ({result['trials']} trials on "
             "airline, same epochs and early stopping), against the same trial "
             "configurations replayed by a plain script:", "",
             "| side | trials | trials' wall s | whole command s | trials per hour | "
             "vs plain | best val RMSE |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        whole = f"{r['wall_s']:.0f}" if "wall_s" in r else "-"
        lines.append(f"| {r['side']} | {r['trials']} | {r['trials_s']:.0f} | {whole} | "
                     f"{r['trials_per_hour']:.0f} | {r['vs_plain']:.2f} | "
                     f"{r['best_val_rmse']:.2f} |")
    lines += ["", "Trials' wall time: from the first trial's start to the last one's end "
              "(MLflow's clock); the whole command adds start-up, baselines, the test "
              "evaluation, the refit and registering the model."]
    if result.get("median_trial_rmse_ratio"):
        lines += ["", "Trial by trial, the same configuration: median val RMSE of `tune` / "
                  f"plain script {result['median_trial_rmse_ratio']:.2f}."]
    return lines


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    out = search_throughput(n)
    print("\n".join(markdown(out)))
