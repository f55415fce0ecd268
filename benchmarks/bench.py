"""lstm-zoo benchmark: ``make bench`` (or ``python -m benchmarks.bench``).

Prints a table and writes the same figures to ``benchmarks/results/`` as
JSON and Markdown, with the machine, library versions and Keras backend, so
results can be compared across commits. Every timing is the median of
several timed epochs after a warm-up; ratios are measured in one process,
alternating the two sides, because shared machines are noisy.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks import report  # noqa: E402

# name, family, hyperparameters, input shape, batch, outputs
SHAPES = [
    ("lstm128", "vanilla_lstm", {"units": 128}, (50, 8), 128, 1),
    ("stacked_lstm128x2", "stacked_lstm", {"units": 128, "num_layers": 2}, (50, 8), 128, 1),
    ("bidirectional_lstm128", "bidirectional_lstm", {"units": 128}, (50, 8), 128, 1),
    ("gru128", "gru", {"units": 128}, (50, 8), 128, 1),
    ("airline_lstm32", "vanilla_lstm", {"units": 32}, (24, 1), 32, 12),
    # predict="frame": the same sigmoid head as the plain Keras and PyTorch sides.
    ("conv_lstm16", "conv_lstm", {"units": 16, "num_layers": 1, "kernel_size": 3,
                                  "predict": "frame"}, (10, 16, 16, 1), 16, 1),
    ("simple_rnn128", "simple_rnn", {"units": 128}, (50, 8), 128, 1),
    ("peephole_lstm128", "peephole_lstm", {"units": 128}, (50, 8), 128, 1),
    ("attention_lstm128", "attention_lstm", {"units": 128}, (50, 8), 128, 1),
    ("seq2seq_lstm64_h12", "seq2seq_lstm", {"units": 64}, (24, 1), 32, 12),
    ("cnn_lstm128", "cnn_lstm", {"filters": 32, "kernel_size": 3, "pool_size": 2,
                                 "units": 128}, (100, 8), 128, 1),
    ("es_rnn32_h12", "es_rnn", {"units": 32, "season_length": 12}, (24, 1), 32, 12),
]
# Families benchmarks/torch_reference.py writes in PyTorch (attention,
# seq2seq and the peephole cell have no native equivalent there).
TORCH_FAMILIES = ("vanilla_lstm", "stacked_lstm", "bidirectional_lstm", "gru", "simple_rnn",
                  "cnn_lstm", "conv_lstm")
# Rows whose "plain" side is another network: what the family costs over it.
PLAIN_IS = {"peephole_lstm128": "a plain LSTM of the same size",
            "es_rnn32_h12": "a plain LSTM of the same size"}
# What a --quick run (the test suite's smoke run) times: one large and one
# small shape. tests/e2e/test_bench.py builds every row's models instead.
QUICK_SHAPES = ("lstm128", "airline_lstm32")
# Batches per timed epoch, so that an epoch lasts a few tenths of a second
# on a 2-core CPU (shorter epochs are mostly timer noise).
BATCHES = {"lstm128": 16, "stacked_lstm128x2": 8, "bidirectional_lstm128": 12,
           "gru128": 16, "airline_lstm32": 64, "conv_lstm16": 16, "simple_rnn128": 32,
           "peephole_lstm128": 8, "attention_lstm128": 12, "seq2seq_lstm64_h12": 32,
           "cnn_lstm128": 12, "es_rnn32_h12": 64}


# === Arithmetic: training FLOPs per sample (forward x 3 for fwd + bwd) ===

def recurrent_flops(family, hp, shape):
    t, f = shape[0], shape[-1]
    u = hp["units"]
    if family == "conv_lstm":
        rows, cols = shape[1], shape[2]
        k = hp["kernel_size"]
        per_step = 2 * 4 * u * k * k * (f + u) * rows * cols
        return 3 * t * per_step
    gates = {"gru": 3, "simple_rnn": 1}.get(family, 4)
    layers = hp.get("num_layers", 1)
    directions = 2 if family == "bidirectional_lstm" else 1
    total, width = 0, f
    if family == "cnn_lstm":  # the convolution, then the LSTM over the pooled steps
        total += 2 * hp["kernel_size"] * f * hp["filters"] * t
        t, width = -(-t // hp["pool_size"]), hp["filters"]
    for _ in range(layers):
        total += directions * 2 * gates * u * (width + u) * t
        width = u * directions
    if family == "seq2seq_lstm":  # the decoder: one LSTM step per forecast step
        total += 2 * 4 * u * (1 + u) * EXTRA_STEPS.get(family, 12)
    return 3 * total


# Decoder steps of the seq2seq row (its horizon).
EXTRA_STEPS = {"seq2seq_lstm": 12}


def gemm_peak(seconds=3.0, n=2048):
    """Float32 matrix-multiply GFLOP/s with NumPy (the best of many runs)."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


