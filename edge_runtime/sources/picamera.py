"""A Raspberry Pi camera through picamera2 (imported only when the camera is opened)."""

from __future__ import annotations

import logging
import time

from edge_runtime.errors import SetupError, SourceError
from edge_runtime.sources.frames import Frame, FrameSource
from edge_runtime.sources.yuv import y_plane, yuv420_to_bgr

log = logging.getLogger(__name__)


class PiCameraSource(FrameSource):
    """A Raspberry Pi camera through picamera2 (imported only when opened).

    It asks for a ``lores`` stream in YUV420 (the format every Pi's ISP gives its low-resolution
    output) and hands out, per frame, the BGR image converted from it for the face detector (BlazeFace
    finds fewer faces in grayscale) and its Y plane (cut to the width, dropping the stride padding)
    as ``Frame.gray`` for the classifier. ``color=False`` hands out the Y plane only (for a detector
    that works on grayscale). ``picamera2_class`` replaces ``picamera2.Picamera2`` (tests inject a
    fake one).
    """

    def __init__(self, camera_num: int = 0, size: tuple[int, int] = (640, 480), fps: float | None = None,
                 picamera2_class: type | None = None, name: str | None = None, color: bool = True) -> None:
        self.camera_num = camera_num
        self.color = color
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
            raise SetupError("picamera2 is not installed: on Raspberry Pi OS run `sudo apt install "
                              "python3-picamera2` and make the venv with --system-site-packages "
                              f"(or pip install '.[edge,pi]') ({exc})") from exc
        return Picamera2

    def open(self) -> None:
        cls = self._picamera2_class()
        try:
            camera = cls(self.camera_num)
        except Exception as exc:  # picamera2 raises many kinds for a missing camera
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
        except Exception as exc:
            self.close()
            raise SourceError(f"cannot start Pi camera {self.camera_num} ({exc})") from exc
        self._index = 0

    def read(self) -> Frame | None:
        if self._camera is None:
            return None
        try:
            array = self._camera.capture_array("lores")
        except Exception as exc:
            raise SourceError(f"Pi camera {self.camera_num} stopped delivering frames ({exc})") from exc
        height, width, stride = self._shape
        gray = y_plane(array, width, height, stride)
        if self.color and width % 2 == 0 and height % 2 == 0:
            frame = Frame(yuv420_to_bgr(array, width, height, stride), self._index, self.name, time.time(),
                          gray=gray)
        else:
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
            except Exception as exc:  # release as much as possible
                log.debug("picamera2 %s failed: %s", step, exc)
