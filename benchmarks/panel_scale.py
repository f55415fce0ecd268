"""A panel's windows drawn by index against the same windows materialised.

``train`` on a panel draws each batch from the series by an index of window
starts (``experiments.forecasting.window_index``); before, every window was
copied into one ``(n, window, 1)`` array. On a generated panel:

- **throughput**: training windows per second, the two feeds taking turns
  on one panel small enough for both (the same model, batch size and
  epochs; the first epoch of each fit, which builds the pipeline and traces
  the model, is not timed);
- **memory**: the peak RSS of a fresh process that prepares the panel and
  trains one epoch (its own ``VmHWM``), for each feed on 1,000 series
  x 1,000 steps, and drawn by index on 10,000 x 1,000 (window 52), whose
  materialised inputs alone would be 1.9 GB of float32;
- **reading it from a CSV**: the 10,000 x 1,000 panel written as a user's
  long CSV, read and checked by ``load_panel_csv`` in a fresh process
  (seconds, peak RSS).

``python -m benchmarks.panel_scale [--quick]`` (writes
``benchmarks/results/panels-latest.{json,md}``); ``make bench`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from benchmarks import report

FAMILY = "gru"
UNITS = 32
WINDOW, HORIZON = 52, 13


def generated_panel(n_series: int, length: int, seed: int = 0):
    """``n_series`` weekly series of ``length`` steps: a level on any scale,
    a trend, a yearly season and noise."""
    from experiments.data.panel import Panel, release_unused_memory

    rng = np.random.default_rng(seed)
    t = np.arange(length)
    # Built in place, so that the generator's own temporaries do not set
    # the peak measured after it.
    level, phase = rng.lognormal(3, 1, (n_series, 1)), rng.random((n_series, 1))
    values = 0.05 * rng.standard_normal((n_series, length))
    values += 1 + 0.002 * t
    values += 0.2 * np.sin(2 * np.pi * (t / 52 + phase))
    values *= level
    ids = np.array([f"s{i:05d}" for i in range(n_series)], dtype=object)
    frame = pd.DataFrame({
        "series": pd.array(np.repeat(ids, length), dtype="str"),
        "week": np.tile(pd.date_range("1990-01-07", periods=length, freq="W-SUN"), n_series),
        "value": values.ravel()}, copy=False)
    del values
    release_unused_memory()
    return Panel(name="generated", frame=frame, id_col="series", time_col="week",
                 target="value", freq="W-SUN", source="generated:", season=52)


def prepared(n_series: int, length: int):
    from experiments.forecasting.panel_windows import prepare_panel

    return prepare_panel(generated_panel(n_series, length), window=WINDOW, horizon=HORIZON,
                         val_size=HORIZON, test_size=HORIZON)


def compiled_model(p, batch: int, epochs: int):
    import keras

    import zoo
    from experiments.training.fit_parts import make_optimizer
    from experiments.training.fitting import compile_fast

    keras.utils.set_random_seed(0)
    model = zoo.build_model(FAMILY, p.input_shape, p.outputs, units=UNITS)
    return compile_fast(model, make_optimizer(1e-3), "mse",
                        -(-len(p.train) // batch), epochs)


def fed(p, feed: str, batch: int, model) -> dict:
    """``fit``'s data: the index (what ``train`` does) or the arrays."""
    from experiments.training.feed import fit_arguments
    from experiments.training.window_feed import training_batches

    if feed == "index":
        return training_batches(p.train.index, batch)
    return fit_arguments(p.train.x, p.train.y, batch,
                         steps_per_execution=model.steps_per_execution)


def epoch_times(model, data: dict, epochs: int) -> list[float]:
    from benchmarks.bench import EpochTimer

    timer = EpochTimer()
    model.fit(**data, epochs=epochs, verbose=0, callbacks=[timer.callback])
    return timer.times


def throughput(n_series: int, length: int, batch: int, epochs: int, rounds: int) -> dict:
    """Windows per second of each feed on one panel, taking turns; each
    fit's first epoch (pipeline and tracing) is not timed."""
    p = prepared(n_series, length)
    models = {feed: compiled_model(p, batch, epochs + 1) for feed in ("materialised", "index")}
    data = {feed: fed(p, feed, batch, models[feed]) for feed in models}
    times = {feed: [] for feed in models}
    for _ in range(rounds):
        for feed, model in models.items():
            times[feed] += epoch_times(model, data[feed], epochs + 1)[1:]
    per_s = {feed: len(p.train) / statistics.median(t) for feed, t in times.items()}
    return {"series": n_series, "length": length, "windows": len(p.train), "batch": batch,
            "epochs_timed": epochs * rounds, "windows_per_s": per_s,
            "index_vs_materialised": per_s["index"] / per_s["materialised"]}


