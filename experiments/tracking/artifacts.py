"""MLflow adapters: figures, datasets and models of a run."""

from __future__ import annotations

from experiments.tracking.redaction import redact

# === MLflow adapters: figures, datasets and models ===

def log_figure(figure, path: str) -> None:
    """Log a matplotlib ``figure`` to the active run, then close it (an open
    figure keeps its memory for the life of the process)."""
    import matplotlib.pyplot as plt
    import mlflow

    try:
        mlflow.log_figure(figure, path)
    finally:
        plt.close(figure)


def dataset_of(series, index: bool = True):
    """A series (or a panel) as an ``mlflow.data`` dataset, so its digest is
    recorded; ``index``: the frame's index is a column of it (a series'
    timestamps; a panel's long table has its own time column)."""
    import os
    import warnings

    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    source = series.source
    if not os.path.exists(source) or redact(source) != source:
        # Bundled or generated data, or a path that holds a secret: record
        # how it was made (redacted) rather than the path itself.
        source = CodeDatasetSource(tags={"source": redact(series.source)})
    with warnings.catch_warnings():
        # "can be interpreted in multiple ways": both readings are a local file.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        frame = series.frame.reset_index() if index else series.frame
        return mlflow.data.from_pandas(frame, source=source,
                                       name=redact(series.name),
                                       targets=series.targets[0])


def numpy_dataset(name, source, x, y):
    """Arrays as an ``mlflow.data`` dataset (digest recorded)."""
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource

    return mlflow.data.from_numpy(
        x, targets=y, name=redact(name), source=CodeDatasetSource(tags={"source": redact(source)}))


def model_requirements() -> list[str]:
    """What serving the logged model needs, stated rather than inferred:
    MLflow's inference imports the model in a subprocess (seconds per run)."""
    from importlib.metadata import PackageNotFoundError, version

    import keras

    needs = [f"keras=={keras.__version__}"]
    backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[
        keras.config.backend()]
    try:
        needs.append(f"{backend}=={version(backend)}")
    except PackageNotFoundError:
        needs.append(backend)
    return needs


def log_model(model, task):
    """The model through MLflow's Keras flavor, with signature and input
    example, as a logged model of the active run (``model_id`` set, so the
    run's "Logged models" and the experiment's Models tab show it).

    It takes the task's model-ready inputs (frames keep array input).
    Returns MLflow's ``ModelInfo``.
    """
    from mlflow.models import infer_signature

    from experiments.mlflow_compat import log_keras_model

    example = task.test.x[:2]
    signature = infer_signature(example, model.predict(example, verbose=0))
    return log_keras_model(model, signature, example, model_requirements())
