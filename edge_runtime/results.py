"""Result types: a detector's :class:`Detection`, a classifier's :class:`Expression`, a :class:`Face`, a
source's :class:`Frame`, and the daemon's :class:`FrameResult` (one processed frame, its record and JSON line),
which every output takes. They depend on nothing else in the package."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

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


@dataclass
class Frame:
    """One frame: the image (grayscale, BGR or BGRA uint8), its index, its source and capture time.

    ``gray``: the frame's grayscale when the source has it for free (the Pi camera's Y plane); the
    classifier then uses it while the detector sees the colour ``image``.
    """

    image: np.ndarray
    index: int
    source: str
    time: float  # seconds since the epoch, when the frame was captured or read
    pts_ms: float | None = None  # position in a video file
    gray: np.ndarray | None = None


def iso_time(seconds: float) -> str:
    """ISO 8601 UTC timestamp with milliseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class FrameRecord:
    """What is reported for one processed frame (one JSONL line; ``python -m edge_runtime --help``)."""

    source: str
    frame: int
    reconnects: int
    time: str
    width: int
    height: int
    faces: tuple[dict[str, Any], ...]
    latency_ms: dict[str, float]
    video_time_ms: float | None = None  # video files only

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (``video_time_ms`` only when known)."""
        data = asdict(self)
        data["faces"] = list(self.faces)
        if self.video_time_ms is None:
            del data["video_time_ms"]
        return data


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: the frame, its faces, the record, its data and its JSON line."""

    frame: Frame
    faces: Sequence[Face]
    record: FrameRecord
    data: dict[str, Any]
    line: str

    @classmethod
    def build(cls, frame: Frame, faces: Sequence[Face], reconnects: int,
              latency_ms: dict[str, float]) -> FrameResult:
        """The result of ``frame``; the record is built and encoded here, once."""
        height, width = frame.image.shape[:2]
        record = FrameRecord(
            source=frame.source, frame=frame.index, reconnects=reconnects, time=iso_time(frame.time),
            width=width, height=height, faces=tuple(f.to_dict() for f in faces),
            latency_ms={k: round(v, 2) for k, v in latency_ms.items()},
            video_time_ms=None if frame.pts_ms is None else round(frame.pts_ms, 1))
        data = record.to_dict()
        return cls(frame, faces, record, data, json.dumps(data, separators=(",", ":"), ensure_ascii=False))
