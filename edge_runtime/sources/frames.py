"""The frame-source interface: :class:`Frame` and :class:`FrameSource`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


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
