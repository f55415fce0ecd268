"""A panel trained by ``train``, by a hand-written PyTorch loop and by
neuralforecast's ``LSTM``, side by side.

On one generated panel (``benchmarks.panel_scale.generated_panel``: weekly
series, a yearly season), the same cut for all three: every series' last
``HORIZON`` steps before the test period are the validation window, and
everything before it is what each model trains on. Each trains a one-layer
LSTM of ``UNITS`` units on windows of ``WINDOW`` steps for ``HORIZON``
steps ahead, ``BATCH`` windows a step, learning rate 1e-3, for the same
number of passes over the training windows, with no early stopping (no
model sees the validation window before it is scored). Each runs in its own
process, since TensorFlow and PyTorch each keep a thread pool.

- **lstm-zoo**: what ``train`` does on a panel, minus the validation it
  stops on: the ``lstm`` family with the task's settings (its linear
  autoregressive term), each window standardised by itself, batches drawn
  by index across the series (``fitting.fit_epochs``).
- **PyTorch**: ``nn.LSTM`` and a linear head on the same standardised
  windows (materialised as tensors), Adam and MSE in a plain loop.
- **neuralforecast**: ``LSTM`` (one encoder layer of ``UNITS``, an MLP
  decoder of one layer of ``UNITS``, MSE, ``scaler_type="standard"``: each
  window standardised), ``windows_batch_size=BATCH``, its ``max_steps`` the
  same passes over the windows. Its own loader samples the windows.

Each trains three times, the three taking turns, and its median is
reported. Training windows per second leave out the first pass (tracing, pipeline
set-up; for neuralforecast, Lightning's). Validation MASE: the mean over
series of each forecast's mean absolute error on the validation window over
the series' in-sample seasonal-naive error (the same for all three).

``python -m benchmarks.panel_peers [--quick]`` (writes
``benchmarks/results/panel-peers-latest.{json,md}``); ``make bench`` runs it too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks import report
from benchmarks.panel_scale import HORIZON, WINDOW, generated_panel

UNITS = 32
BATCH = 256
LEARNING_RATE = 1e-3
PEERS = ("lstm-zoo", "PyTorch", "neuralforecast")
NEEDS = {"PyTorch": "torch", "neuralforecast": "neuralforecast"}


def task_of(n_series: int, length: int):
    from experiments.forecasting.panel_windows import prepare_panel
    from experiments.tasks.panel import PanelTask

    return PanelTask(prepare_panel(generated_panel(n_series, length), window=WINDOW,
                                   horizon=HORIZON, val_size=HORIZON, test_size=HORIZON))


def validation_mase(task, forecasts: dict[str, np.ndarray]) -> float:
    """Mean over series of MAE on the validation window / in-sample
    seasonal-naive MAE; ``forecasts`` maps a series id to its ``HORIZON``
    values."""
    from experiments.forecasting import metrics

    p = task.prepared
    frame = p.panel.frame
    time_col, target = p.panel.time_col, p.panel.target
    scores = []
    for key, rows in frame.groupby(p.panel.id_col, sort=False):
        if key not in forecasts:
            continue
        times, values = rows[time_col].to_numpy(), rows[target].to_numpy("float64")
        history = values[times < p.val_start.to_datetime64()]
        truth = values[len(history):len(history) + HORIZON]
        scale = metrics.mase_scale(history[:, None], p.panel.season or 1)[0]
        scores.append(np.mean(np.abs(forecasts[key] - truth)) / (scale or 1.0))
    return float(np.mean(scores))


def by_series(task, raw: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs on the validation windows' own scale, in data units, per series."""
    p = task.prepared
    values = p.val.to_original(np.asarray(raw, "float64"))
    return {p.ids[s]: v for s, v in zip(p.val.series, values, strict=True)}


def run_zoo(task, epochs: int) -> dict:
    import keras

    import zoo
    from benchmarks.bench import EpochTimer
    from experiments.config import budget
    from experiments.training import fitting

    keras.utils.set_random_seed(0)
    hp = fitting.resolve_hyperparameters("vanilla_lstm", {"units": UNITS}, task)
    network = zoo.build_model("vanilla_lstm", task.input_shape, task.outputs, **hp)
    # Compiled as `train` compiles it for this panel: for the epochs it
    # would run by default (config.budget), not for the passes timed here.
    # XLA is only chosen for a long training (fitting.compile_options).
    model = fitting.compile_model(network, task, LEARNING_RATE, None, BATCH,
                                  budget(len(task.train), BATCH)[0])
    timer = EpochTimer()
    fitting.fit_epochs(model, task.train, BATCH, epochs, callbacks=[timer.callback])
    raw = model.predict(task.val.x, batch_size=1024, verbose=0)
    return {"windows_per_s": len(task.train) / statistics.median(timer.times[1:]),
            "forecasts": by_series(task, raw)}


