"""Sequence classification: one label per sequence."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from experiments import tracking
from experiments.data import (
    DataError,
    check_archive,
    check_generated,
    check_input_file,
    load_table,
    numeric_column,
    parse_times,
)
from experiments.sequences import PAD_VALUE, pad
from experiments.tasks.base import Split, Task
from experiments.tracking import numpy_dataset

KIND = "classification"
TAKES = ("data", "dataset_options", "npz", "csv", "label_col", "id_col", "time_col",
         "time_format", "features", "max_file_mb", "max_length", "val_size", "test_size")
# What padding steps hold in every feature once the sequences are scaled:
# no real step can (every feature 10,000 standard deviations below its
# mean), so the models' mask never hides one.
DEFAULTS = {"val_size": 0.15, "test_size": 0.2}


def make_memory(count: int = 600, length: int = 40, classes: int = 3,
                marker_step: int = 2, noise: float = 1.0, seed: int = 0):
    """Memory task: the class is a marker seen once, early in a long noisy sequence.

    Channel 0 is noise at every step; channels 1..classes are zero except at
    ``marker_step``, where the class's channel is 1. Only a model that keeps
    the marker in its state for ``length - marker_step`` steps can beat
    chance. Returns ``(x, y)``: ``(count, length, 1 + classes)`` and
    ``(count,)`` labels, balanced. Deterministic for a seed.
    """
    if classes < 2 or not 0 <= marker_step < length or count < 3 * classes:
        raise DataError(f"memory: need classes >= 2, 0 <= marker_step < length and "
                        f"count >= 3 * classes; received classes={classes}, "
                        f"marker_step={marker_step}, length={length}, count={count}")
    check_generated("memory", (count, length, 1 + classes))
    rng = np.random.default_rng(seed)
    y = np.arange(count) % classes
    rng.shuffle(y)
    x = np.zeros((count, length, 1 + classes), "float32")
    x[:, :, 0] = noise * rng.standard_normal((count, length))
    x[np.arange(count), marker_step, 1 + y] = 1.0
    return x, y.astype("int64")


def load_npz(path, max_file_mb=None):
    path = check_input_file(path, max_file_mb, ".npz")
    check_archive(path, max_file_mb)  # before np.load inflates any member
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a NumPy .npz archive ({err})") from None
    for key in ("x", "y"):
        if key not in archive:
            raise DataError(f"{path}: no array {key!r}; the archive has "
                            f"{sorted(archive.files)} (needs x: (samples, time, "
                            f"features) and y: (samples,))")
    x, y = archive["x"], archive["y"]
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{path}: x must be (samples, time[, features]) and y "
                        f"(samples,) with the same number of samples; received "
                        f"x {x.shape}, y {y.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise DataError(f"{path}: x must be finite numbers")
    return x.astype("float32"), y


def load_long_csv(path, *, id_col, label_col, time_col=None, time_format=None,
                  features=(), max_file_mb=None):
    """Sequences in long form: one row per (sequence id, step)."""

    raw = load_table(path, [id_col, label_col, *([time_col] if time_col else []),
                            *features], all_columns=not features, max_file_mb=max_file_mb)
    features = list(features) or [c for c in raw.columns
                                  if c not in (id_col, label_col, time_col)]
    values = pd.DataFrame({c: numeric_column(path, raw[c], c, allow_missing=False)
                           for c in features})
    values[id_col], values[label_col] = raw[id_col].str.strip(), raw[label_col].str.strip()
    if time_col:
        values["_order"] = pd.to_numeric(raw[time_col], errors="coerce")
        if values["_order"].isna().any():  # not step numbers: timestamps
            values["_order"] = parse_times(path, raw[time_col], time_col, time_format)
        values = values.sort_values([id_col, "_order"], kind="stable")
    groups = values.groupby(id_col, sort=True)
    labels = groups[label_col].nunique()
    mixed = labels[labels > 1]
    if len(mixed):
        raise DataError(f"{path}: sequence {mixed.index[0]!r} has more than one "
                        f"label in column {label_col!r}")
    sequences = [g[features].to_numpy("float32") for _, g in groups]
    y = groups[label_col].first().to_numpy()
    return sequences, y, features


class ClassificationTask(Task):
    kind = "classification"
    head = "classification"
    loss = "sparse_categorical_crossentropy"
    rank_by = "test_log_loss"
    metrics_shown = ("accuracy", "macro_f1", "log_loss")

    def __init__(self, name, source, x, y, *, val_size, test_size, seed, layout=None,
                 lengths=None):
        """``x``: ``(n, steps, features)``; with ``lengths``, each sequence's
        real steps come first and the rest is NaN padding (see ``pad``)."""
        from sklearn.model_selection import train_test_split

        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"{name}: every sequence has label {classes[0]!r}; "
                            f"classification needs at least two classes")
        counts = np.bincount(labels)
        if counts.min() < 3:
            raise DataError(f"{name}: class {classes[counts.argmin()]!r} has "
                            f"{counts.min()} sequence(s); a stratified train / "
                            f"validation / test split needs at least 3 per class")
        index = np.arange(len(x))
        # Split by sequence, stratified by label: no sequence is in two parts.
        rest, test = train_test_split(index, test_size=test_size, stratify=labels,
                                      random_state=seed)
        train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest],
                                      random_state=seed)
        # Statistics of the real steps only (padding is NaN until scaled).
        mean = np.nanmean(x[train], axis=(0, 1))
        std = np.nanstd(x[train], axis=(0, 1))
        std = np.where(std > 0, std, 1.0)
        scaled = np.nan_to_num((x - mean) / std, nan=PAD_VALUE).astype("float32")
        self.lengths = None if lengths is None or (lengths == x.shape[1]).all() else lengths
        self.name, self.source, self.classes = name, source, [str(c) for c in classes]
        # How raw sequences are laid out: long-form CSV columns, or an array.
        self.layout = layout or {"features": [f"x{i}" for i in range(x.shape[2])]}
        self.raw_test = x[test]
        self.mean, self.std = mean, std
        self.ids = {"train": train, "val": val, "test": test}
        self.input_shape, self.outputs = x.shape[1:], len(classes)
        self.train = Split(scaled[train], labels[train])
        self.val = Split(scaled[val], labels[val])
        self.test = Split(scaled[test], labels[test])

    def params(self):
        shortest = self.input_shape[0] if self.lengths is None else int(self.lengths.min())
        return {"classes": len(self.classes), "sequence_length": self.input_shape[0],
                "shortest_sequence": shortest, "padded": self.lengths is not None,
                "n_features": self.input_shape[1], "n_train": len(self.train),
                "n_val": len(self.val), "n_test": len(self.test)}

    def unusable(self, family):
        import zoo

        why = super().unusable(family)
        if why is None and self.lengths is not None and (
                "mask_value" not in zoo.get(family).hyperparameters):
            why = (f"the sequences have different lengths ({self.lengths.min()} to "
                   f"{self.input_shape[0]} steps) and {family} cannot skip padding")
        return why

    def builder_arguments(self, family=None):
        return {} if self.lengths is None else {"mask_value": PAD_VALUE}

    def dataset(self):
        return numpy_dataset(self.name, self.source, self.train.x, self.train.y)

    def baselines(self):
        return [("majority class", "test_majority_")]

    def evaluate(self, model):
        probs = self.predict_test(model)
        prior = np.bincount(self.train.y, minlength=len(self.classes)) / len(self.train)
        majority = np.tile(prior, (len(self.test), 1))
        scores = {f"test_{k}": v for k, v in class_metrics(self.test.y, probs).items()}
        scores.update({f"test_majority_{k}": v for k, v in
                       class_metrics(self.test.y, majority).items()})
        val = model.predict(self.val.x, verbose=0, batch_size=256)
        scores["val_accuracy"] = class_metrics(self.val.y, val)["accuracy"]
        return scores

    def log_artifacts(self, model, scores):
        import matplotlib.pyplot as plt
        import mlflow
        from sklearn.metrics import ConfusionMatrixDisplay

        probs = self.predict_test(model)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ConfusionMatrixDisplay.from_predictions(
            self.test.y, probs.argmax(-1), labels=range(len(self.classes)),
            display_labels=self.classes, ax=ax, colorbar=False)
        ax.set_title(f"{model.name}: accuracy {scores['test_accuracy']:.3f}")
        fig.tight_layout()
        tracking.log_figure(fig, "plots/confusion_matrix.png")
        mlflow.log_dict({k: v.tolist() for k, v in self.ids.items()}, "split_ids.json")

    def log_served(self, model, calibrated_on=None):
        """The served pyfunc model: raw sequences in, label and class
        probabilities out (see ``experiments.serving``)."""
        from experiments import serving  # MLflow's pyfunc: only when logging

        reader = serving.SequenceClassifier(self.classes, self.mean, self.std,
                                           self.input_shape[0], **self.layout,
                                           padded=self.lengths is not None)
        example = self.raw_test[:2].astype("float64")
        if reader.id_col:  # back to long form, as in the CSV
            rows = []
            for i, seq in enumerate(example):
                for t, values in enumerate(seq[~np.isnan(seq).all(-1)]):  # real steps
                    rows.append({reader.id_col: f"example-{i}",
                                 **({reader.time_col: t} if reader.time_col else {}),
                                 **dict(zip(reader.features, values, strict=True))})
            example = pd.DataFrame(rows)
        return serving.log_served("classification", model, reader, example,
                                 tracking.model_requirements())

    def config(self):
        return {"classes": self.classes, "scaler": {"mean": self.mean.tolist(),
                                                    "std": self.std.tolist()}}


def class_metrics(y, probs) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    labels = list(range(probs.shape[1]))
    pred = probs.argmax(-1)
    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro", labels=labels,
                                       zero_division=0)),
            "log_loss": float(log_loss(y, np.clip(probs, 1e-7, 1), labels=labels))}


def claims(cfg) -> bool:
    return bool(cfg.npz or (cfg.csv and cfg.label_col))


def make_tasks(cfg) -> list[ClassificationTask]:
    layout = lengths = None  # arrays, every sequence as long
    repairs = []
    if cfg.npz:
        x, y = load_npz(cfg.npz, cfg.max_file_mb)
        name, source = os.path.splitext(os.path.basename(cfg.npz))[0], cfg.npz
    elif cfg.csv:
        if not cfg.id_col:
            raise DataError(f"{cfg.csv}: sequences in long form need --id-col COL "
                            f"(which sequence a row belongs to) with --label-col")
        sequences, y, features = load_long_csv(
            cfg.csv, id_col=cfg.id_col, label_col=cfg.label_col, time_col=cfg.time_col,
            time_format=cfg.time_format, features=cfg.features, max_file_mb=cfg.max_file_mb)
        x, lengths, cut = pad(sequences, cfg.max_length)
        if cut:
            repairs.append(f"{cut} of {len(sequences)} sequences were longer than "
                           f"--max-length {cfg.max_length} and kept their last "
                           f"{cfg.max_length} steps")
        name, source = os.path.splitext(os.path.basename(cfg.csv))[0], cfg.csv
        layout = {"features": features, "id_col": cfg.id_col, "time_col": cfg.time_col}
    else:
        try:
            x, y = make_memory(**cfg.dataset_options)
        except TypeError as err:
            raise DataError(f"memory: bad option ({err})") from None
        name, source = "memory", f"generated:memory({cfg.dataset_options})"
    given = {k: getattr(cfg, k) for k in DEFAULTS if getattr(cfg, k) is not None}
    task = ClassificationTask(
        name, os.path.abspath(source) if os.path.exists(source) else source, x, y,
        seed=cfg.seed, layout=layout, lengths=lengths, **{**DEFAULTS, **given})
    task.repairs = repairs
    return [task]


DATASETS = {"memory": make_memory}
