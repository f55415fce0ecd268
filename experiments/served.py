"""Kept for models logged before the serving package existed: their
``served_model.py`` imports ``experiments.served``. New code imports
``experiments.serving``."""

from experiments.serving import *  # noqa: F403
from experiments.serving import __all__  # noqa: F401
