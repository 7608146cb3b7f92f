"""Where things are: the project root, the bundled model, the shared assets folder."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

#: The project root (the folder holding ``edge_runtime/`` and ``models/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def bundled_models_dir() -> Path:
    """Where the shipped models live: ``$FER_MODELS``, else the source tree's ``models/``
    (a checkout or an editable install), else ``<prefix>/share/fer-edge/models`` (a wheel install)."""
    if os.environ.get("FER_MODELS"):
        return Path(os.environ["FER_MODELS"])
    source_tree = PROJECT_ROOT / "models"
    if source_tree.is_dir():
        return source_tree
    return Path(sys.prefix) / "share" / "fer-edge" / "models"


#: The model used when none is given.
DEFAULT_MODEL = bundled_models_dir() / "fer4_int8.tflite"
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
