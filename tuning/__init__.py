"""lstm-zoo's hyperparameter search: keras-tuner over the zoo, tracked in MLflow."""

from zoo import startup

# Before anything imports TensorFlow: its C++ start-up lines stay off the terminal.
startup.install()
