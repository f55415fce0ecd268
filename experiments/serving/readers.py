"""The readers and writers of served models that are not forecasts: what
turns a request's raw rows into a network's input and its output into the
user's terms. (A forecast's is ``experiments.forecasting.forecaster.Forecaster``.)

Each has ``to_config``/``from_config`` (the model's ``spec.json``) and
``predict(network, data, **params)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.forecasting.forecaster import Forecaster, predict
from experiments.forecasting.panel_forecaster import PanelForecaster

# === Classification: raw sequences -> label and probabilities ===

class SequenceClassifier:
    """Scaler, classes and input layout of a sequence classifier.

    With ``id_col`` set the input is long form, one row per (sequence, step)
    with the training CSV's columns; without it, an array shaped
    ``(sequences, steps, features)``.
    """

    def __init__(self, classes, mean, std, steps, features, id_col=None, time_col=None,
                 padded=False):
        self.classes, self.steps = list(classes), int(steps)
        self.mean, self.std = np.asarray(mean, "float64"), np.asarray(std, "float64")
        self.features, self.id_col, self.time_col = list(features), id_col, time_col
        # Trained on sequences of different lengths: long-form input may then
        # have any length (padded, or cut to its last ``steps``, as in training).
        self.padded = bool(padded)

    def to_config(self) -> dict:
        return {"classes": self.classes, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "steps": self.steps, "features": self.features,
                "id_col": self.id_col, "time_col": self.time_col, "padded": self.padded}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def sequences(self, data):
        """``(ids, x)``: the raw sequences as an array, checked.

        Raises:
            ValueError: naming the missing column, the sequence of the wrong
                length or the bad cell, or the array's wrong shape.
        """
        if self.id_col is None:
            x = np.asarray(data.to_numpy() if isinstance(data, pd.DataFrame) else data,
                           dtype="float64")
            want = (self.steps, len(self.features))
            if x.ndim != 3 or x.shape[1:] != want:
                raise ValueError(f"sequences must be an array shaped (n, {want[0]}, "
                                 f"{want[1]}); received shape {x.shape}")
            bad = np.argwhere(~np.isfinite(x))
            if len(bad):
                raise ValueError(f"sequence {bad[0][0]}, step {bad[0][1]}, feature "
                                 f"{bad[0][2]} is {x[tuple(bad[0])]}, not a finite number")
            return list(range(len(x))), x
        frame = pd.DataFrame(data)
        needed = [self.id_col, *([self.time_col] if self.time_col else []), *self.features]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"sequences are missing column {missing[0]!r}; the model "
                             f"needs the columns {needed}")
        values = {}
        for col in self.features:
            numbers = pd.to_numeric(frame[col], errors="coerce")
            bad = np.flatnonzero(numbers.isna().to_numpy())
            if len(bad):
                raise ValueError(f"column {col!r}, row {bad[0] + 1}: "
                                 f"{frame[col].iloc[bad[0]]!r} is not a number")
            values[col] = numbers.to_numpy("float64")
        table = pd.DataFrame(values)
        table["_id"] = frame[self.id_col].astype(str).str.strip().to_numpy()
        if self.time_col:
            order = pd.to_numeric(frame[self.time_col], errors="coerce")
            if order.isna().any():
                order = pd.to_datetime(frame[self.time_col], format="ISO8601")
            table["_order"] = order.to_numpy()
            table = table.sort_values(["_id", "_order"], kind="stable")
        ids, x = [], []
        for key, group in table.groupby("_id", sort=True):
            if len(group) != self.steps and not self.padded:
                raise ValueError(f"sequence {key!r} (column {self.id_col!r}) has "
                                 f"{len(group)} rows; the model takes {self.steps}")
            ids.append(key)
            x.append(group[self.features].to_numpy("float64"))
        if not x:
            raise ValueError("no sequences given")
        if self.padded:
            from experiments.sequences import pad

            return ids, pad(x, self.steps)[0].astype("float64")
        return ids, np.stack(x)

    def predict(self, network, data) -> pd.DataFrame:

        from experiments.sequences import PAD_VALUE

        ids, x = self.sequences(data)
        # Padding is NaN until scaled, then the value the model's mask skips.
        scaled = np.nan_to_num((x - self.mean) / self.std, nan=PAD_VALUE).astype("float32")
        probs = predict(network, scaled)
        out = pd.DataFrame({self.id_col or "sequence": ids,
                            "label": [self.classes[i] for i in probs.argmax(-1)]})
        for j, name in enumerate(self.classes):
            out[f"prob_{name}"] = probs[:, j].astype("float64")
        return out


# === Language model: prompts -> generated text ===

class TextGenerator:
    """Vocabulary and context of a character-level language model."""

    def __init__(self, vocab, window):
        self.vocab, self.window = list(vocab), int(window)

    def to_config(self) -> dict:
        return {"vocab": self.vocab, "window": self.window}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def predict(self, network, data, length=200, temperature=0.8, seed=0) -> pd.DataFrame:
        from experiments.generation import generate

        prompts = (data["prompt"] if isinstance(data, pd.DataFrame) and "prompt" in data
                   else None)
        if prompts is None:
            raise ValueError("the input needs a column 'prompt' (the text to continue)")
        if int(length) < 1:
            raise ValueError(f"length must be >= 1; received {length}")
        rng = np.random.default_rng(int(seed))
        texts = [generate(network, self.vocab, str(p), int(length), float(temperature),
                          rng, context=self.window) for p in prompts]
        return pd.DataFrame({"prompt": list(prompts), "text": texts})


READERS = {"forecast": Forecaster, "panel": PanelForecaster,
           "classification": SequenceClassifier, "language_model": TextGenerator}


__all__ = ["READERS", "SequenceClassifier", "TextGenerator"]
