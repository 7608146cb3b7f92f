"""FaceRecognizer: detect faces in a frame, crop them like the training data, classify their expression."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.detection.alignment import DEFAULT_ALIGN, aligned_crop
from edge_runtime.detection.detectors import (
    DEFAULT_DETECTOR,
    DEFAULT_MARGINS,
    FaceDetector,
    check_detector,
    detect_scaled,
    make_detector,
)
from edge_runtime.model.card import ModelCard, file_sha256
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.model.preprocessing import check_frame, crop_face, to_gray
from edge_runtime.recognition.calibration import Calibration, Profile, ProfileError, load_profile
from edge_runtime.recognition.options import DEFAULT_DETECT_MAX_SIDE, DEFAULT_TTA, RecognizerOptions
from edge_runtime.results import Box, Detection, Expression, Face

log = logging.getLogger(__name__)



def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> Box | None:
    """Round a float box to pixels and clip it to the frame; ``None`` if nothing is left."""
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(width, int(round(box[0] + box[2]))), min(height, int(round(box[1] + box[3])))
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


@dataclass
class RecognizeTrace:
    """What one :meth:`FaceRecognizer.recognize` call did, for the benchmarks and checks that observe it.

    ``stage_ns``: nanoseconds per stage: ``preprocess`` (frame check, grayscale), ``detect``,
    ``crop`` (box clipping and cropping) and ``classify``; ``crops``: detection index -> the crop
    the classifier saw, aligned or not (detections whose box falls outside the frame have none).
    """

    detections: list[Detection] = field(default_factory=list)
    crops: dict[int, np.ndarray] = field(default_factory=dict)
    stage_ns: dict[str, int] = field(default_factory=dict)


class FaceRecognizer:
    """Facial expression recognition on frames: a face detector plus the expression classifier.

    Parameters:
        model_path: the .tflite model (its card ``X.json`` beside it); default ``models/fer4_int8.tflite``.
        card_path: a card elsewhere than beside the model.
        detector: ``"blazeface"`` (default: both bundled BlazeFace models), ``"haar"`` or any
            object with ``name`` and ``detect(frame)``.
        detector_model: the cascade .xml / BlazeFace .tflite, when not the default one.
        num_threads: interpreter threads (classifier and BlazeFace).
        margin: fraction of the face box added on each side before cropping; default: the card's
            ``face_crop``, else the value measured for the detector (``DEFAULT_MARGINS``).
        min_confidence: below this top probability a face's ``label`` is ``None``.
        detect_max_side: frames larger than this (longer side, pixels) are downscaled for detection
            only; faces are still cropped from the full frame. ``0`` disables it.
        tta: ``"flip"`` averages each face's probabilities with its mirror image's (two classifier
            runs per face); ``"none"`` runs the classifier once.
        align: rotate each face crop so the eyes are level, for detections with eye keypoints
            (BlazeFace; Haar's are cropped unrotated); see :mod:`edge_runtime.detection.alignment`.
        profile: a personal profile (a file from ``fer-edge enrol``, or a loaded :class:`Profile`):
            :meth:`recognize` re-scores the **largest** face of each frame against it (the enrolled
            person, nearest the camera; other faces keep the model's scores), and
            :meth:`classify_face` / :meth:`classify_faces` every crop they are given. See
            :mod:`edge_runtime.recognition.calibration`.
    """

    def __init__(self, model_path: str | Path | None = None, *, card_path: str | Path | None = None,
                 detector: str | FaceDetector = DEFAULT_DETECTOR, detector_model: str | Path | None = None,
                 num_threads: int | None = None, margin: float | None = None,
                 min_confidence: float = 0.0, detect_max_side: int = DEFAULT_DETECT_MAX_SIDE, tta: str = DEFAULT_TTA,
                 align: bool = DEFAULT_ALIGN, profile: str | Path | Profile | None = None) -> None:
        checked = RecognizerOptions(  # the one validation of these settings (ConfigError, a ValueError)
            detector=detector if isinstance(detector, str) else DEFAULT_DETECTOR,
            **({} if num_threads is None else {"threads": num_threads}), margin=margin,
            min_confidence=min_confidence, detect_max_side=detect_max_side, tta=tta, align=align)
        self.classifier = ExpressionClassifier(model_path, card_path, num_threads=num_threads,
                                               min_confidence=checked.min_confidence, tta=checked.tta)
        self.detector = make_detector(detector, detector_model, num_threads) \
            if isinstance(detector, str) else check_detector(detector)
        #: Whether the detector is given colour frames (else grey): decided here, once, from the detector.
        self.uses_color = self.detector.uses_color
        if margin is None:
            margin = self.card.face_crop.margin_for(self.detector.name)
        if margin is None:
            margin = DEFAULT_MARGINS.get(self.detector.name, 0.0)
        self.margin = float(margin)
        self.detect_max_side = int(detect_max_side)
        self.align = align
        self.calibration: Calibration | None = None
        if profile is not None:
            loaded = profile if isinstance(profile, Profile) else load_profile(profile)
            if loaded.tta != tta:
                raise ProfileError(f"profile {loaded.name!r} was enrolled with --tta {loaded.tta}; run with --tta "
                                   f"{loaded.tta}, or enrol again with --tta {tta}")
            self.calibration = Calibration(loaded, self.card, file_sha256(self.classifier.model_path))
        log.info("recognizer: model %s (%s, labels %s), runtime %s, detector %s, margin %.2f, tta %s, align %s",
                 self.classifier.model_path, self.card.variant, ",".join(self.labels),
                 self.runtime_name, self.detector.name, self.margin, tta, align)

    @classmethod
    def create_from_options(cls, options: RecognizerOptions, *,
                            detector: FaceDetector | None = None) -> FaceRecognizer:
        """A recognizer as ``options`` (validated when they were built) describe it; ``detector``: one already
        made from them (the daemon makes it first, to tell the source whether to deliver colour)."""
        return cls(options.model, card_path=options.card,
                   detector=detector if detector is not None else options.detector,
                   detector_model=options.detector_model, num_threads=options.threads, margin=options.margin,
                   min_confidence=options.min_confidence, detect_max_side=options.detect_max_side,
                   tta=options.tta, align=options.align, profile=options.profile)

    @property
    def card(self) -> ModelCard:
        """The model card."""
        return self.classifier.card

    @property
    def labels(self) -> tuple[str, ...]:
        """Expression labels, in the model's output order (from the card)."""
        return self.classifier.labels

    @property
    def runtime_name(self) -> str:
        """The TFLite runtime in use (``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow``)."""
        return self.classifier.runtime_name

    @property
    def min_confidence(self) -> float:
        """Top probability below which a face's label is ``None``."""
        return self.classifier.min_confidence

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in ``frame`` (boxes in its pixels), detected on a downscaled copy of large frames."""
        return detect_scaled(self.detector, frame, self.detect_max_side)

    def crop(self, frame: np.ndarray, box: Box, keypoints: Sequence[tuple[float, float]] = ()) -> np.ndarray:
        """The crop the classifier sees for a face ``box`` (x, y, w, h) of ``frame``: grey, or the frame's
        colours for a model whose card takes RGB (``channels`` 3); rotated so the eyes are level when
        aligning and the detection's ``keypoints`` are given."""
        return self._crop(frame if self.card.input.channels == 3 else to_gray(frame), box, keypoints)

    def _crop(self, image: np.ndarray, box: Box, keypoints: Sequence[tuple[float, float]]) -> np.ndarray:
        if self.align:
            return aligned_crop(image, box, self.margin, keypoints)
        return crop_face(image, box, self.margin)

    def classify_face(self, crop: np.ndarray) -> Expression:
        """Expression of one face crop (grayscale, BGR or BGRA, any size; square crops are not distorted).

        For callers with their own detector; :meth:`crop` frames a box like :meth:`recognize` does.
        """
        return self._calibrated(self.classifier.classify(crop))

    def classify_faces(self, crops: Sequence[np.ndarray]) -> list[Expression]:
        """Expressions of several face crops (the same answers as one at a time)."""
        return [self._calibrated(e) for e in self.classifier.classify_many(crops)]

    def _calibrated(self, expression: Expression) -> Expression:
        """``expression`` against the profile, when there is one."""
        if self.calibration is None:
            return expression
        return self.calibration.expression(expression, self.min_confidence)

    def recognize(self, frame: np.ndarray, timings: dict[str, float] | None = None,
                  trace: RecognizeTrace | None = None, gray: np.ndarray | None = None) -> list[Face]:
        """Faces in ``frame`` (grayscale, BGR or BGRA, any size) with their expressions.

        ``timings``, when given, receives the milliseconds spent per stage
        (``preprocess``, ``detect``, ``classify``, the last including the crops); ``trace``
        receives the detections, the crops and finer stage times. ``gray``: the frame's grayscale
        when the caller has it (the Pi camera's Y plane), used for the crops instead of converting.
        """
        clock = time.perf_counter_ns
        t0 = clock()
        frame = check_frame(frame)
        gray = to_gray(frame) if gray is None else gray
        t1 = clock()
        detections = self.detect(frame if self.uses_color else gray)
        t2 = clock()
        faces = []
        crop_ns = 0
        height, width = gray.shape
        largest = max(range(len(detections)), key=lambda i: detections[i].box[2] * detections[i].box[3],
                      default=None)
        source = frame if self.card.input.channels == 3 else gray   # an RGB model gets colour crops
        for index, detection in enumerate(detections):
            c0 = clock()
            box = clip_box(detection.box, width, height)
            crop = None if box is None else self._crop(source, box, detection.keypoints)
            crop_ns += clock() - c0
            if crop is None:
                continue
            if trace is not None:
                trace.crops[index] = crop
            expression = self.classifier.classify(crop)
            if index == largest:
                expression = self._calibrated(expression)
            faces.append(Face(box=box, label=expression.label, scores=expression.scores,
                              detector_score=detection.score, keypoints=detection.keypoints,
                              raw_scores=expression.raw_scores, profile=expression.profile))
        t3 = clock()
        if timings is not None:
            timings.update(preprocess=(t1 - t0) / 1e6, detect=(t2 - t1) / 1e6, classify=(t3 - t2) / 1e6)
        if trace is not None:
            trace.detections = detections
            trace.stage_ns = {"preprocess": t1 - t0, "detect": t2 - t1, "crop": crop_ns,
                              "classify": t3 - t2 - crop_ns}
        return faces
