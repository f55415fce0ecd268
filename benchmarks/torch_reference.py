"""Hand-written PyTorch training of one benchmark shape: the reference the
zoo is measured against (``nn.LSTM``/``nn.GRU`` with a linear head, a
hand-written ConvLSTM cell, Adam, a plain training loop).

Run by ``benchmarks.bench`` in its own process, because TensorFlow and
PyTorch each keep a thread pool and would slow each other down in one
process. Prints one JSON line: ``{"samples_per_s": ...}``.

    python -m benchmarks.torch_reference '{"family": "gru", "hp": {"units": 128}, ...}'
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch
from torch import nn


class Recurrent(nn.Module):
    """The same network as the zoo's LSTM/GRU families: a stack of recurrent
    layers, the last step's output, a dense head."""

    def __init__(self, family, hp, features, outputs):
        super().__init__()
        kind = {"gru": nn.GRU, "simple_rnn": nn.RNN}.get(family, nn.LSTM)
        directions = 2 if family == "bidirectional_lstm" else 1
        self.rnn = kind(features, hp["units"], num_layers=hp.get("num_layers", 1),
                        batch_first=True, bidirectional=directions == 2)
        self.head = nn.Linear(hp["units"] * directions, outputs)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class CnnLSTM(nn.Module):
    """The zoo's cnn_lstm: causal Conv1d (ReLU), max pooling, an LSTM, a dense head."""

    def __init__(self, hp, features, outputs):
        super().__init__()
        self.pad = hp["kernel_size"] - 1  # causal: pad the past only
        self.conv = nn.Conv1d(features, hp["filters"], hp["kernel_size"])
        self.pool = nn.MaxPool1d(hp["pool_size"], ceil_mode=True)
        self.rnn = nn.LSTM(hp["filters"], hp["units"], batch_first=True)
        self.head = nn.Linear(hp["units"], outputs)

    def forward(self, x):  # (batch, time, features)
        z = nn.functional.pad(x.transpose(1, 2), (self.pad, 0))
        z = self.pool(torch.relu(self.conv(z))).transpose(1, 2)
        out, _ = self.rnn(z)
        return self.head(out[:, -1])


class ConvLSTM(nn.Module):
    """One ConvLSTM layer (all four gates from one convolution over the input
    and hidden state) and a sigmoid convolution predicting the next frame."""

    def __init__(self, hp, channels, outputs):
        super().__init__()
        u, k = hp["units"], hp["kernel_size"]
        self.units = u
        self.gates = nn.Conv2d(channels + u, 4 * u, k, padding=k // 2)
        self.head = nn.Conv2d(u, outputs * channels, 3, padding=1)

    def forward(self, x):  # (batch, time, channels, rows, cols)
        b, _, _, rows, cols = x.shape
        h = x.new_zeros(b, self.units, rows, cols)
        c = torch.zeros_like(h)
        for t in range(x.shape[1]):
            i, f, g, o = self.gates(torch.cat([x[:, t], h], 1)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return torch.sigmoid(self.head(h)).unsqueeze(1)


def samples_per_s(spec) -> float:
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    family, hp, shape = spec["family"], spec["hp"], tuple(spec["shape"])
    batch, batches, outputs = spec["batch"], spec["batches"], spec["outputs"]
    n = batch * batches
    if family == "conv_lstm":
        t, rows, cols, ch = shape
        model = ConvLSTM(hp, ch, outputs)
        x = torch.rand(n, t, ch, rows, cols)
        y = torch.rand(n, outputs, ch, rows, cols)
        loss_fn = nn.BCELoss()
    else:
        model = (CnnLSTM(hp, shape[-1], outputs) if family == "cnn_lstm"
                 else Recurrent(family, hp, shape[-1], outputs))
        x, y = torch.rand(n, *shape), torch.rand(n, outputs)
        loss_fn = nn.MSELoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch():
        start = time.perf_counter()
        for i in range(0, n, batch):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[i:i + batch]), y[i:i + batch])
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    epoch()  # warm-up
    times = [epoch() for _ in range(spec["epochs"])]
    return n / statistics.median(times)


if __name__ == "__main__":
    print(json.dumps({"samples_per_s": samples_per_s(json.loads(sys.argv[1]))}))
