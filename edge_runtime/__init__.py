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
  ``labels``, ``card``, ``runtime_name``, ``margin``): detector + crop + classifier.
- :class:`ExpressionClassifier`: the .tflite model and its card, checked against each other.
- :class:`Face`, :class:`Expression`, :class:`Detection`: results.
- :class:`FaceDetector` (protocol), :class:`HaarDetector`, :class:`BlazeFaceDetector`,
  :func:`make_detector`: face detectors.
- :func:`open_source`, :class:`FrameSource`, :class:`Frame` and the sources :class:`PiCameraSource`,
  :class:`VideoSource`, :class:`ImageSource`, :class:`DirectorySource`.
- :class:`IoUTracker`: track ids and score smoothing across video frames.
- :class:`Daemon`, :class:`DaemonConfig`: the loop behind ``python -m edge_runtime``.
- :class:`ModelCard`, :func:`load_card`; errors :class:`ModelError`, :class:`SourceError`,
  :class:`ModelCardError`.
"""

from edge_runtime.detection.blazeface import BlazeFaceDetector
from edge_runtime.detection.detectors import FaceDetector, HaarDetector, make_detector
from edge_runtime.errors import EdgeRuntimeError, ModelError, SourceError
from edge_runtime.model.card import ModelCard, ModelCardError, load_card
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.paths import DEFAULT_MODEL
from edge_runtime.recognition.recognizer import FaceRecognizer
from edge_runtime.recognition.tracking import IoUTracker
from edge_runtime.results import Detection, Expression, Face
from edge_runtime.service.daemon import Daemon, DaemonConfig
from edge_runtime.sources.capture import (
    DirectorySource,
    Frame,
    FrameSource,
    ImageSource,
    PiCameraSource,
    VideoSource,
    open_source,
)

__all__ = [
    "DEFAULT_MODEL", "BlazeFaceDetector", "Daemon", "DaemonConfig", "Detection", "DirectorySource",
    "EdgeRuntimeError", "Expression", "ExpressionClassifier", "Face", "FaceDetector", "FaceRecognizer",
    "Frame", "FrameSource", "HaarDetector", "ImageSource", "IoUTracker", "ModelCard", "ModelCardError",
    "ModelError", "PiCameraSource", "SourceError", "VideoSource", "load_card", "make_detector", "open_source",
]
