"""Face detectors: the interface, the registry of named detectors and the factory.

A detector takes a frame (grayscale, BGR or BGRA, uint8) and returns :class:`Detection` boxes in
that frame's pixels, best first. Named detectors (``DETECTORS``, the ``--detector`` choices):

- ``blazeface`` (the default): both bundled BlazeFace models on every frame, full-range's faces plus
  the short-range faces it missed (:class:`CombinedDetector`), so faces a room away and faces filling
  the frame are both found; scores are probabilities in [0, 1]. With a model file, that one model.
- ``haar``: OpenCV's frontal-face cascade (:class:`HaarDetector`); its score is the cascade's
  final-stage weight (higher is surer, not bounded by 1).

Adding a detector is one entry in ``REGISTRY``: its name, a factory ``(model_path, num_threads)`` and
its default crop margin; every list of detector names reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edge_runtime.errors import ModelError
from edge_runtime.model.preprocessing import check_frame, resize, to_gray
from edge_runtime.results import Detection

log = logging.getLogger(__name__)

#: The detector used when none is named.
DEFAULT_DETECTOR = "blazeface"


@runtime_checkable
class FaceDetector(Protocol):
    """What the recognizer needs from a face detector."""

    name: str
    uses_color: bool  # False: the detector works on grayscale, so it is given grayscale frames

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in ``frame`` (grayscale, BGR or BGRA), boxes in its pixels, best first."""
        ...


def check_detector(detector: object) -> FaceDetector:
    """``detector`` if it has what the recognizer needs (``name``, a bool ``uses_color``, ``detect``);
    else one :class:`ValueError` naming what is missing."""
    missing = [a for a in ("name", "uses_color", "detect") if not hasattr(detector, a)]
    if missing or not isinstance(detector.uses_color, bool) or not callable(detector.detect):
        lacking = f"; it lacks {', '.join(missing)}" if missing else ""
        raise ValueError(f"{type(detector).__name__} is not a face detector: it needs name, uses_color (True: give "
                         f"it colour frames, False: grey) and detect(frame){lacking}")
    return detector


class HaarDetector:
    """OpenCV's Haar cascade (``haarcascade_frontalface_default.xml`` shipped with OpenCV).

    ``min_score`` drops boxes whose final-stage weight is below it (the weak ones are mostly
    false positives on necks and clothes); ``min_size`` is in pixels of the searched image.
    """

    name = "haar"
    uses_color = False

    def __init__(self, cascade_path: str | Path | None = None, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 24, min_score: float = 1.0) -> None:
        path = Path(cascade_path) if cascade_path else \
            Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        try:
            self.cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError):  # OpenCV raises for a file that is not cascade XML
            self.cascade = cv2.CascadeClassifier()
        if self.cascade.empty():
            raise ModelError(f"cannot load the Haar cascade {path}; pass an OpenCV cascade .xml file")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.min_score = min_score

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Run the cascade on the grayscale frame."""
        gray = to_gray(frame)
        if min(gray.shape) < self.min_size:
            return []
        boxes, _levels, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        found = [Detection(box=tuple(float(v) for v in box), score=float(weight))
                 for box, weight in zip(boxes, np.ravel(weights), strict=True)]
        found = [d for d in found if d.score >= self.min_score]
        return sorted(found, key=lambda d: d.score, reverse=True)


def _overlaps(detection: Detection, others: list[Detection], share: float = 0.5) -> bool:
    """Whether ``detection`` shares more than ``share`` of the smaller box's area with one of ``others``."""
    x, y, w, h = detection.box
    for other in others:
        ox, oy, ow, oh = other.box
        iw = min(x + w, ox + ow) - max(x, ox)
        ih = min(y + h, oy + oh) - max(y, oy)
        if iw > 0 and ih > 0 and iw * ih > share * min(w * h, ow * oh):
            return True
    return False


class CombinedDetector:
    """Two detectors on every frame: all of ``primary``'s faces, plus ``secondary``'s faces that do not
    overlap one of them (more than half of the smaller box). Boxes best first."""

    def __init__(self, name: str, primary: FaceDetector, secondary: FaceDetector) -> None:
        self.name = name
        self.primary, self.secondary = primary, secondary
        self.uses_color = primary.uses_color or secondary.uses_color

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """``primary``'s faces and the ones only ``secondary`` finds."""
        found = self.primary.detect(frame)
        found += [d for d in self.secondary.detect(frame) if not _overlaps(d, found)]
        return sorted(found, key=lambda d: d.score, reverse=True)


def detect_scaled(detector: FaceDetector, frame: np.ndarray, max_side: int = 640) -> list[Detection]:
    """Run ``detector`` on ``frame`` downscaled to ``max_side`` pixels (longer side) if larger.

    ``frame`` is what the detector works on, colour or grey as its ``uses_color`` asks (the recognizer
    decides that once). Boxes are returned in ``frame``'s pixels. ``max_side`` 0 disables the downscaling.
    """
    frame = check_frame(frame)
    height, width = frame.shape[:2]
    longest = max(height, width)
    if max_side and longest > max_side:
        factor = max_side / longest
        small = resize(frame, max(1, round(width * factor)), max(1, round(height * factor)))
        return [d.scaled(1.0 / factor) for d in detector.detect(small)]
    return detector.detect(frame)


def _blazeface(model_path: str | Path | None, num_threads: int | None) -> FaceDetector:
    """Both bundled BlazeFace models combined, or the one ``model_path`` names."""
    from edge_runtime.detection.blazeface import BlazeFaceDetector

    if model_path:
        return BlazeFaceDetector(model_path, num_threads=num_threads)
    return CombinedDetector("blazeface", BlazeFaceDetector("full-range", num_threads=num_threads),
                            BlazeFaceDetector("short-range", num_threads=num_threads))


def _haar(model_path: str | Path | None, num_threads: int | None) -> FaceDetector:
    return HaarDetector(model_path)


@dataclass(frozen=True)
class NamedDetector:
    """A registry entry: how to build the detector, and its default crop margin.

    ``factory(model_path or None for the default files, num_threads)``; ``margin``: the fraction of
    the box added on each side that best matches FER2013's framing, measured with
    ``python -m benchmarks.crop_margin`` on the FER2013 test faces (docs/crop-margin.md).
    """

    factory: Callable[[str | Path | None, int | None], FaceDetector]
    margin: float


#: Named detectors, the ``--detector`` choices everywhere.
REGISTRY: dict[str, NamedDetector] = {
    "haar": NamedDetector(_haar, margin=0.05),
    "blazeface": NamedDetector(_blazeface, margin=0.05),
}
DETECTORS = tuple(REGISTRY)
#: Default crop margin per named detector.
DEFAULT_MARGINS = {name: entry.margin for name, entry in REGISTRY.items()}


def make_detector(name: str = DEFAULT_DETECTOR, model_path: str | Path | None = None,
                  num_threads: int | None = None) -> FaceDetector:
    """Build a detector by name (``DETECTORS``); ``model_path`` replaces its default model file."""
    if name not in REGISTRY:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return REGISTRY[name].factory(model_path, num_threads)
