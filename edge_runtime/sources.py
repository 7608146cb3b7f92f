"""Frame sources behind one interface: Pi camera (picamera2), USB webcam, video file, stream URL,
one image, a directory of images.

Every source is a context manager (``with open_source(spec) as source: for frame in source: ...``)
and releases its device, file or stream on exit. Sources can be reopened after :meth:`close`
(the daemon does so, with backoff, when a camera disappears).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from .errors import SourceError

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
PICAMERA_NAMES = ("picamera2", "picamera", "picam")


@dataclass
class Frame:
    """One frame: the image (grayscale, BGR or BGRA uint8), its index, its source and capture time."""

    image: np.ndarray
    index: int
    source: str
    time: float  # seconds since the epoch, when the frame was captured or read
    pts_ms: float | None = None  # position in a video file


class FrameSource(ABC):
    """A stream of frames.

    ``live``: frames arrive in real time, so a slow consumer must drop stale ones.
    ``video``: consecutive frames show one scene (faces are tracked, scores smoothed).
    ``reconnect``: when it stops delivering, close and reopen it (with backoff).
    """

    name: str = ""
    live: bool = False
    video: bool = False
    reconnect: bool = False
    fps: float | None = None

    @abstractmethod
    def open(self) -> None:
        """Acquire the device/file; raises :class:`SourceError` when it cannot."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, ``None`` at the end; raises :class:`SourceError` if the device failed."""

    @abstractmethod
    def close(self) -> None:
        """Release the device/file (safe to call twice)."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame


def read_image(path: Path) -> np.ndarray | None:
    """Decode an image file by its content (not its extension); ``None`` if it is not a readable image."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


def is_image_file(path: Path) -> bool:
    """Whether OpenCV recognises ``path`` as an image from its first bytes."""
    try:
        return bool(cv2.haveImageReader(str(path)))
    except cv2.error:
        return False


class ImageSource(FrameSource):
    """One still image (one frame)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._image: np.ndarray | None = None
        self._done = False

    def open(self) -> None:
        self._image = read_image(self.path)
        if self._image is None:
            raise SourceError(f"{self.path} is not a readable image (corrupt, truncated, or not an image)")
        self._done = False

    def read(self) -> Frame | None:
        if self._done or self._image is None:
            return None
        self._done = True
        return Frame(self._image, 0, self.name, time.time())

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
            self._files = sorted(p for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError as exc:
            raise SourceError(f"cannot list directory {self.path} ({exc})") from exc
        if not self._files:
            raise SourceError(f"directory {self.path} has no files; give a directory of images")
        self._position = self._decoded = 0

    def read(self) -> Frame | None:
        while self._position < len(self._files):
            path = self._files[self._position]
            self._position += 1
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
                 fps: float | None = None) -> None:
        self.target = target
        self.name = str(target)
        is_device = isinstance(target, int) or str(target).startswith("/dev/")
        is_stream = isinstance(target, str) and urlparse(target).scheme in STREAM_SCHEMES
        self.is_file = not (is_device or is_stream)
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
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
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


class PiCameraSource(FrameSource):
    """A Raspberry Pi camera through picamera2 (imported only when opened).

    It asks for a ``lores`` stream in YUV420 and hands out its Y plane (cut to the width, dropping
    the stride padding) as the grayscale frame: no colour conversion at all. ``picamera2_class``
    replaces ``picamera2.Picamera2`` (tests inject a fake one).
    """

    def __init__(self, camera_num: int = 0, size: tuple[int, int] = (640, 480), fps: float | None = None,
                 picamera2_class: type | None = None, name: str | None = None) -> None:
        self.camera_num = camera_num
        self.name = name or f"picamera2:{camera_num}"
        self.live = self.video = self.reconnect = True
        self.size = size
        self.fps = fps
        self._class = picamera2_class
        self._camera = None
        self._shape = (0, 0, 0)  # height, width, stride
        self._index = 0

    def _picamera2_class(self) -> type:
        if self._class is not None:
            return self._class
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError("picamera2 is not installed: on Raspberry Pi OS run `sudo apt install "
                              "python3-picamera2` and make the venv with --system-site-packages "
                              f"(or pip install '.[edge,pi]') ({exc})") from exc
        return Picamera2

    def open(self) -> None:
        cls = self._picamera2_class()
        try:
            camera = cls(self.camera_num)
        except Exception as exc:  # noqa: BLE001 - picamera2 raises many kinds for a missing camera
            raise SourceError(f"cannot open Pi camera {self.camera_num} ({exc}); is it connected "
                              "and enabled, and is no other program using it?") from exc
        self._camera = camera
        try:
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            config = camera.create_video_configuration(
                main={"size": tuple(self.size), "format": "YUV420"},
                lores={"size": tuple(self.size), "format": "YUV420"},
                controls=controls, queue=False)
            camera.configure(config)
            lores = camera.camera_configuration()["lores"]
            width, height = lores["size"]
            self._shape = (int(height), int(width), int(lores.get("stride") or width))
            camera.start()
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise SourceError(f"cannot start Pi camera {self.camera_num} ({exc})") from exc
        self._index = 0

    def read(self) -> Frame | None:
        if self._camera is None:
            return None
        try:
            array = self._camera.capture_array("lores")
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"Pi camera {self.camera_num} stopped delivering frames ({exc})") from exc
        height, width, stride = self._shape
        if array.ndim == 1:  # a flat buffer: rows of `stride` bytes
            array = array[: height * stride].reshape(height, stride)
        gray = np.ascontiguousarray(array[:height, :width])
        frame = Frame(gray, self._index, self.name, time.time())
        self._index += 1
        return frame

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for step in ("stop", "close"):
            try:
                getattr(camera, step)()
            except Exception as exc:  # noqa: BLE001 - release as much as possible
                log.debug("picamera2 %s failed: %s", step, exc)


def open_source(spec: str | int, *, realtime: bool = False, size: tuple[int, int] | None = None,
                fps: float | None = None, picamera2_class: type | None = None) -> FrameSource:
    """The source for ``spec`` (not yet opened; use it in a ``with`` block).

    ``spec`` is ``picamera2`` (or ``picamera2:N``), a device index (``0``) or ``/dev/videoN``, an
    ``rtsp://``/``http://`` URL, a directory of images, an image file, or a video file. Files are
    told apart by their content, not their extension. ``realtime`` paces a video file like a camera.
    """
    text = str(spec).strip()
    head, _, num = text.partition(":")
    if head.lower() in PICAMERA_NAMES:
        if num and not num.isdigit():
            raise SourceError(f"bad Pi camera number in {text!r}; use picamera2 or picamera2:N")
        return PiCameraSource(int(num or 0), size=size or (640, 480), fps=fps,
                              picamera2_class=picamera2_class, name=text)
    if text.isdigit():
        return VideoSource(int(text), size=size, fps=fps)
    if text.startswith("/dev/") or urlparse(text).scheme in STREAM_SCHEMES:
        return VideoSource(text, size=size, fps=fps)
    path = Path(text)
    if path.is_dir():
        return DirectorySource(path)
    if not path.exists():
        raise SourceError(f"source {text} not found: give picamera2, a camera index (0), a video file, "
                          "an image, a directory of images or an rtsp:// / http:// URL")
    if is_image_file(path):
        return ImageSource(path)
    return VideoSource(text, realtime=realtime)
