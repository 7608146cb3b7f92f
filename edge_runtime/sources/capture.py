"""Frame sources behind one interface: Pi camera (picamera2), USB webcam, video file, stream URL,
one image, a directory of images.

Every source is a context manager (``with open_source(spec) as source: for frame in source: ...``)
and releases its device, file or stream on exit. Sources can be reopened after :meth:`close`
(the daemon does so, with backoff, when a camera disappears).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from edge_runtime.errors import SourceError
from edge_runtime.redact import redact
from edge_runtime.sources.frames import Frame, FrameSource
from edge_runtime.sources.image_decode import decode_image
from edge_runtime.sources.login_check import check_login
from edge_runtime.sources.picamera import PiCameraSource

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
PICAMERA_NAMES = ("picamera2", "picamera", "picam")
#: How long a stream may take to open, or to deliver the next frame, before it counts as lost.
STREAM_TIMEOUT = 15.0
#: Suffixes of the image formats OpenCV reads; a file named so is never handed to FFmpeg as a video.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".pbm", ".pgm",
                  ".ppm", ".pnm")
SOURCE_HELP = ("give picamera2, a camera index (0), a video file, an image, a directory of images "
               "or an rtsp:// / http:// URL")


def read_image(path: Path) -> np.ndarray | None:
    """Decode an image file by its content (not its extension); ``None`` if it is not a readable image.

    A very large image is decoded reduced, or refused with a :class:`SourceError`
    (:func:`~edge_runtime.sources.image_decode.decode_image`)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return decode_image(data, str(path))


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