# === Models: the zoo's and the same written in plain Keras ===

def plain_keras(family, hp, shape, outputs):
    import keras

    inputs = keras.Input(shape)
    if family == "conv_lstm":
        x = keras.layers.ConvLSTM2D(hp["units"], hp["kernel_size"], padding="same")(inputs)
        x = keras.layers.Conv2D(outputs * shape[-1], 3, padding="same",
                                activation="sigmoid")(x)
        x = keras.layers.Reshape((shape[1], shape[2], outputs, shape[-1]))(x)
        y = keras.layers.Permute((3, 1, 2, 4))(x)
        return keras.Model(inputs, y)
    if family in ("attention_lstm", "seq2seq_lstm"):
        # No plainer way to write them in Keras than the zoo's own graph
        # (the ratio then shows only what `train`'s compile options add).
        import zoo

        return zoo.build_model(family, shape, outputs, **hp)
    if family == "cnn_lstm":
        x = keras.layers.Conv1D(hp["filters"], hp["kernel_size"], padding="causal",
                                activation="relu")(inputs)
        x = keras.layers.MaxPooling1D(hp["pool_size"], padding="same")(x)
        x = keras.layers.LSTM(hp["units"])(x)
        return keras.Model(inputs, keras.layers.Dense(outputs)(x))
    x = inputs
    layers = hp.get("num_layers", 1)
    for i in range(layers):
        seq = i < layers - 1
        if family == "simple_rnn":
            x = keras.layers.SimpleRNN(hp["units"], return_sequences=seq)(x)
        elif family == "gru":
            x = keras.layers.GRU(hp["units"], return_sequences=seq)(x)
        elif family == "bidirectional_lstm":
            x = keras.layers.Bidirectional(
                keras.layers.LSTM(hp["units"], return_sequences=seq))(x)
        else:
            x = keras.layers.LSTM(hp["units"], return_sequences=seq)(x)
    return keras.Model(inputs, keras.layers.Dense(outputs)(x))


def data_for(model, batch, batches=8, seed=0):
    rng = np.random.default_rng(seed)
    n = batch * batches
    x = rng.random((n, *model.input_shape[1:]), dtype=np.float32)
    y = rng.random((n, *model.output_shape[1:]), dtype=np.float32)
    return x, y


class EpochTimer:
    """Wall time of each epoch of one ``fit`` call."""

    def __init__(self):
        import keras

        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.times.append(time.perf_counter() - outer._start)

        self.times = []
        self.callback = _Callback()


def fed_as(side, x, y, batch, model=None):
    """What ``fit`` is given: NumPy arrays, as a plain Keras user passes them,
    or for the ``product`` side (``model``) what ``train`` and ``tune`` pass
    (``experiments.training.feed``)."""
    if side == "product":
        from experiments.training.feed import fit_arguments

        return fit_arguments(x, y, batch,
                             steps_per_execution=model.steps_per_execution)
    return {"x": x, "y": y, "batch_size": batch}


def epoch_seconds(model, data, epochs, callbacks=()):
    timer = EpochTimer()
    model.fit(**data, epochs=epochs, verbose=0, callbacks=[timer.callback, *callbacks])
    return timer.times


