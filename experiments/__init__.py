"""lstm-zoo's experiments: data to a tracked, served model."""

from zoo import startup

# Before anything imports TensorFlow: its C++ start-up lines stay off the terminal.
startup.install()
