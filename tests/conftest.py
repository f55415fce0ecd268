import os
import pathlib

# Before anything imports Keras: the backend the suite runs on, and quiet TF.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo import startup  # noqa: E402

startup.install()  # TensorFlow's C++ start-up lines off the suite's output too

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
# Optional: the team's reference copies beside the checkout. No test needs them;
# where they exist, the bundled copies are also compared with them.
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def timemachine() -> pathlib.Path:
    """The first 16 KB of H. G. Wells' The Time Machine (public domain),
    shipped in ``tests/data`` so the suite needs nothing beside the checkout."""
    return TEST_DATA / "timemachine-chapter1.txt"


@pytest.fixture
def flaky_family(monkeypatch):
    """A test-only family whose `mode` makes a model fit, produce NaN, or fail
    to build; with one learning rate and batch size, a grid search tries each."""
    import keras

    import zoo
    from tuning import hypermodel
    from zoo.space import Choice

    class NanAfter(keras.layers.Layer):
        """Passes values through for ``steps`` training steps, then NaN."""

        def __init__(self, steps, **kwargs):
            super().__init__(**kwargs)
            self.steps = steps

        def build(self, shape):
            self.calls = self.add_weight(shape=(), initializer="zeros",
                                         trainable=False, name="calls")

        def call(self, x, training=False):
            if training:
                self.calls.assign_add(1.0)
            late = keras.ops.greater(self.calls, float(self.steps))
            # Added, not multiplied: NaN * x in either branch of `where` would
            # poison the gradients from the very first step.
            return x + keras.ops.where(late, float("nan"), 0.0)

    def build(input_shape, outputs, *, head="forecast", mode="ok",
              units=4, nan_after=20, name="flaky"):
        """Test family: fits, produces NaN (at once, or after ``nan_after``
        training steps), or fails to build."""
        if mode == "error":
            raise ValueError("build_flaky: planted build error")
        inputs = keras.Input(input_shape)
        x = keras.layers.GRU(units)(inputs)
        if mode == "nan":
            x = keras.layers.Rescaling(float("nan"))(x)
        if mode == "nan_later":
            x = NanAfter(nan_after)(x)
        return keras.Model(inputs, keras.layers.Dense(outputs)(x), name=name)

    space = {"mode": Choice(("ok", "nan", "error"), default="ok"),
             "nan_after": Choice((20,), default=20)}

    def with_modes(*modes):
        """Search only these modes (a grid then tries each once)."""
        zoo.unregister("flaky_test")
        zoo.register("flaky_test", space={**space, "mode": Choice(modes, default=modes[0])})(
            build)

    monkeypatch.setattr(hypermodel, "LEARNING_RATE",
                        Choice((1e-3,), default=1e-3))
    monkeypatch.setattr(hypermodel, "BATCH_SIZE", Choice((16,), default=16))
    # One value each, so that a grid search's few trials vary the test's own setting.
    monkeypatch.setattr(hypermodel, "LR_SCHEDULE", Choice(("constant",), default="constant"))
    monkeypatch.setattr(hypermodel, "WEIGHT_DECAY", Choice((0.0,), default=0.0))
    with zoo.registered("flaky_test", build, space=space):
        yield with_modes


@pytest.fixture(scope="session")
def team_server(team_server_parts):
    """The URI of a real `mlflow server` on a real PostgreSQL (see below)."""
    return team_server_parts[0]


@pytest.fixture(scope="session")
def team_server_parts():
    """PostgreSQL in a temporary folder on a free port, and `mlflow server` on
    it, as `lstm-zoo tracking-server` runs them: ``(uri, folder, process)``."""
    import shutil
    import tempfile

    from experiments.tracking import server
    from experiments.tracking.server import free_port

    folder = tempfile.mkdtemp(prefix="lstm-zoo-pg-")
    os.chmod(folder, 0o755)  # as root, PostgreSQL runs as `postgres` and must get in
    backend, _ = server.start_postgres(os.path.join(folder, "postgres"))
    port = free_port()
    proc = server.start_mlflow(backend, os.path.join(folder, "artifacts"), port=port,
                               postgres=os.path.join(folder, "postgres"))
    try:
        yield f"http://127.0.0.1:{port}", folder, proc
    finally:
        proc.terminate()
        proc.wait()
        server.stop_postgres(os.path.join(folder, "postgres"))
        shutil.rmtree(folder, ignore_errors=True)
