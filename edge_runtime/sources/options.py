"""The sources' options (``--source`` ... ``--wait-for-source``): one frozen block, validated once."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass

from edge_runtime.options import at_least_zero, check, option, positive
from edge_runtime.sources.capture import SOURCE_HELP, open_source
from edge_runtime.sources.frames import FrameSource

#: Environment variable read when --source is not given (it keeps a stream password out of the process list).
SOURCE_ENV = "FER_EDGE_SOURCE"
#: The largest frame side and frame rate an option may ask for.
MAX_SIDE = 20000
MAX_FPS = 1000.0


def parse_size(text: str) -> tuple[int, int]:
    """argparse type: ``WIDTHxHEIGHT``."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 640x480 (got {text})") from None
    return width, height


@dataclass(frozen=True)
class SourceOptions:
    """Where frames come from and how they are read."""

    spec: str = option(MISSING, flag="--source", env=SOURCE_ENV,
                       help=f"picamera2, camera index, video, URL, image or directory (default: ${SOURCE_ENV}, "
                            "which keeps a stream password out of the process list)")
    realtime: bool = option(False, flag="--realtime", action="store_true",
                            help="play a video file at its frame rate like a camera (slow processing drops frames)")
    loop: bool = option(False, flag="--loop", action="store_true",
                        help="replay a video file or a directory from the start each time it ends")
    size: tuple[int, int] | None = option(flag="--size", type=parse_size,
                                          help="camera capture size WIDTHxHEIGHT (default 640x480 for picamera2)")
    max_fps: float | None = option(flag="--max-fps", type=float, help="process at most this many frames per second")
    max_frames: int | None = option(flag="--max-frames", type=int, help="stop after this many processed frames")
    wait_for_source: float | None = option(
        flag="--wait-for-source", type=float, metavar="SECONDS",
        help="retry a camera/stream that is not up at start for this long, then exit 3 (default: forever; 0: exit "
             "3 at once)")
    backoff_initial: float = 0.5  # seconds before the first reopen, doubling up to backoff_max
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        check(bool(str(self.spec).strip()), f"--source is empty; {SOURCE_HELP}")
        check(self.size is None or (len(self.size) == 2 and 0 < min(self.size) and max(self.size) <= MAX_SIDE),
              f"--size must be WIDTHxHEIGHT with both > 0 and <= {MAX_SIDE}, e.g. 640x480 (got {self.size})")
        positive("--max-fps", self.max_fps, MAX_FPS)
        positive("--max-frames", self.max_frames)
        at_least_zero("--wait-for-source", self.wait_for_source)
        positive("the reconnect backoff", self.backoff_initial)
        positive("the reconnect backoff", self.backoff_max)
        check(self.backoff_initial <= self.backoff_max,
              f"the reconnect backoff must satisfy 0 < initial <= max (got {self.backoff_initial:g}, "
              f"{self.backoff_max:g})")

    @property
    def frame_interval(self) -> float:
        """Seconds between processed frames at ``--max-fps`` (0 without it)."""
        return 1.0 / self.max_fps if self.max_fps else 0.0


def open_source_from_options(options: SourceOptions, color: bool = True) -> FrameSource:
    """The source ``options`` describe (not yet opened); ``color=False``: a Pi camera delivers grey only
    (see :func:`~edge_runtime.sources.capture.open_source`)."""
    return open_source(options.spec, realtime=options.realtime, size=options.size, fps=options.max_fps,
                       loop=options.loop, color=color)
