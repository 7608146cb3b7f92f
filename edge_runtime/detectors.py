"""Face detectors: the interface, OpenCV's Haar cascade (the default) and the factory.

A detector takes a frame (grayscale, BGR or BGRA, uint8) and returns :class:`Detection` boxes in
that frame's pixels. Two implementations: :class:`HaarDetector` (OpenCV's frontal-face cascade,
no extra files) and :class:`~edge_runtime.blazeface.BlazeFaceDetector` (MediaPipe's BlazeFace
short-range on LiteRT).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .errors import ModelError
from .preprocessing import check_frame, resize, to_gray
from .results import Detection

log = logging.getLogger(__name__)

DETECTORS = ("haar", "blazeface")
#: Margin (fraction of the box added on each side) that best matches FER2013's framing, measured
#: per detector with benchmarks/crop_margin.py on the FER2013 test faces (README table): for BlazeFace,
#: 0.05 was best or within 0.1 pt of the best with all three fer4 models so far; for Haar, 0 was 0.3-1.2 pt
#: better on the replicate border with the last two (0-0.3 pt on reflect): kept pending more evidence.
DEFAULT_MARGINS = {"haar": 0.05, "blazeface": 0.05}


@runtime_checkable
class FaceDetector(Protocol):
    """What the recognizer needs from a face detector."""

    name: str
    uses_color: bool  # False: the detector works on grayscale, so it is given grayscale frames

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in ``frame`` (grayscale, BGR or BGRA), boxes in its pixels, best first."""
        ...


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
        self.cascade = cv2.CascadeClassifier(str(path))
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


def detect_scaled(detector: FaceDetector, frame: np.ndarray, max_side: int = 640) -> list[Detection]:
    """Run ``detector`` on ``frame`` downscaled to ``max_side`` pixels (longer side) if larger.

    Boxes are returned in ``frame``'s pixels. ``max_side`` 0 disables the downscaling.
    """
    frame = check_frame(frame) if getattr(detector, "uses_color", True) else to_gray(frame)
    height, width = frame.shape[:2]
    longest = max(height, width)
    if max_side and longest > max_side:
        factor = max_side / longest
        small = resize(frame, max(1, round(width * factor)), max(1, round(height * factor)))
        return [d.scaled(1.0 / factor) for d in detector.detect(small)]
    return detector.detect(frame)


def make_detector(name: str = "haar", model_path: str | Path | None = None,
                  num_threads: int | None = None) -> FaceDetector:
    """Build a detector by name (``haar`` or ``blazeface``); ``model_path`` is the cascade or .tflite."""
    if name == "haar":
        return HaarDetector(model_path)
    if name == "blazeface":
        from .blazeface import BlazeFaceDetector
        return BlazeFaceDetector(model_path, num_threads=num_threads)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
