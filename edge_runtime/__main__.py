"""``python -m edge_runtime``: see :mod:`edge_runtime.service.cli`."""

import sys

from edge_runtime.service.cli import main

sys.exit(main())
