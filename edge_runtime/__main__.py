"""``python -m edge_runtime``: see :mod:`edge_runtime.cli`."""

import sys

from .cli import main

sys.exit(main())
