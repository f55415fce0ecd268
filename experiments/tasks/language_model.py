"""Character-level language modelling: next character at every step."""

from __future__ import annotations

import hashlib
import math
import os
import urllib.request

import numpy as np

from experiments import tracking
from experiments.data import DataError, check_input_file
from experiments.forecasting.windows import resolve_part
from experiments.generation import generate, one_hot
from experiments.tasks.base import Split, Task
from experiments.tracking import numpy_dataset
from zoo.space import Choice

KIND = "language_model"
TAKES = ("data", "dataset_options", "text", "max_file_mb", "window", "val_size",
         "test_size", "stateful")
DEFAULTS = {"window": 64, "val_size": 0.1, "test_size": 0.1}

UNK = "<unk>"
TIMEMACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIMEMACHINE_SHA256 = "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516"


def cache_dir() -> str:
    return os.environ.get("LSTM_ZOO_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "lstm-zoo"))


def load_timemachine() -> str:
    """H. G. Wells' The Time Machine (the d2l book's copy), downloaded once into a
    cache and checked against its SHA-256."""
    path = os.path.join(cache_dir(), "timemachine.txt")
    if not os.path.exists(path):
        os.makedirs(cache_dir(), exist_ok=True)
        try:
            with urllib.request.urlopen(TIMEMACHINE_URL, timeout=20) as reply:
                body = reply.read()
        except OSError as err:
            raise DataError(
                f"timemachine: could not download {TIMEMACHINE_URL} ({err}); "
                f"pass any UTF-8 text with --text PATH, or put the file at "
                f"{path}") from None
        if hashlib.sha256(body).hexdigest() != TIMEMACHINE_SHA256:
            raise DataError(f"timemachine: the download from {TIMEMACHINE_URL} does "
                            f"not match its SHA-256; not using it")
        with open(path + ".part", "wb") as f:
            f.write(body)
        os.replace(path + ".part", path)
    return read_text(path)


def read_text(path, max_file_mb=None) -> str:
    path = check_input_file(path, max_file_mb, "text")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text "
                        f"(byte {raw[err.start]:#04x} at offset {err.start})") from None
    if not text.strip():
        raise DataError(f"{path}: the file has no text")
    return text


