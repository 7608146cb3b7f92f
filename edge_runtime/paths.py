"""Where things are: the bundled expression models, the bundled face detectors, the shared assets folder.

The shipped expression models are package data of ``edge_runtime.models`` (the repository's top-level
``models/`` folder, mapped onto that package by ``pyproject.toml``); the BlazeFace models are package data
in ``edge_runtime/face_detection/``. Both are found with :mod:`importlib.resources`, so a wheel, a
``pip install --user`` and an editable install all find them; a source checkout run without installing
falls back to ``<checkout>/models``.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

#: The project root of a source checkout (the folder holding ``edge_runtime/`` and ``models/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_PACKAGE = "edge_runtime.models"

#: The bundled BlazeFace models (MediaPipe 0.10.21, Apache-2.0; see THIRD_PARTY_NOTICES.md).
BLAZEFACE_FILES = {
    "short-range": "face_detection_short_range.tflite",  # 128x128 input: faces near the camera
    "full-range": "face_detection_full_range_sparse.tflite",  # 192x192 input: faces up to a room away
}


def _package_dir(package: str) -> Path | None:
    """The folder of an importable package on the file system, or ``None``."""
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        return None
    path = Path(str(root))
    return path if isinstance(root, Path) or path.is_dir() else None


def bundled_models_dir() -> Path:
    """Where the shipped expression models live.

    ``$FER_MODELS`` if set, else the installed ``edge_runtime.models`` package (wheel, ``--user`` or
    editable install), else the source checkout's ``models/``.
    """
    if os.environ.get("FER_MODELS"):
        return Path(os.environ["FER_MODELS"])
    installed = _package_dir(MODELS_PACKAGE)
    if installed is not None and any(installed.glob("*.tflite")):
        return installed
    return PROJECT_ROOT / "models"


def bundled_detector_file(kind: str) -> Path:
    """The bundled BlazeFace model ``kind`` (``short-range`` or ``full-range``)."""
    if kind not in BLAZEFACE_FILES:
        raise ValueError(f"unknown BlazeFace model {kind!r}; choose one of {', '.join(BLAZEFACE_FILES)}")
    folder = _package_dir("edge_runtime") or Path(__file__).resolve().parent
    return folder / "face_detection" / BLAZEFACE_FILES[kind]


#: The file name of the expression model used when none is given.
DEFAULT_MODEL_NAME = "fer4_int8.tflite"


def default_model() -> Path:
    """The expression model used when none is given (looked up on each call: ``$FER_MODELS`` may change)."""
    return bundled_models_dir() / DEFAULT_MODEL_NAME


def __getattr__(name: str) -> Path:
    """``DEFAULT_MODEL``, computed on use rather than at import (PEP 562)."""
    if name == "DEFAULT_MODEL":
        return default_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def shared_dir() -> Path:
    """The shared data/assets folder: ``$FER_SHARED``, else ``<project root>/../shared``."""
    return Path(os.environ.get("FER_SHARED") or PROJECT_ROOT.parent / "shared")


def find_blazeface_model(kind: str = "short-range") -> Path | None:
    """The bundled BlazeFace model ``kind``, or ``None`` if the install lacks it."""
    path = bundled_detector_file(kind)
    return path if path.is_file() else None
