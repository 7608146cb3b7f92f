"""IoU tracking of faces across video frames, with per-track smoothing of the expression scores."""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, replace

import numpy as np

from edge_runtime.results import Box, Face


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed over frames."""

    track_id: int
    box: Box
    scores: np.ndarray  # smoothed probabilities, label order
    missed: int = 0


class IoUTracker:
    """Greedy IoU association of each frame's faces with the live tracks; stable ids, EMA-smoothed scores.

    Parameters:
        labels: label order of the scores.
        iou_threshold: minimum IoU for a face to continue a track.
        max_missed: frames a track survives without a matching face.
        smoothing: EMA weight of the newest frame's scores (1 = no smoothing).
        min_confidence: below this smoothed top probability the label is ``None``.
    """

    def __init__(self, labels: tuple[str, ...], iou_threshold: float = 0.3, max_missed: int = 10,
                 smoothing: float = 0.5, min_confidence: float = 0.0) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1] (got {smoothing})")
        self.labels = tuple(labels)
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.min_confidence = min_confidence
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._scene: Hashable = None

    def reset(self) -> None:
        """Forget every track (ids keep counting up)."""
        self.tracks.clear()

    def update(self, faces: list[Face], scene: Hashable = None) -> list[Face]:
        """Associate this frame's faces with the tracks; return them with ``track_id`` and smoothed scores.

        ``scene``: any key that changes when the picture may jump (a camera reconnect, a file's next pass);
        a new key forgets the tracks first, so a face is never continued across the cut."""
        if scene != self._scene:
            self._scene = scene
            self.reset()
        pairs = sorted(((iou(track.box, face.box), t, f) for t, track in enumerate(self.tracks)
                        for f, face in enumerate(faces)), reverse=True)
        matched_tracks: set[int] = set()
        assignment: dict[int, Track] = {}
        for overlap, t, f in pairs:
            if overlap < self.iou_threshold:
                break
            if t in matched_tracks or f in assignment:
                continue
            matched_tracks.add(t)
            assignment[f] = self.tracks[t]
        for t, track in enumerate(self.tracks):
            if t not in matched_tracks:
                track.missed += 1
        self.tracks = [tr for t, tr in enumerate(self.tracks)
                       if t in matched_tracks or tr.missed <= self.max_missed]
        out = []
        for f, face in enumerate(faces):
            scores = np.array([face.scores[k] for k in self.labels], dtype=np.float64)
            track = assignment.get(f)
            if track is None:
                track = Track(next(self._ids), face.box, scores)
                self.tracks.append(track)
            else:
                track.scores = self.smoothing * scores + (1.0 - self.smoothing) * track.scores
                track.box, track.missed = face.box, 0
            best = int(np.argmax(track.scores))
            label = self.labels[best] if track.scores[best] >= self.min_confidence else None
            out.append(replace(face, track_id=track.track_id, label=label,
                               scores={k: float(v) for k, v in zip(self.labels, track.scores, strict=True)}))
        return out
