"""The frame-source interface: :class:`FrameSource`, which yields :class:`~edge_runtime.results.Frame`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from edge_runtime.results import Frame

__all__ = ["Frame", "FrameSource"]  # Frame is a result type (edge_runtime.results), re-exported for sources


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