class LanguageModelTask(Task):
    kind = KIND
    head = "language_model"
    # Recurrent language models need their gradients clipped: a search tries these.
    clipnorm_space = Choice((0.5, 1.0, 5.0), default=1.0)
    loss = "sparse_categorical_crossentropy"
    rank_by = "test_perplexity"
    metrics_shown = ("perplexity", "bits_per_char")

    def __init__(self, name, source, text, *, window, val_size, test_size, lower=True,
                 stride=None, stateful=False):
        """``stride``: characters between the starts of consecutive training
        windows (default ``window // 4``: each character is trained on in four
        contexts); ``window`` makes them disjoint. ``stateful``: train with the
        state carried from window to window (``experiments.training.stateful``)."""
        self.stateful = bool(stateful)

        text = text.lower() if lower else text
        n = len(text)
        n_test = resolve_part(test_size, n, None, "test")
        n_val = resolve_part(val_size, n - n_test, None, "val")
        n_train = n - n_val - n_test
        parts = text[:n_train], text[n_train:n_train + n_val], text[n_train + n_val:]
        if min(len(p) for p in parts) < window + 1:
            raise DataError(f"{name}: {n} characters are too few for sequences of "
                            f"{window} in train / validation / test "
                            f"({n_train}/{n_val}/{n_test}); need {3 * (window + 1)}")
        # The vocabulary comes from the training part only; anything else
        # maps to the unknown token.
        self.vocab = [UNK, *sorted(set(parts[0]))]
        index = {c: i for i, c in enumerate(self.vocab)}
        self.index = index
        self.name, self.source, self.window = name, source, window
        self.size = len(self.vocab)
        self.input_shape = (None, self.size)  # any length: generation needs it
        self.outputs = self.size
        self.sample_prompt = "the time traveller" if name == "timemachine" else parts[2][:20]
        if stateful and stride is not None:
            raise DataError(f"{name}: --stateful trains on consecutive windows (each "
                            f"character once per epoch); leave the stride option out")
        # Stateful training reads the text in disjoint windows (its streams).
        self.stride = window if stateful else (
            (window // 4 or 1) if stride is None else int(stride))
        if not 1 <= self.stride <= window:
            raise DataError(f"{name}: stride must be in [1, window={window}]; received "
                            f"stride={stride}")
        train_ids, val_ids, test_ids = (
            np.array([index.get(c, 0) for c in part], "int32") for part in parts)
        self.train_ids, self.val_ids = train_ids, val_ids  # for stateful training
        trx, tr_y = windows_of(train_ids, window, self.stride)
        # Validation and test: windows half overlapping, and only the second
        # half of each scored (all of the first window), so that every
        # character is scored once, given at least window/2 characters before
        # it, as the bigram baseline is given its one.
        self.eval_stride = max(window // 2, 1)
        (vax, vay), (tex, tey) = (windows_of(ids, window, self.eval_stride)
                                  for ids in (val_ids, test_ids))
        self.train = Split(one_hot(trx, self.size), tr_y)
        self.val = Split(one_hot(vax, self.size), vay)
        self.test = Split(one_hot(tex, self.size), tey)
        self.test_ids = tex
        self.counts = np.bincount(train_ids, minlength=self.size)
        self.pairs = np.zeros((self.size, self.size))
        np.add.at(self.pairs, (train_ids[:-1], train_ids[1:]), 1)

    def one_hot(self, ids: np.ndarray) -> np.ndarray:
        """Character ids as the model's one-hot input."""
        return one_hot(ids, self.size)

    def scored(self, n_windows: int) -> np.ndarray:
        """``(n_windows, window)``: True where a position of an evaluation
        window is scored (see ``__init__``)."""
        mask = np.zeros((n_windows, self.window), bool)
        mask[:, self.window - self.eval_stride:] = True
        mask[0] = True
        return mask

    def params(self):
        return {"window": self.window, "stride": self.stride, "stateful": self.stateful,
                "vocab_size": self.size,
                "n_train": len(self.train), "n_val": len(self.val),
                "n_test": len(self.test)}

    def dataset(self):
        return numpy_dataset(self.name, self.source, self.train.x.argmax(-1),
                             self.train.y)

    def baselines(self):
        return [("unigram", "test_unigram_"), ("bigram", "test_bigram_")]

    def evaluate(self, model):
        # Add-one smoothing so an unseen character is not infinitely surprising.
        unigram = (self.counts + 1) / (self.counts.sum() + self.size)
        bigram = (self.pairs + 1) / (self.pairs.sum(1, keepdims=True) + self.size)
        y, scored = self.test.y, self.scored(len(self.test))
        p_model = np.take_along_axis(self.predict_test(model), y[..., None], -1)[..., 0]
        scores = {}
        for prefix, p in (("test_", p_model), ("test_unigram_", unigram[y]),
                          ("test_bigram_", bigram[self.test_ids, y])):
            scores.update(perplexity(p[scored], prefix))
        probs = model.predict(self.val.x, verbose=0, batch_size=256)
        p_val = np.take_along_axis(probs, self.val.y[..., None], -1)[..., 0]
        scores["val_perplexity"] = perplexity(p_val[self.scored(len(self.val))],
                                              "")["perplexity"]
        return scores

    def log_artifacts(self, model, scores):
        import mlflow

        rng = np.random.default_rng(0)
        lines = []
        for temperature in (0.5, 0.8, 1.0):
            sample = generate(model, self.vocab, self.sample_prompt, 200,
                              temperature, rng, context=self.window)
            lines.append(f"--- temperature {temperature} ---\n{sample}\n")
        mlflow.log_text("\n".join(lines), "samples.txt")
        mlflow.log_dict({"vocab": self.vocab, "window": self.window}, "vocab.json")

    def log_served(self, model, calibrated_on=None):
        """The served pyfunc model: prompts in, generated text out (see
        ``experiments.serving``)."""
        import pandas as pd

        from experiments import serving  # MLflow's pyfunc: only when logging

        reader = serving.TextGenerator(self.vocab, self.window)
        example = pd.DataFrame({"prompt": [self.sample_prompt]})
        return serving.log_served("language_model", model, reader, example,
                                 tracking.model_requirements())

    def config(self):
        return {"vocab": self.vocab}


def windows_of(ids: np.ndarray, window: int, stride: int):
    """``(x, y)``: windows of ``window`` ids starting every ``stride`` ids, and
    the same windows shifted by one (each step's next character)."""
    x = np.lib.stride_tricks.sliding_window_view(ids[:-1], window)[::stride]
    y = np.lib.stride_tricks.sliding_window_view(ids[1:], window)[::stride]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def perplexity(p: np.ndarray, prefix: str) -> dict[str, float]:
    """Perplexity and bits per character of the probabilities ``p`` given to
    the true characters."""
    nats = float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))
    return {prefix + "perplexity": math.exp(nats), prefix + "bits_per_char": nats / math.log(2)}


def claims(cfg) -> bool:
    return bool(cfg.text)


def make_tasks(cfg) -> list[LanguageModelTask]:
    options = dict(cfg.dataset_options)
    max_chars = options.pop("max_chars", None)
    stride = options.pop("stride", None)
    if options:
        raise DataError(f"text data takes only the options max_chars and stride; "
                        f"received {sorted(options)}")
    if cfg.text:
        text = read_text(cfg.text, cfg.max_file_mb)
        name = os.path.splitext(os.path.basename(cfg.text))[0]
        source = os.path.abspath(cfg.text)
    else:
        text, name = load_timemachine(), "timemachine"
        source = os.path.join(cache_dir(), "timemachine.txt")
    if max_chars:
        text = text[: int(max_chars)]
    given = {k: getattr(cfg, k) for k in DEFAULTS if getattr(cfg, k) is not None}
    return [LanguageModelTask(name, source, text, stride=stride, stateful=cfg.stateful,
                              **{**DEFAULTS, **given})]


DATASETS = {"timemachine": load_timemachine}
