"""Result types: a detector's :class:`Detection`, a classifier's :class:`Expression`, a :class:`Face`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass(frozen=True)
class Detection:
    """A face found by a detector: ``box`` (x, y, w, h in pixels of the image searched) and a score.

    ``keypoints`` are (x, y) pixel positions when the detector gives them (BlazeFace: right eye,
    left eye, nose tip, mouth, right ear tragion, left ear tragion).
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    def scaled(self, factor: float) -> Detection:
        """The same detection in an image ``factor`` times larger."""
        x, y, w, h = self.box
        return replace(self, box=(x * factor, y * factor, w * factor, h * factor),
                       keypoints=tuple((kx * factor, ky * factor) for kx, ky in self.keypoints))


@dataclass(frozen=True)
class Expression:
    """The classifier's answer for one face: probabilities per label (card order) and the top label.

    ``label`` is ``None`` when the top probability is below the recognizer's ``min_confidence``. With a
    personal profile (:mod:`edge_runtime.recognition.calibration`), ``label`` and ``scores`` are the
    calibrated ones, ``raw_scores`` the classifier's own and ``profile`` the profile's name.
    """

    label: str | None
    scores: dict[str, float]
    raw_scores: dict[str, float] | None = None
    profile: str | None = None


@dataclass(frozen=True)
class Face:
    """One recognized face.

    ``box`` is (x, y, w, h) in pixels of the frame, ``scores`` maps every label to its probability
    (smoothed over the track in video), ``detector_score`` is the detector's confidence (BlazeFace:
    a probability; Haar: the cascade's final-stage weight, higher is surer), ``track_id`` is set
    for video only.
    """

    box: Box
    label: str | None
    scores: dict[str, float]
    detector_score: float
    track_id: int | None = None
    keypoints: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    raw_scores: dict[str, float] | None = None  # before the profile, when one was applied
    profile: str | None = None  # the name of the profile applied to this face

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """The JSON form written by the daemon."""
        out: dict[str, Any] = {
            "box": [int(v) for v in self.box],
            "label": self.label,
            "scores": {k: round(float(v), digits) for k, v in self.scores.items()},
            "detector_score": round(float(self.detector_score), digits),
        }
        if self.track_id is not None:
            out["track_id"] = self.track_id
        if self.profile is not None:
            out["profile"] = self.profile
            out["raw_scores"] = {k: round(float(v), digits) for k, v in (self.raw_scores or {}).items()}
        return out
