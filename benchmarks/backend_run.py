"""``train``'s throughput for one benchmark shape on the Keras backend named by
``KERAS_BACKEND`` (run by ``benchmarks.bench`` in a fresh process, since the
backend is fixed when Keras is imported). Prints one JSON line.

    KERAS_BACKEND=jax python -m benchmarks.backend_run lstm128 10
"""

from __future__ import annotations

import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(name: str, epochs: int) -> dict:
    import keras

    import zoo
    from benchmarks import bench

    _, family, hp, shape, batch, outputs = next(s for s in bench.SHAPES if s[0] == name)
    keras.utils.set_random_seed(0)
    model = zoo.build_model(family, shape, outputs, **hp)
    loss = "binary_crossentropy" if family == "conv_lstm" else "mse"
    bench.compile_product(model, loss, bench.BATCHES[name])
    x, y = bench.data_for(model, batch, bench.BATCHES[name])
    data = bench.fed_as("product", x, y, batch, model)
    bench.epoch_seconds(model, data, 1)  # warm-up: trace and compile
    times = bench.epoch_seconds(model, data, epochs)
    return {"backend": keras.config.backend(),
            "samples_per_s": len(x) / statistics.median(times)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