def alternate(models, x, y, batch, rounds, epochs):
    """Epoch times of each model, the models taking turns in every round so
    that machine noise hits all of them alike. One warm-up fit per model
    first: Keras keeps the traced (or XLA-compiled) train function across
    ``fit`` calls, so later rounds time training only. Every side is
    shuffled each epoch, as ``fit`` does by default and ``train`` does.

    Each timed ``fit`` runs one epoch more than it times: its first epoch
    also sets up the input pipeline, a cost per ``fit`` call (once per
    ``train`` run or trial) rather than per epoch, which would otherwise
    weigh as much as training in fits this short."""
    data = {side: fed_as(side, x, y, batch, model) for side, model in models.items()}
    for side, model in models.items():
        epoch_seconds(model, data[side], 1)
    times = {side: [] for side in models}
    for _ in range(rounds):
        for side, model in models.items():
            times[side] += epoch_seconds(model, data[side], epochs + 1)[1:]
    return times


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def torch_samples_per_s(family, hp, shape, batch, outputs, batches, epochs):
    """Hand-written PyTorch on the same shape, in its own process (see
    ``benchmarks/torch_reference.py``); None without PyTorch or without a
    native PyTorch equivalent of the family."""
    if not torch_available() or family not in TORCH_FAMILIES:
        return None
    spec = {"family": family, "hp": hp, "shape": shape, "batch": batch,
            "outputs": outputs, "batches": batches, "epochs": epochs}
    done = subprocess.run([sys.executable, "-m", "benchmarks.torch_reference",
                           json.dumps(spec)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["samples_per_s"]


def jax_train_samples_per_s(name, epochs):
    """``train`` on the JAX backend for one shape, in a fresh process; None
    without JAX (``pip install -e '.[jax]'``)."""
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        return None
    env = dict(os.environ, KERAS_BACKEND="jax")
    done = subprocess.run([sys.executable, "-m", "benchmarks.backend_run", name, str(epochs)],
                          capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])["samples_per_s"]


def missing_columns(quick: bool) -> dict[str, str]:
    """Which comparison columns this run cannot fill, and why."""
    import importlib.util

    if quick:
        return {"PyTorch": "not measured in a --quick run",
                "JAX": "not measured in a --quick run"}
    missing = {}
    if not torch_available():
        from benchmarks.install_torch import MISSING

        why = "PyTorch is not installed; `make bench` installs its CPU build"
        if os.path.exists(MISSING):
            with open(MISSING) as f:
                why = f.read().strip()
        missing["PyTorch"] = why
    if importlib.util.find_spec("jax") is None:
        missing["JAX"] = "JAX is not installed; `make bench` installs it (the bench extra)"
    return missing


def compile_plain(model):
    import keras

    model.compile(keras.optimizers.Adam(1e-3), loss="mse")


def compile_product(model, loss="mse", steps_per_epoch=None):
    """Compile exactly as ``lstm-zoo train`` does for this many batches per
    epoch and its default number of epochs."""
    import keras

    from experiments.config import TRAINING_DEFAULTS
    from experiments.training.fitting import compile_fast

    compile_fast(model, keras.optimizers.Adam(1e-3), loss, steps_per_epoch,
                 TRAINING_DEFAULTS["epochs"])


def throughput(rounds=5, epochs=2, compare_others=True):
    """Samples/s of plain Keras, the zoo's model compiled plainly, and what
    ``train`` runs; alternated per round, medians of timed epochs (the first
    epoch of each fit is warm-up)."""
    import keras

    import zoo

    rows = []
    for name, family, hp, shape, batch, outputs in SHAPES:
        loss = "binary_crossentropy" if family == "conv_lstm" else "mse"
        sides = {
            "plain": lambda f=family, h=hp, s=shape, o=outputs: plain_keras(f, h, s, o),
            "zoo": lambda f=family, h=hp, s=shape, o=outputs: zoo.build_model(f, s, o, **h),
        }
        models = {}
        for side, make in sides.items():
            keras.utils.set_random_seed(0)
            models[side] = make()
            compile_plain(models[side])
        keras.utils.set_random_seed(0)
        models["product"] = zoo.build_model(family, shape, outputs, **hp)
        compile_product(models["product"], loss, BATCHES[name])
        x, y = data_for(models["zoo"], batch, BATCHES[name])
        times = alternate(models, x, y, batch, rounds, epochs)
        torch_sps = jax_sps = None
        if compare_others:
            torch_sps = torch_samples_per_s(family, hp, shape, batch, outputs,
                                            BATCHES[name], rounds * epochs)
            jax_sps = jax_train_samples_per_s(name, rounds * epochs)
        flops = recurrent_flops(family, hp, shape)
        row = {"shape": name, "family": family, "batch": batch,
               "input": "x".join(map(str, shape)), "flops_per_sample": flops}
        for side, ts in times.items():
            sps = len(x) / statistics.median(ts)
            row[f"{side}_samples_per_s"] = sps
            row[f"{side}_gflops"] = sps * flops / 1e9
        row["zoo_vs_plain"] = row["zoo_samples_per_s"] / row["plain_samples_per_s"]
        row["product_vs_plain"] = row["product_samples_per_s"] / row["plain_samples_per_s"]
        if torch_sps:
            row["torch_samples_per_s"] = torch_sps
            row["product_vs_torch"] = row["product_samples_per_s"] / torch_sps
            row["plain_vs_torch"] = row["plain_samples_per_s"] / torch_sps
        if jax_sps:
            row["jax_samples_per_s"] = jax_sps
            row["jax_vs_product"] = jax_sps / row["product_samples_per_s"]
            if torch_sps:
                row["jax_vs_torch"] = jax_sps / torch_sps
        rows.append(row)
        vs_torch = (f"  train/PyTorch {row['product_vs_torch']:.2f}x" if torch_sps else "")
        vs_torch += (f"  JAX/TF {row['jax_vs_product']:.2f}x" if jax_sps else "")
        print(f"  {name:22s} plain {row['plain_samples_per_s']:9.0f}/s  "
              f"zoo {row['zoo_vs_plain']:.3f}x  train {row['product_vs_plain']:.3f}x"
              + vs_torch, flush=True)
        del models
        keras.backend.clear_session()
        gc.collect()
    return rows


LEVERS = {
    "plain": {},
    "xla": {"jit_compile": True},
    "steps_per_execution=16": {"steps_per_execution": 16},
    "xla+steps_per_execution=16": {"jit_compile": True, "steps_per_execution": 16},
}


def levers(rounds=5, epochs=2, shapes=("airline_lstm32", "lstm128")):
    """Each speed lever alone, as a ratio to plain ``model.fit`` defaults, on
    the small airline-sized model and the 128-unit LSTM (alternated). Also
    ``unroll=True``, which is fast on CPU but rules out cuDNN on a GPU."""
    import keras

    out = []
    for name, family, hp, shape, batch, outputs in SHAPES:
        if name not in shapes:
            continue
        models = {}
        for lever, kwargs in LEVERS.items():
            keras.utils.set_random_seed(0)
            models[lever] = plain_keras(family, hp, shape, outputs)
            models[lever].compile(keras.optimizers.Adam(1e-3), loss="mse", **kwargs)
        keras.utils.set_random_seed(0)
        inputs = keras.Input(shape)
        x = keras.layers.LSTM(hp["units"], unroll=True)(inputs)
        models["unroll"] = keras.Model(inputs, keras.layers.Dense(outputs)(x))
        compile_plain(models["unroll"])
        x, y = data_for(models["plain"], batch, BATCHES[name])
        times = alternate(models, x, y, batch, rounds, epochs)
        base = statistics.median(times["plain"])
        row = {"shape": name, **{lever: base / statistics.median(ts)
                                 for lever, ts in times.items()}}
        out.append(row)
        print("  " + name + ": " + ", ".join(f"{k} {v:.2f}x" for k, v in row.items()
                                              if k != "shape"), flush=True)
        keras.backend.clear_session()
        gc.collect()
    return out


def tracking_overhead(rounds=4, epochs=20):
    """What the MLflow logging that ``train`` does costs, two ways:

    - measured inside it: the seconds spent in the logging callback's hooks
      (per-epoch buffering and the ``log_batch`` flushes, the last one at the
      end of training) as a fraction of the untracked fit time. Stable.
    - by difference: whole ``fit`` calls with and without it, alternated.
      Includes anything the callback makes Keras do, but on a shared machine
      it moves by several percent from run to run.

    Creating and closing the run happens once per run, outside ``fit``."""
    import tempfile

    import keras
    import mlflow

    import zoo
    from experiments import tracking
    from experiments.training import curves

    spent = []

    class TimedLogger(curves.MetricLogger):
        def on_epoch_end(self, epoch, logs=None):
            start = time.perf_counter()
            super().on_epoch_end(epoch, logs)
            spent.append(time.perf_counter() - start)

        def on_train_end(self, logs=None):
            start = time.perf_counter()
            super().on_train_end(logs)
            spent.append(time.perf_counter() - start)

    def fit_seconds(callbacks=()):
        start = time.perf_counter()
        model.fit(**data, epochs=epochs, verbose=0, callbacks=list(callbacks))
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        uri = tracking.init_store(f"sqlite:///{tmp}/bench.db")
        tracking.use_experiment("bench", uri)
        keras.utils.set_random_seed(0)
        model = zoo.build_model("vanilla_lstm", (24, 1), 12, units=32)
        compile_product(model, steps_per_epoch=BATCHES["airline_lstm32"])
        data = fed_as("product", *data_for(model, 32, BATCHES["airline_lstm32"]), 32,
                      model)
        model.fit(**data, epochs=1, verbose=0)  # warm-up: trace, compile
        plain, tracked = [], []
        for _ in range(rounds):
            plain.append(fit_seconds())
            with tracking.tracked_run(run_name="bench") as run:
                tracked.append(fit_seconds([TimedLogger(run.info.run_id)]))
        mlflow.set_tracking_uri("")
    p, t = statistics.median(plain), statistics.median(tracked)
    return {"epoch_s_untracked": p / epochs, "epoch_s_tracked": t / epochs,
            "overhead": t / p - 1, "epochs_per_fit": epochs,
            "logging_s_per_fit": sum(spent) / rounds,
            "logging_share": sum(spent) / rounds / p}


def tuner_overhead_and_memory(trials=30):
    """A 30-trial random search of small models: the tuner's fixed cost per
    trial beyond fit time, and resident memory after each trial."""
    import tempfile

    from experiments.config import RunConfig
    from tuning import hypermodel, search

    fit_seconds = []
    rss = []
    original_fit = hypermodel.ZooHyperModel.fit

    def timed_fit(self, hp, model, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original_fit(self, hp, model, *args, **kwargs)
        finally:
            fit_seconds.append(time.perf_counter() - start)
            rss.append(rss_mb())

    hypermodel.ZooHyperModel.fit = timed_fit
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = RunConfig(data="sine", epochs=2, patience=2, window=24, horizon=6,
                            tracking_uri=f"sqlite:///{tmp}/bench.db")
            cfg = search.SearchConfig(run=run, models=("vanilla_lstm", "gru"),
                                      max_trials=trials, directory=f"{tmp}/tuner",
                                      register=False)
            import contextlib
            import io

            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                search.run_search(cfg)
            total = time.perf_counter() - start
    finally:
        hypermodel.ZooHyperModel.fit = original_fit
    return {"trials": trials, "search_s": total, "fit_s": sum(fit_seconds),
            "overhead_s_per_trial": (total - sum(fit_seconds)) / trials,
            "rss_mb_after_trial": [round(r, 1) for r in rss],
            "rss_mb_first5_max": max(rss[:5]), "rss_mb_last5_max": max(rss[-5:])}


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def startup(repeats=3):
    """Wall time of `lstm-zoo --help` and `lstm-zoo models` in new processes."""
    out = {}
    for label, args in (("help", ["--help"]), ("models", ["models"]),
                        ("models_params", ["models", "--params"])):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "experiments.cli", *args],
                           capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        out[f"{label}_s"] = statistics.median(times)
    return out


def gpu_section():
    import keras

    from experiments.tracking import device_name

    if device_name() != "gpu":
        return {"skipped": f"no GPU visible to the {keras.config.backend()} backend"}
    import zoo

    rows = {}
    for use_cudnn in ("auto", False):
        import keras as k

        inputs = k.Input((50, 8))
        x = k.layers.LSTM(128, use_cudnn=use_cudnn)(inputs)
        model = k.Model(inputs, k.layers.Dense(1)(x))
        compile_plain(model)
        xs, ys = data_for(model, 128, batches=16)
        ts = epoch_seconds(model, fed_as("plain", xs, ys, 128), 4)[1:]
        rows[f"use_cudnn={use_cudnn}"] = len(xs) / statistics.median(ts)
    rows["cudnn_vs_generic"] = rows["use_cudnn=auto"] / rows["use_cudnn=False"]
    report = zoo.cudnn_report(zoo.build_model("vanilla_lstm", (50, 8), 1, units=128))
    rows["zoo_default_eligible"] = all(r.eligible for r in report)
    return rows


def environment():
    import keras

    versions = {}
    for pkg in ("keras", "tensorflow", "keras-tuner", "mlflow", "numpy", "pandas",
                "torch", "jax"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            pass
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{cpu}, {os.cpu_count()} cores", "python": platform.python_version(),
            "keras_backend": keras.config.backend(), "versions": versions}


def markdown(result) -> str:
    from benchmarks import search_speed, serving_speed

    env = result["environment"]
    peak = result["gemm_peak_gflops"]
    lines = [f"Benchmark of {env['date']} on {env['machine']}; Keras backend "
             f"{env['keras_backend']}; "
             + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
             f"Float32 GEMM peak (NumPy): {peak:.0f} GFLOP/s.", "",
             "| shape | plain Keras samples/s | zoo / plain | `train` samples/s | "
             "`train` / plain | PyTorch samples/s | plain / PyTorch | `train` / PyTorch "
             "| `train` GFLOP/s | % of GEMM peak |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["throughput"]:
        torch_cells = (f"{r['torch_samples_per_s']:.0f} | {r['plain_vs_torch']:.2f} | "
                       f"{r['product_vs_torch']:.2f}" if "torch_samples_per_s" in r
                       else "- | - | -")
        lines.append(
            f"| {r['shape']} ({r['input']}, batch {r['batch']}) | "
            f"{r['plain_samples_per_s']:.0f} | {r['zoo_vs_plain']:.3f} | "
            f"{r['product_samples_per_s']:.0f} | {r['product_vs_plain']:.2f} | "
            f"{torch_cells} | "
            f"{r['product_gflops']:.1f} | {100 * r['product_gflops'] / peak:.1f}% |")
    if any("jax_samples_per_s" in r for r in result["throughput"]):
        lines += ["", "`train` on the JAX backend (`KERAS_BACKEND=jax`), same models and "
                  "settings, in its own process:", "",
                  "| shape | JAX samples/s | JAX / TensorFlow `train` | JAX / PyTorch |",
                  "| --- | ---: | ---: | ---: |"]
        for r in result["throughput"]:
            if "jax_samples_per_s" in r:
                lines.append(f"| {r['shape']} | {r['jax_samples_per_s']:.0f} | "
                             f"{r['jax_vs_product']:.2f} | "
                             f"{r.get('jax_vs_torch', float('nan')):.2f} |")
    for shape, other in PLAIN_IS.items():
        lines += ["", f"{shape}: its plain side is {other}, so zoo / plain is the "
                  "family's cost over it."]
    for column, why in result.get("missing", {}).items():
        lines += ["", f"{column} columns: missing: {why}."]
    if result.get("levers"):
        names = [k for k in result["levers"][0] if k != "shape"]
        lines += ["", "Levers alone, plain Keras model, ratio to plain `fit` defaults:", "",
                  "| shape | " + " | ".join(names) + " |",
                  "| --- |" + " ---: |" * len(names)]
        for r in result["levers"]:
            lines.append(f"| {r['shape']} | " + " | ".join(f"{r[n]:.2f}" for n in names)
                         + " |")
    t = result["tracking"]
    lines += ["", f"MLflow tracking: {100 * t['logging_share']:.1f}% of fit time spent in the "
              f"logging callback ({1000 * t['logging_s_per_fit']:.0f} ms per "
              f"{t['epochs_per_fit']}-epoch fit of "
              f"{1000 * t['epoch_s_untracked'] * t['epochs_per_fit']:.0f} ms, final flush "
              f"included); whole fits tracked vs untracked differ by "
              f"{100 * t['overhead']:+.1f}% (machine noise is several %)."]
    if "tuner" in result:
        u = result["tuner"]
        lines += [f"Tuner: {u['overhead_s_per_trial']:.2f} s per trial beyond fit "
                  f"time ({u['trials']} trials, {u['search_s']:.0f} s in all); "
                  f"RSS max over trials 1-5 {u['rss_mb_first5_max']:.0f} MB, over "
                  f"the last 5 {u['rss_mb_last5_max']:.0f} MB."]
    if "search" in result:
        lines += ["", *search_speed.markdown(result["search"])]
    if "serving" in result:
        lines += ["", *serving_speed.markdown(result["serving"])]
    if "panels" in result:
        from benchmarks import panel_scale

        lines += ["", *panel_scale.markdown(result["panels"])]
    if "panel_peers" in result:
        from benchmarks import panel_peers

        lines += ["", *panel_peers.markdown(result["panel_peers"])]
    s = result["startup"]
    lines += ["", f"Start-up: `lstm-zoo --help` {s['help_s']:.2f} s, `lstm-zoo models` "
              f"{s['models_s']:.2f} s, `lstm-zoo models --params` {s['models_params_s']:.2f} s."]
    g = result["gpu"]
    lines += ["GPU: " + (g["skipped"] if "skipped" in g else json.dumps(g))]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--shapes", default="",
                        help="comma-separated throughput rows to run (default all), "
                             "e.g. lstm128,peephole_lstm128; with it only the "
                             "throughput table is measured")
    parser.add_argument("--quick", action="store_true",
                        help="two shapes, fewer rounds, no 30-trial search, no --workers "
                             "search, no PyTorch or JAX columns (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:  # a smoke test: two batches per epoch says nothing about speed
        BATCHES.update(dict.fromkeys(BATCHES, 2))
        if not args.shapes:
            SHAPES[:] = [row for row in SHAPES if row[0] in QUICK_SHAPES]
    if args.shapes:
        wanted = args.shapes.split(",")
        unknown = sorted(set(wanted) - {row[0] for row in SHAPES})
        if unknown:
            parser.error(f"unknown shape {unknown[0]!r}; choose from {[r[0] for r in SHAPES]}")
        SHAPES[:] = [row for row in SHAPES if row[0] in wanted]
    result = {"environment": environment(), "missing": missing_columns(args.quick)}
    print(f"machine: {result['environment']['machine']}; backend "
          f"{result['environment']['keras_backend']}", flush=True)
    result["gemm_peak_gflops"] = gemm_peak(1.0 if args.quick else 3.0)
    print(f"GEMM peak {result['gemm_peak_gflops']:.0f} GFLOP/s\nthroughput:", flush=True)
    result["throughput"] = throughput(rounds=1 if args.quick else 5,
                                      epochs=1 if args.quick else 2,
                                      compare_others=not args.quick)
    if args.shapes:
        print(json.dumps(result["throughput"], indent=1, default=float))
        return 0
    print("levers:", flush=True)
    result["levers"] = (levers(rounds=1, epochs=1, shapes=("airline_lstm32",)) if args.quick
                        else levers())
    result["tracking"] = tracking_overhead(rounds=1 if args.quick else 6,
                                           epochs=3 if args.quick else 20)
    if not args.quick:
        print("30-trial search...", flush=True)
        result["tuner"] = tuner_overhead_and_memory(30)
    print("search throughput (tune vs a plain script)...", flush=True)
    from benchmarks import search_speed, serving_speed

    # --quick: no --workers side (three more processes; tests/e2e/test_distributed
    # runs the launcher), and nothing after the trials (no refit, no
    # combination: the smoke test times trials; tests/tuning covers the rest).
    result["search"] = (search_speed.search_throughput(
                            2, workers=(), extra=("--epochs", "2", "--no-refit",
                                                  "--combine", "none"))
                        if args.quick else search_speed.search_throughput(12))
    print("serving...", flush=True)
    result["serving"] = (serving_speed.serving_speed(repeats=5, batch=8, process_repeats=1,
                                                     workers=1, clients=(1, 2), seconds=1.5,
                                                     max_series=20, epochs=2)
                         if args.quick else serving_speed.serving_speed())
    print("panels: windows drawn by index vs materialised...", flush=True)
    from benchmarks import panel_scale

    result["panels"] = panel_scale.panel_scale(quick=args.quick)
    print("panels: train against a PyTorch loop and neuralforecast...", flush=True)
    from benchmarks import panel_peers

    result["panel_peers"] = panel_peers.panel_peers(quick=args.quick)
    result["startup"] = startup(1 if args.quick else 3)
    result["gpu"] = gpu_section()
    report.write(args.out, "latest", result, markdown(result))
    print(f"written: {args.out}/latest.json and latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
