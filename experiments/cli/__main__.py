"""``python -m experiments.cli``: the ``lstm-zoo`` command."""

import sys

from experiments.cli import main

sys.exit(main())
