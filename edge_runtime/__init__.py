"""edge_runtime: facial expression recognition on a Raspberry Pi or other ARM board.

Needs only numpy, OpenCV, prometheus_client and a TFLite runtime (``ai_edge_litert``, else
``tflite_runtime``, else ``tensorflow.lite`` as a last resort); TensorFlow is never imported unless it is
the only runtime.

Its parts: ``model/`` (the card, the LiteRT interpreter, the classifier), ``detection/`` (BlazeFace,
Haar, alignment), ``recognition/`` (detector + classifier, tracking), ``sources/`` (cameras, streams,
files, the background reader), ``outputs/`` (every output behind one ``Sink`` interface) and ``service/``
(the validated configuration, the daemon's loop, the command lines).

Library API::

    from edge_runtime import FaceRecognizer, open_source

    recognizer = FaceRecognizer()                 # models/fer4_int8.tflite + its card, BlazeFace detector
    for face in recognizer.recognize(frame):      # frame: grayscale, BGR or BGRA, any size
        print(face.box, face.label, face.scores, face.detector_score)
    expression = recognizer.classify_face(crop)   # your own detector: label + scores of one crop

    with open_source("0") as source:              # picamera2, webcam, video, URL, image, directory
        for frame in source:
            faces = recognizer.recognize(frame.image)

Public names:

- :class:`FaceRecognizer` (``recognize``, ``classify_face``, ``classify_faces``, ``crop``, ``detect``;
  ``labels``, ``card``, ``runtime_name``, ``margin``): detector + crop + classifier; ``profile=`` reads
  one person against their own neutral face (:class:`Profile`, :func:`load_profile`, ``fer-edge enrol``).
- :class:`ExpressionClassifier`: the .tflite model and its card, checked against each other.
- :class:`Face`, :class:`Expression`, :class:`Detection`: results.
- :class:`FaceDetector` (protocol), :class:`HaarDetector`, :class:`BlazeFaceDetector`,
  :func:`make_detector`: face detectors.
- :func:`open_source`, :class:`FrameSource`, :class:`Frame` and the sources :class:`PiCameraSource`,
  :class:`VideoSource`, :class:`ImageSource`, :class:`DirectorySource`.
- :class:`IoUTracker`: track ids and score smoothing across video frames.
- :class:`Daemon`, :class:`DaemonConfig`: the loop behind ``python -m edge_runtime``.

Names are imported on first use: ``import edge_runtime`` itself loads nothing else.
- :class:`ModelCard`, :func:`load_card`; errors :class:`ModelError`, :class:`SourceError`,
  :class:`ModelCardError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each public name and the module that defines it, imported on first use (PEP 562): importing the
#: package loads nothing, and ``FaceRecognizer`` loads no HTTP, MQTT or Prometheus module.
_EXPORTS = {
    "BlazeFaceDetector": "edge_runtime.detection.blazeface",
    "FaceDetector": "edge_runtime.detection.detectors",
    "HaarDetector": "edge_runtime.detection.detectors",
    "make_detector": "edge_runtime.detection.detectors",
    "EdgeRuntimeError": "edge_runtime.errors",
    "ModelError": "edge_runtime.errors",
    "SourceError": "edge_runtime.errors",
    "ModelCard": "edge_runtime.model.card",
    "ModelCardError": "edge_runtime.model.card",
    "load_card": "edge_runtime.model.card",
    "ExpressionClassifier": "edge_runtime.model.classifier",
    "DEFAULT_MODEL": "edge_runtime.paths",
    "FaceRecognizer": "edge_runtime.recognition.recognizer",
    "Profile": "edge_runtime.recognition.calibration",
    "load_profile": "edge_runtime.recognition.calibration",
    "IoUTracker": "edge_runtime.recognition.tracking",
    "Detection": "edge_runtime.results",
    "Expression": "edge_runtime.results",
    "Face": "edge_runtime.results",
    "Daemon": "edge_runtime.service.daemon",
    "DaemonConfig": "edge_runtime.service.config",
    "DirectorySource": "edge_runtime.sources.capture",
    "ImageSource": "edge_runtime.sources.capture",
    "PiCameraSource": "edge_runtime.sources.capture",
    "VideoSource": "edge_runtime.sources.capture",
    "open_source": "edge_runtime.sources.capture",
    "Frame": "edge_runtime.sources.frames",
    "FrameSource": "edge_runtime.sources.frames",
}

__all__ = [
    "BlazeFaceDetector", "DEFAULT_MODEL", "Daemon", "DaemonConfig", "Detection", "DirectorySource",
    "EdgeRuntimeError", "Expression", "ExpressionClassifier", "Face", "FaceDetector", "FaceRecognizer", "Frame",
    "FrameSource", "HaarDetector", "ImageSource", "IoUTracker", "ModelCard", "ModelCardError", "ModelError",
    "PiCameraSource", "Profile", "SourceError", "VideoSource", "load_card", "load_profile", "make_detector",
    "open_source",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see
    from edge_runtime.detection.blazeface import BlazeFaceDetector
    from edge_runtime.detection.detectors import FaceDetector, HaarDetector, make_detector
    from edge_runtime.errors import EdgeRuntimeError, ModelError, SourceError
    from edge_runtime.model.card import ModelCard, ModelCardError, load_card
    from edge_runtime.model.classifier import ExpressionClassifier
    from edge_runtime.paths import DEFAULT_MODEL
    from edge_runtime.recognition.calibration import Profile, load_profile
    from edge_runtime.recognition.recognizer import FaceRecognizer
    from edge_runtime.recognition.tracking import IoUTracker
    from edge_runtime.results import Detection, Expression, Face
    from edge_runtime.service.config import DaemonConfig
    from edge_runtime.service.daemon import Daemon
    from edge_runtime.sources.capture import DirectorySource, ImageSource, PiCameraSource, VideoSource, open_source
    from edge_runtime.sources.frames import Frame, FrameSource
