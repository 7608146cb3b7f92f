"""Opt-in debug output (``--annotate OUT``): frames with face boxes and labels drawn.

``OUT`` ending in .mp4/.avi/.mkv/.mov is a video; ending in .jpg/.png/.bmp one image (rewritten each
frame); a path without a suffix (or an existing folder) a directory of images. Any other suffix is
refused, and the output is checked to be writable before the first frame. Files are created 0640.
Nothing is written unless the user asks for it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.atomic_io import atomic_write_bytes
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs.sink import SinkBase
from edge_runtime.results import Face, FrameResult

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FILE_MODE = 0o640
HELP = "use a .mp4/.avi/.mkv/.mov video, a .jpg/.png/.bmp image, or a folder path without a suffix"


def annotate_mode(out: Path) -> str:
    """``video``, ``image`` or ``dir`` for ``--annotate OUT``; an error for any other suffix."""
    suffix = out.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if not suffix or out.is_dir():
        return "dir"
    raise EdgeRuntimeError(f"--annotate {out}: cannot write {suffix} files; {HELP}")


def _probe_video(out: Path) -> None:
    """Open (and remove) a small video beside ``out``: the folder is writable and the codec works."""
    fd, probe = tempfile.mkstemp(prefix=f".{out.stem}.probe.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(probe, cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[out.suffix.lower()]), 10.0, (64, 48))
        ok = writer.isOpened()
        writer.release()
    finally:
        os.unlink(probe)
    if not ok:
        raise EdgeRuntimeError(f"--annotate {out}: this OpenCV cannot write {out.suffix} video; try .avi "
                               "or a folder path")


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A BGR copy of ``image`` with each face's box, label, probability and track id drawn.

    A label is moved left, when needed, so that it stays inside the frame."""
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
        if face.profile is not None:
            text = f"{text} [{face.profile}]"
        scale = 0.4 * thickness
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 2)
        left = max(0, min(x, canvas.shape[1] - tw - 3))  # the whole label inside the frame
        cv2.rectangle(canvas, (left, top), (left + tw + 2, top + th + base + 2), (0, 255, 0), cv2.FILLED)
        cv2.putText(canvas, text, (left + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return canvas


class Annotator(SinkBase):
    """Writes annotated frames to a video, one image, or a directory of images (``--annotate``)."""

    name = "annotate"

    def __init__(self, out: str | Path, fps: float | None = None) -> None:
        self.out = Path(out)
        self.fps = fps or 10.0
        self.mode = annotate_mode(self.out)
        self._writer: cv2.VideoWriter | None = None
        self._tmp: str | None = None
        self._size: tuple[int, int] | None = None
        self.option = f"--annotate {self.out}"
        folder = self.out if self.mode == "dir" else self.out.parent
        try:
            if not self.out.parent.is_dir():
                raise FileNotFoundError(2, f"the folder {self.out.parent} does not exist; create it first")
            folder.mkdir(exist_ok=True)
            if self.mode != "dir" and self.out.is_dir():
                raise IsADirectoryError(21, "it is a folder")
            if not os.access(folder, os.W_OK):
                raise PermissionError(13, f"{folder} is not writable")
            if self.mode == "video":
                _probe_video(self.out)
        except OSError as exc:
            raise EdgeRuntimeError(f"cannot write --annotate {self.out} ({exc.strerror or exc}); {HELP}") from exc

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
        atomic_write_bytes(path, data.tobytes(), mode=FILE_MODE)

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

    def handle(self, result: FrameResult) -> None:
        """Write the result's frame with its faces drawn."""
        self.write(result.frame.image, list(result.faces), result.frame.index, result.frame.source)

    def close(self, deadline: float) -> None:
        """Finish the video (moved into place only when complete)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.chmod(self._tmp, FILE_MODE)
            os.replace(self._tmp, self.out)
            log.info("annotated video written to %s", self.out)