#: How video containers begin: (offset, bytes). A file named like an image may still hold a video.
VIDEO_SIGNATURES = ((0, b"RIFF"), (4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"FLV"), (0, b"OggS"),
                    (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"), (0, b"G"))


def looks_like_video(path: Path) -> bool:
    """Whether ``path`` starts like a video container (AVI, MP4/MOV, Matroska/WebM, FLV, Ogg, MPEG)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return any(head[offset:offset + len(magic)] == magic for offset, magic in VIDEO_SIGNATURES)


def is_image_file(path: Path) -> bool:
    """Whether OpenCV recognises ``path`` as an image from its first bytes."""
    try:
        return bool(cv2.haveImageReader(str(path)))
    except cv2.error:
        return False


class ImageSource(FrameSource):
    """One still image (one frame), decoded when opened: a corrupt or truncated file is refused before
    anything else is loaded."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._image: np.ndarray | None = None

    def open(self) -> None:
        image = read_image(self.path) if is_image_file(self.path) else None
        if image is None:
            raise SourceError(f"{self.path} is not a readable image (corrupt, truncated, or not an image)")
        self._image = image

    def read(self) -> Frame | None:
        """The image the first time; then ``None``."""
        image, self._image = self._image, None
        return None if image is None else Frame(image, 0, self.name, time.time())

    def close(self) -> None:
        self._image = None


class DirectorySource(FrameSource):
    """Every image in a directory, in name order; files that are not readable images are skipped.

    Each frame's ``source`` is the path of its image file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._files: list[Path] = []
        self._position = 0
        self._decoded = 0

    def open(self) -> None:
        try:
            entries = sorted(p for p in self.path.iterdir() if not p.name.startswith("."))
        except OSError as exc:
            raise SourceError(f"cannot list directory {self.path} ({exc})") from exc
        self._files = []
        for entry in entries:
            if entry.is_file():
                self._files.append(entry)
            elif entry.is_dir():
                log.warning("skipping subfolder %s: folders inside a --source directory are not read", entry)
            elif entry.is_symlink():
                log.warning("skipping %s: broken symbolic link (its target does not exist)", entry)
            else:
                log.warning("skipping %s: not a regular file", entry)
        if not self._files:
            raise SourceError(f"directory {self.path} has no files; give a directory of images")
        self._position = self._decoded = 0

    def read(self) -> Frame | None:
        while self._position < len(self._files):
            path = self._files[self._position]
            self._position += 1
            if _is_empty(path):
                log.warning("skipping %s: empty file (0 bytes)", path)
                continue
            image = read_image(path) if is_image_file(path) else None
            if image is None:
                log.warning("skipping %s: not a readable image", path)
                continue
            self._decoded += 1
            return Frame(image, self._decoded - 1, str(path), time.time())
        if self._files and self._decoded == 0:
            raise SourceError(f"directory {self.path} has no readable image (of {len(self._files)} files)")
        return None

    def close(self) -> None:
        self._files = []


class VideoSource(FrameSource):
    """OpenCV capture: a video file, a device index / ``/dev/videoN`` (USB webcam) or a stream URL.

    Devices and URLs are ``live`` and reconnect; files are read frame by frame, as fast as they are
    consumed, unless ``realtime`` paces them at their frame rate like a camera (then a slow
    consumer drops frames).
    """

    def __init__(self, target: str | int, *, live: bool | None = None, realtime: bool = False,
                 reconnect: bool | None = None, size: tuple[int, int] | None = None,
                 fps: float | None = None, timeout: float = STREAM_TIMEOUT) -> None:
        self.target = target
        self.name = redact(str(target))
        self.timeout = timeout
        is_device = isinstance(target, int) or str(target).startswith("/dev/")
        is_stream = isinstance(target, str) and urlparse(target).scheme in STREAM_SCHEMES
        self.is_file = not (is_device or is_stream)
        self.is_stream = is_stream
        self.live = (not self.is_file or realtime) if live is None else live
        self.reconnect = (not self.is_file) if reconnect is None else reconnect
        self.realtime = realtime
        self.video = True
        self.size = size
        self.requested_fps = fps
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._frame_count = 0
        self._start = 0.0

    def open(self) -> None:
        if self.is_file and not Path(self.name).is_file():
            raise SourceError(f"video file {self.name} not found")
        if self.is_stream:  # FFmpeg gives up on an open or a read after `timeout` instead of 30 s
            ms = int(self.timeout * 1000)
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if self.is_stream:
                check_login(self.target, self.timeout)
            what = "video file" if self.is_file else "camera/stream"
            raise SourceError(f"cannot open {what} {self.name}"
                              + (" (corrupt, truncated or not a video?)" if self.is_file else
                                 " (is it connected, and is the index/URL right?)"))
        if not self.is_file:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.size:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            if self.requested_fps:
                cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        self.fps = cap.get(cv2.CAP_PROP_FPS) or None
        self._frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.is_file else 0
        self._cap = cap
        self._index = 0
        self._start = time.monotonic()

    def read(self) -> Frame | None:
        if self._cap is None:
            return None
        if self.realtime and self.fps:
            delay = self._start + self._index / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        ok, image = self._cap.read()
        if not ok or image is None:
            if self.reconnect:
                raise SourceError(f"{self.name} stopped delivering frames")
            if self._index == 0:
                raise SourceError(f"video {self.name} has no decodable frame (corrupt or truncated?)")
            if self._frame_count and self._index < self._frame_count:
                log.warning("video %s ended after %d of %d frames (truncated or corrupt?)",
                            self.name, self._index, self._frame_count)
            return None
        pts = self._cap.get(cv2.CAP_PROP_POS_MSEC) if self.is_file else None  # of the frame just read
        frame = Frame(image, self._index, self.name, time.time(), pts)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class LoopingSource(FrameSource):
    """Replays a video file or a directory of images from the start each time it ends (``--loop``).

    ``passes`` counts the restarts. A pass that yields no frame ends the replay.
    """

    def __init__(self, inner: FrameSource) -> None:
        if inner.reconnect:
            raise SourceError(f"--loop replays a video file or a directory; {inner.name} is a camera or stream")
        self.inner = inner
        self.name = inner.name
        self.live, self.video = inner.live, inner.video
        self.passes = 0
        self._read_this_pass = 0

    @property
    def fps(self) -> float | None:  # type: ignore[override]
        return self.inner.fps

    def open(self) -> None:
        self.inner.open()
        self._read_this_pass = 0

    def read(self) -> Frame | None:
        frame = self.inner.read()
        if frame is None and self._read_this_pass:
            self.inner.close()
            self.inner.open()
            self.passes += 1
            self._read_this_pass = 0
            frame = self.inner.read()
        if frame is not None:
            self._read_this_pass += 1
        return frame

    def close(self) -> None:
        self.inner.close()


def open_source(spec: str | int, *, realtime: bool = False, size: tuple[int, int] | None = None,
                fps: float | None = None, picamera2_class: type | None = None,
                loop: bool = False, color: bool = True) -> FrameSource:
    """The source for ``spec`` (not yet opened; use it in a ``with`` block).

    ``spec`` is ``picamera2`` (or ``picamera2:N``), a device index (``0``) or ``/dev/videoN``, an
    ``rtsp://``/``http://`` URL, a directory of images, an image file, or a video file. Files are
    told apart by their content, not their extension. ``realtime`` paces a video file like a camera;
    ``loop`` replays a video file or a directory forever. ``color=False``: the Pi camera hands out
    its grey Y plane only (for a detector that works on grey; other sources decode colour anyway).
    """
    source = _dispatch(spec, realtime, size, fps, picamera2_class, color)
    if loop:
        if isinstance(source, ImageSource):
            raise SourceError(f"--loop replays a video file or a directory; {source.name} is one image")
        return LoopingSource(source)
    return source


def _dispatch(spec: str | int, realtime: bool, size: tuple[int, int] | None, fps: float | None,
              picamera2_class: type | None, color: bool = True) -> FrameSource:
    text = str(spec).strip()
    if not text:
        raise SourceError(f"--source is empty; {SOURCE_HELP}")
    head, _, num = text.partition(":")
    if head.lower() in PICAMERA_NAMES:
        if num and not num.isdigit():
            raise SourceError(f"bad Pi camera number in {text!r}; use picamera2 or picamera2:N")
        return PiCameraSource(int(num or 0), size=size or (640, 480), fps=fps,
                              picamera2_class=picamera2_class, name=text, color=color)
    if text.isdigit():
        return VideoSource(int(text), size=size, fps=fps)
    if text.startswith("/dev/") or urlparse(text).scheme in STREAM_SCHEMES:
        return VideoSource(text, size=size, fps=fps)
    path = Path(text)
    if path.is_dir():
        return DirectorySource(path)
    if not path.exists():
        kind = "broken symbolic link" if path.is_symlink() else "not found"
        raise SourceError(f"--source {redact(text)}: {kind}; {SOURCE_HELP}")
    if _is_empty(path):
        raise SourceError(f"--source {text} is an empty file (0 bytes); give an image or a video file")
    if is_image_file(path):
        return ImageSource(path)
    if path.suffix.lower() in IMAGE_SUFFIXES and not looks_like_video(path):  # FFmpeg would log decoder noise
        raise SourceError(f"--source {text} is named like an image but its content is not an image OpenCV can "
                          "read (corrupt, truncated, or another format); give a JPEG, PNG, BMP, WebP or TIFF")
    return VideoSource(text, realtime=realtime)
