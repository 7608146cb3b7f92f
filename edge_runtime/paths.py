"""Where things are: the project root, the bundled model, the shared assets folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: The project root (the folder holding ``edge_runtime/`` and ``models/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The model used when none is given.
DEFAULT_MODEL = PROJECT_ROOT / "models" / "fer4_int8.tflite"
BLAZEFACE_FILE = "face_detection_short_range.tflite"


def shared_dir() -> Path:
    """The shared data/assets folder: ``$FER_SHARED``, else ``<project root>/../shared``."""
    return Path(os.environ.get("FER_SHARED") or PROJECT_ROOT.parent / "shared")


def find_blazeface_model() -> Path | None:
    """The BlazeFace short-range model in the shared assets or an installed mediapipe wheel.

    mediapipe is located, never imported (importing it is slow and pulls in much more).
    """
    candidates = [shared_dir() / "models" / "face_detection" / BLAZEFACE_FILE]
    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidates.append(Path(root) / "modules" / "face_detection" / BLAZEFACE_FILE)
    return next((p for p in candidates if p.is_file()), None)
