"""Text from a character-level language model (the task that trains it and
the served model that answers prompts)."""

from __future__ import annotations

import numpy as np


def one_hot(ids: np.ndarray, size: int) -> np.ndarray:
    return np.eye(size, dtype="float32")[ids]


def generate(model, vocab, prompt: str, length: int = 200, temperature: float = 1.0,
             rng=None, context: int = 64) -> str:
    """Continue ``prompt`` by sampling ``length`` characters from ``model``.

    Args:
        model: a per-timestep softmax model over ``vocab`` (one-hot input).
        vocab: index -> character; index 0 is the unknown token.
        temperature: below 1 sharpens the distribution, above 1 flattens it.
        context: how many past characters the model sees per step (the
            training window). A fixed length keeps one compiled graph
            instead of retracing for every new length.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; received {temperature}")
    rng = rng or np.random.default_rng()
    index = {c: i for i, c in enumerate(vocab)}
    ids = [index.get(c, 0) for c in prompt.lower()] or [0]
    out = []
    window = np.zeros((1, context, len(vocab)), "float32")
    for _ in range(length):
        recent = ids[-context:]
        window[:] = 0.0  # all-zero rows on the left: "no character yet"
        window[0, context - len(recent):] = one_hot(np.array(recent), len(vocab))
        probs = np.asarray(model.predict_on_batch(window))[0, -1].astype("float64")
        logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
        probs = np.exp(logits - logits.max())
        probs[0] = 0.0  # never emit the unknown token
        probs /= probs.sum()
        nxt = int(rng.choice(len(vocab), p=probs))
        ids.append(nxt)
        out.append(vocab[nxt])
    return prompt + "".join(out)
