"""Opt-in debug output (``--annotate OUT``): frames with face boxes and labels drawn.

``OUT`` ending in .mp4/.avi/.mkv/.mov is a video; ending in .jpg/.png one image (rewritten each
frame); anything else a directory of images. Nothing is written unless the user asks for it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .atomic_io import atomic_write_bytes
from .results import Face

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A BGR copy of ``image`` with each face's box, label, probability and track id drawn."""
    if image.ndim == 2 or image.shape[2] == 1:
        canvas = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        canvas = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    else:
        canvas = image.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for face in faces:
        x, y, w, h = face.box
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 255, 0), thickness)
        label = face.label or "?"
        text = f"{label} {max(face.scores.values()):.2f}"
        if face.track_id is not None:
            text = f"#{face.track_id} {text}"
        scale = 0.4 * thickness
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 2)
        cv2.rectangle(canvas, (x, top), (x + tw + 2, top + th + base + 2), (0, 255, 0), cv2.FILLED)
        cv2.putText(canvas, text, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return canvas


class Annotator:
    """Writes annotated frames to a video, one image, or a directory of images."""

    def __init__(self, out: str | Path, fps: float | None = None) -> None:
        self.out = Path(out)
        self.fps = fps or 10.0
        suffix = self.out.suffix.lower()
        self.mode = "video" if suffix in VIDEO_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else "dir"
        self._writer: cv2.VideoWriter | None = None
        self._tmp: str | None = None
        self._size: tuple[int, int] | None = None
        if self.mode == "dir":
            self.out.mkdir(parents=True, exist_ok=True)

    def write(self, image: np.ndarray, faces: list[Face], index: int, source: str | None = None) -> None:
        """Draw ``faces`` on ``image`` and write it (``source`` names the image file in directory mode)."""
        canvas = draw_faces(image, faces)
        if self.mode == "video":
            self._write_video(canvas)
            return
        if self.mode == "image":
            path = self.out
        else:
            stem = Path(source).stem if source and Path(source).suffix else f"frame_{index:06d}"
            path = self.out / f"{stem}.jpg"
        ok, data = cv2.imencode(path.suffix, canvas)
        if not ok:
            raise OSError(f"cannot encode annotated frame as {path.suffix}")
        atomic_write_bytes(path, data.tobytes())

    def _write_video(self, canvas: np.ndarray) -> None:
        if self._writer is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.out.stem}.", suffix=self.out.suffix,
                                             dir=self.out.parent)
            os.close(fd)
            self._size = (canvas.shape[1], canvas.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[self.out.suffix.lower()])
            self._writer = cv2.VideoWriter(self._tmp, fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                os.unlink(self._tmp)
                raise OSError(f"cannot write video {self.out}; try a .avi or a directory instead")
        if (canvas.shape[1], canvas.shape[0]) != self._size:
            canvas = cv2.resize(canvas, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(canvas)

    def close(self) -> None:
        """Finish the video (moved into place only when complete)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.out)
            log.info("annotated video written to %s", self.out)
