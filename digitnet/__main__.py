"""``python -m digitnet`` is the same as ``python -m digitnet.train``."""

import sys

from .train import main

sys.exit(main())
