"""The JSON-over-stdio protocol of the mobile test clients (tests/mediapipe_client.py, tests/tasklib_client.py).

Each client runs as a script in a venv of its own, without fer-edge, so this module needs the standard
library only; the script's folder is on ``sys.path``, so they import it as ``client_io``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable


def serve(classify: Callable[[str, list[str]], dict], metadata: Callable[[list[str]], dict]) -> None:
    """Answer the JSON request on stdin with one JSON line on stdout: ``{"metadata": [PATH, ...]}`` or
    ``{"model": PATH, "images": [PATH, ...]}``."""
    request = json.load(sys.stdin)
    answer = metadata(request["metadata"]) if "metadata" in request else classify(request["model"], request["images"])
    print(json.dumps(answer))