def run_torch(task, epochs: int) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(0)
    x, y = (torch.from_numpy(np.ascontiguousarray(a, "float32")) for a in task.train.index.arrays())

    class Network(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(x.shape[-1], UNITS, batch_first=True)
            self.head = nn.Linear(UNITS, HORIZON)

        def forward(self, inputs):
            out, _ = self.rnn(inputs)
            return self.head(out[:, -1])

    network = Network()
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for rows in torch.randperm(len(x)).split(BATCH):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(network(x[rows]), y[rows].reshape(len(rows), -1))
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        raw = network(torch.from_numpy(np.asarray(task.val.x, "float32"))).numpy()
    return {"windows_per_s": len(x) / statistics.median(times[1:]),
            "forecasts": by_series(task, raw.reshape(len(raw), HORIZON, -1)
                                   if np.ndim(task.val.y) == 3 else raw)}


def run_neuralforecast(task, epochs: int) -> dict:
    import logging

    import pytorch_lightning as pl
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import LSTM

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    p = task.prepared
    panel = p.panel
    history = panel.frame[panel.frame[panel.time_col] < p.val_start].rename(columns={
        panel.id_col: "unique_id", panel.time_col: "ds", panel.target: "y"})
    history = history[history["unique_id"].isin(set(p.ids))]
    per_pass = -(-len(task.train) // BATCH)
    clock = {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == per_pass:  # the first pass is not timed
                clock["start"] = time.perf_counter()

        def on_train_end(self, trainer, *args):
            clock["end"] = time.perf_counter()

    model = LSTM(h=HORIZON, input_size=WINDOW, encoder_n_layers=1, encoder_hidden_size=UNITS,
                 decoder_hidden_size=UNITS, decoder_layers=1, loss=MSE(),
                 max_steps=per_pass * epochs, learning_rate=LEARNING_RATE,
                 batch_size=32, windows_batch_size=BATCH, scaler_type="standard",
                 random_seed=0, val_check_steps=10 ** 9, accelerator="cpu", logger=False,
                 enable_progress_bar=False, enable_model_summary=False, callbacks=[Clock()])
    forecaster = NeuralForecast(models=[model], freq=panel.freq)
    forecaster.fit(df=history[["unique_id", "ds", "y"]])
    predicted = forecaster.predict()
    forecasts = {key: rows["LSTM"].to_numpy("float64")
                 for key, rows in predicted.groupby("unique_id", sort=False)}
    timed = per_pass * (epochs - 1) * BATCH
    return {"windows_per_s": timed / (clock["end"] - clock["start"]), "forecasts": forecasts}


RUNNERS = {"lstm-zoo": run_zoo, "PyTorch": run_torch, "neuralforecast": run_neuralforecast}


def one(name: str, n_series: int, length: int, epochs: int) -> dict:
    """In this process: ``name`` trained on the panel; its speed and score."""
    task = task_of(n_series, length)
    start = time.perf_counter()
    out = RUNNERS[name](task, epochs)
    return {"windows_per_s": out["windows_per_s"], "wall_s": time.perf_counter() - start,
            "val_mase": validation_mase(task, out["forecasts"]),
            "series_scored": len(out["forecasts"]), "windows": len(task.train)}


def missing(name: str) -> str | None:
    """Why ``name`` cannot run here, or None."""
    module = NEEDS.get(name)
    if not module or importlib.util.find_spec(module) is not None:
        return None
    why = os.path.join(sys.prefix, f"{module}-missing.txt")
    if os.path.exists(why):  # benchmarks.install_torch could not install it
        with open(why) as f:
            return f"{module} is not installed: {f.read().strip()}"
    return f"{module} is not installed here (`make bench` installs it)"


def in_process(name, n_series, length, epochs) -> dict:
    why = missing(name)
    if why:
        return {"missing": why}
    done = subprocess.run([sys.executable, "-m", "benchmarks.panel_peers", "--one", name,
                           str(n_series), str(length), str(epochs)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def panel_peers(quick: bool = False) -> dict:
    """Each peer trained ``rounds`` times, taking turns (this machine's load
    changes by the minute): the median windows/s of its rounds."""
    n_series, length, epochs, rounds = (20, 150, 2, 1) if quick else (200, 300, 5, 3)
    runs = {name: [] for name in PEERS}
    for _ in range(rounds):
        for name in PEERS:
            runs[name].append(in_process(name, n_series, length, epochs))
    peers = {}
    for name, rows in runs.items():
        done = [r for r in rows if "windows_per_s" in r]
        peers[name] = rows[0] if len(done) < len(rows) else {
            **done[0], "windows_per_s": statistics.median(r["windows_per_s"] for r in done),
            "windows_per_s_rounds": [r["windows_per_s"] for r in done]}
    return {"series": n_series, "length": length, "epochs": epochs, "units": UNITS,
            "batch": BATCH, "window": WINDOW, "horizon": HORIZON, "rounds": rounds,
            "peers": peers}


def markdown(r: dict) -> list[str]:
    zoo = r["peers"]["lstm-zoo"]
    lines = [f"Panel training against the peers: {r['series']} series x {r['length']} weekly "
             f"steps, one LSTM layer of {r['units']} units, window {r['window']}, horizon "
             f"{r['horizon']}, batch {r['batch']}, {r['epochs']} passes over the training "
             f"windows (the first not timed), each in its own process; the median of "
             f"{r['rounds']} rounds taking turns.", "",
             "| trained by | training windows/s | lstm-zoo vs it | validation MASE | wall s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, row in r["peers"].items():
        if "missing" in row or "error" in row:
            lines.append(f"| {name} | not measured: {row.get('missing') or row['error']} "
                         "| | | |")
            continue
        ratio = ("" if name == "lstm-zoo" or "windows_per_s" not in zoo
                 else f"{zoo['windows_per_s'] / row['windows_per_s']:.2f}x")
        lines.append(f"| {name} | {row['windows_per_s']:,.0f} | {ratio} | "
                     f"{row['val_mase']:.3f} | {row['wall_s']:.1f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results",
                        help="folder for panel-peers-latest.json and .md")
    parser.add_argument("--one", nargs=4, metavar=("NAME", "SERIES", "LENGTH", "EPOCHS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        name, n, length, epochs = args.one
        print(json.dumps(one(name, int(n), int(length), int(epochs)), default=float))
        return 0
    result = panel_peers(args.quick)
    report.write(args.out, "panel-peers-latest", result, "\n".join(markdown(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