def own_peak_rss_mb() -> float:
    """This process's peak resident set in MB: Linux's ``VmHWM``, which
    counts this process's memory only. ``ru_maxrss`` is kept across the
    ``exec`` that starts a child: a child started by a parent that once
    held 1.4 GB reported 1.4 GB however little it used (measured
    2026-12-07; every peak here before that day was at least its
    parent's). ``ru_maxrss`` only where ``/proc`` is missing."""
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_epoch(n_series: int, length: int, feed: str, batch: int) -> dict:
    """In this process: prepare the panel, train one epoch; the peak RSS."""
    start = time.perf_counter()
    p = prepared(n_series, length)
    prepared_s = time.perf_counter() - start
    model = compiled_model(p, batch, 1)
    start = time.perf_counter()
    model.fit(**fed(p, feed, batch, model), epochs=1, verbose=0)
    return {"series": n_series, "length": length, "feed": feed, "windows": len(p.train),
            "prepare_s": prepared_s, "epoch_s": time.perf_counter() - start,
            "peak_rss_mb": own_peak_rss_mb()}


def peak_rss(n_series: int, length: int, feed: str, batch: int) -> dict:
    """``one_epoch`` in a fresh process (so nothing else counts in its RSS)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.panel_scale", "--one-epoch", str(n_series),
         str(length), feed, str(batch)], capture_output=True, text=True, check=False)
    if done.returncode:
        return {"series": n_series, "length": length, "feed": feed,
                "error": done.stderr.strip().splitlines()[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_csv(path: str) -> dict:
    """In this process: ``load_panel_csv`` on ``path``; seconds and peak RSS."""
    from experiments.data.panel import load_panel_csv

    start = time.perf_counter()
    panel = load_panel_csv(path, id_col="series", time_col="week", target="value",
                           max_file_mb=os.path.getsize(path) / 1e6 + 1)
    return {"rows": len(panel.frame), "read_s": time.perf_counter() - start,
            "peak_rss_mb": own_peak_rss_mb()}


def csv_peak_rss(n_series: int, length: int) -> dict:
    """The generated panel written as a user's long CSV, then read and
    checked by ``load_panel_csv`` in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "panel.csv")
        generated_panel(n_series, length).frame.to_csv(path, index=False, float_format="%.4f")
        megabytes = os.path.getsize(path) / 1e6
        done = subprocess.run([sys.executable, "-m", "benchmarks.panel_scale", "--read-csv",
                               path], capture_output=True, text=True, check=False)
    if done.returncode:
        return {"series": n_series, "length": length,
                "error": done.stderr.strip().splitlines()[-1][:300]}
    return {"series": n_series, "length": length, "file_mb": megabytes,
            **json.loads(done.stdout.strip().splitlines()[-1])}


def panel_scale(quick: bool = False) -> dict:
    if quick:
        # A smoke test: one fresh process, the product's feed.
        return {"throughput": throughput(40, 200, 256, 1, 1),
                "memory": [peak_rss(100, 200, "index", 1024)],
                "csv": csv_peak_rss(100, 200)}
    return {"throughput": throughput(300, 400, 256, 2, 2),
            "memory": [*(peak_rss(1_000, 1_000, feed, 1024) for feed in ("materialised", "index")),
                       peak_rss(10_000, 1_000, "index", 1024)],
            "csv": csv_peak_rss(10_000, 1_000)}


def markdown(r: dict) -> list[str]:
    t = r["throughput"]
    lines = [f"Panels ({FAMILY}, {UNITS} units, window {WINDOW}, horizon {HORIZON}): "
             f"windows drawn by index vs materialised, on {t['series']} series x "
             f"{t['length']} steps ({t['windows']:,} training windows, batch {t['batch']}, "
             f"{t['epochs_timed']} epochs timed each, taking turns): "
             f"materialised {t['windows_per_s']['materialised']:,.0f} windows/s, by index "
             f"{t['windows_per_s']['index']:,.0f} ({t['index_vs_materialised']:.2f}x).", "",
             "| panel | feed | training windows | prepare s | one epoch s | peak RSS MB |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for m in r["memory"]:
        if "error" in m:
            lines.append(f"| {m['series']:,} x {m['length']:,} | {m['feed']} | failed: "
                         f"{m['error']} | | | |")
            continue
        lines.append(f"| {m['series']:,} x {m['length']:,} | {m['feed']} | {m['windows']:,} "
                      f"| {m['prepare_s']:.1f} | {m['epoch_s']:.1f} | {m['peak_rss_mb']:.0f} |")
    c = r.get("csv")
    if c:
        lines += ["", f"Reading the {c['series']:,} x {c['length']:,} panel from a long CSV "
                  + (f"failed: {c['error']}" if "error" in c else
                     f"({c['file_mb']:.0f} MB, {c['rows']:,} rows) with `load_panel_csv`, "
                     f"every cell checked, in a fresh process: {c['read_s']:.1f} s, peak RSS "
                     f"{c['peak_rss_mb']:.0f} MB.")]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results",
                        help="folder for panels-latest.json and .md")
    parser.add_argument("--one-epoch", nargs=4, metavar=("SERIES", "LENGTH", "FEED", "BATCH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--read-csv", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read_csv:
        print(json.dumps(read_csv(args.read_csv)))
        return 0
    if args.one_epoch:
        n, length, feed, batch = args.one_epoch
        print(json.dumps(one_epoch(int(n), int(length), feed, int(batch))))
        return 0
    result = panel_scale(args.quick)
    report.write(args.out, "panels-latest", result, "\n".join(markdown(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
