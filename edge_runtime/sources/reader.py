"""Opening and reading a frame source off the main thread, so a hanging camera never blocks a stop.

A :class:`FrameReader` thread opens the source (waiting for a camera or stream that is not up yet),
reads it, and hands frames to the daemon's loop:

- live sources (cameras, streams, ``--realtime`` files) keep only the newest frame: a frame replaced
  while the loop waits out ``--max-fps`` (:attr:`FrameReader.pacing`) is counted as skipped, one
  replaced while the loop is busy as dropped (processing fell behind the camera); none is queued;
- files and directories are handed over in order, none dropped (the reader waits for the loop).

A camera or stream that fails is closed and reopened with exponential backoff. The state is
``waiting`` (at start) or ``reconnecting`` from before the (re)open until the first frame arrives, so a
first open that hangs shows as ``waiting`` too. Every frame gets the
next number of a sequence that runs over the daemon's life, across reconnects and ``--loop`` passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from edge_runtime.errors import CameraUnavailableError, SourceError
from edge_runtime.sources.frames import Frame, FrameSource

log = logging.getLogger(__name__)

#: Frames a file source may read ahead of the loop.
READ_AHEAD = 2
#: Seconds past the ``--wait-for-source`` deadline an open may still report its own error before the
#: reader gives up on it, wherever it is blocked.
DEADLINE_GRACE = 0.5


@dataclass
class ReaderConfig:
    """Reconnect backoff (seconds) and how long to wait for a source missing at start (None: forever)."""

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    wait_for_source: float | None = None


@dataclass
class Delivery:
    """A frame as read: its read time (ms), and the source's reconnects and replays so far."""

    frame: Frame
    read_ms: float
    reconnects: int
    passes: int


class FrameReader:
    """Reads ``source`` in a background thread; :meth:`get` returns the next frame to process.

    ``error`` holds what ended the reading, if not the end of the source: a :class:`SourceError`
    of a file, a :class:`CameraUnavailableError` once ``wait_for_source`` ran out, or an
    unexpected exception. ``opened``: the source is already open. ``count(name)`` is called for each
    reconnect (``source_reconnects``) and each frame replaced before the loop took it (``skipped_frames``
    while the loop paces itself, else ``dropped_frames``); ``on_state(state)`` for each change of state
    (``waiting``, ``reconnecting``, ``running``).
    """

    def __init__(self, source: FrameSource, stop: threading.Event, config: ReaderConfig | None = None, *,
                 count: Callable[[str], None] | None = None, on_state: Callable[[str], None] | None = None,
                 opened: bool = False, first_index: int = 0) -> None:
        self.source = source
        self.opened = opened
        self.count = count or (lambda _name: None)
        self.on_state = on_state or (lambda _state: None)
        self.stop_event = stop
        self.config = config or ReaderConfig()
        self.error: BaseException | None = None
        self.ended = False
        #: The thread was given up on while blocked in an open (``--wait-for-source`` ran out).
        self.blocked = False
        self.reconnects = 0
        #: Set by the loop while it waits out ``--max-fps``: frames replaced meanwhile are skipped, not dropped.
        self.pacing = False
        self._delivering = False  # a frame came since the last (re)open
        self._sequence = first_index
        self._first_frame_came = False
        #: ``time.monotonic()`` by which the source must be up (``--wait-for-source``); None: no limit.
        self._deadline: float | None = None
        self._base_timeout: float | None = getattr(source, "timeout", None)  # one attempt's own limit
        self._queue: deque[Delivery] = deque()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="fer-edge-reader", daemon=True)

    def start(self) -> None:
        """Start opening and reading; the ``--wait-for-source`` deadline runs from now."""
        wait = self.config.wait_for_source
        if wait is not None and not self.opened and self.source.reconnect:
            self._deadline = time.monotonic() + wait
        self._thread.start()

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _give_up(self, reason: object) -> CameraUnavailableError:
        return CameraUnavailableError(f"{reason} (gave up after --wait-for-source {self.config.wait_for_source:g} s)")

    def _open_within_deadline(self) -> None:
        """``source.open()``, an attempt's own timeout cut to what is left of the deadline."""
        remaining = self._remaining()
        if remaining is not None and self._base_timeout is not None:
            self.source.timeout = max(0.1, min(self._base_timeout, remaining))
        self.source.open()

    def _set_state(self, state: str) -> None:
        self.on_state(state)

    def _open_with_backoff(self, first: SourceError, deadline: bool, state: str) -> bool:
        """Retry ``source.open()`` with backoff until it works (``True``), the deadline (when ``deadline``:
        no attempt starts after it) or a stop."""
        self._set_state(state)
        delay = self.config.backoff_initial
        log.warning("%s; %s, retrying in %.1f s", first, state, delay)
        last: SourceError = first
        while True:
            remaining = self._remaining() if deadline else None
            if remaining is not None:
                if remaining <= 0:
                    raise self._give_up(last) from last
                delay = min(delay, remaining)
            if self.stop_event.wait(delay):
                return False
            if deadline and self._remaining() <= 0:
                raise self._give_up(last) from last
            try:
                self._open_within_deadline() if deadline else self.source.open()
            except SourceError as again:
                last = again
                delay = min(delay * 2, self.config.backoff_max)
                log.warning("%s; retrying in %.1f s", again, delay)
                continue
            return True  # "running" once its first frame arrives

    def _open_first(self) -> bool:
        if self.opened:
            self._set_state("running")
            return True
        if self.source.reconnect:  # a camera or stream: not delivering until its first frame
            self._set_state("waiting")
        try:
            self._open_within_deadline()
        except SourceError as exc:
            wait = self.config.wait_for_source
            if not self.source.reconnect:
                raise
            if wait == 0:
                raise CameraUnavailableError(str(exc)) from exc
            if not self._open_with_backoff(exc, wait is not None, "waiting"):
                return False
            log.info("%s is up", self.source.name)
            return True
        if not self.source.reconnect:
            self._set_state("running")
        return True

    def _reopen(self, exc: SourceError) -> bool:
        self._delivering = False
        self.source.close()
        if self._base_timeout is not None:
            self.source.timeout = self._base_timeout
        if not self._open_with_backoff(exc, False, "reconnecting"):
            return False
        self.reconnects += 1
        self.count("source_reconnects")
        log.info("%s reopened", self.source.name)
        return True

    def _run(self) -> None:
        try:
            if self._open_first():
                self._read_all()
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _read_all(self) -> None:
        while not self.stop_event.is_set():
            t0 = time.perf_counter()
            try:
                frame = self.source.read()
            except SourceError as exc:
                if not self.source.reconnect:
                    raise
                if not self._reopen(exc):
                    return
                continue
            if frame is None:
                return
            frame.index = self._sequence
            self._sequence += 1
            self._put(Delivery(frame, (time.perf_counter() - t0) * 1e3, self.reconnects,
                               getattr(self.source, "passes", 0)))

    def _put(self, delivery: Delivery) -> None:
        self._first_frame_came = True
        if not self._delivering:
            self._delivering = True
            self._set_state("running")
        with self._cond:
            if self.source.live:
                if self._queue:
                    self._queue.clear()
                    self.count("skipped_frames" if self.pacing else "dropped_frames")
            else:
                while len(self._queue) >= READ_AHEAD and not self.stop_event.is_set():
                    self._cond.wait(0.25)
            self._queue.append(delivery)
            self._cond.notify_all()

    def get(self, timeout: float) -> Delivery | None:
        """The next frame, waiting up to ``timeout`` s; ``None`` if none came (see ``ended``).

        A first open still blocked past the ``--wait-for-source`` deadline ends the reading here, with
        :class:`CameraUnavailableError`, whatever the open is stuck in."""
        with self._cond:
            if not self._queue and not self.ended:
                remaining = self._remaining() if not self._first_frame_came else None
                if remaining is not None:
                    timeout = max(0.0, min(timeout, remaining + DEADLINE_GRACE))
                self._cond.wait(timeout)
            remaining = self._remaining()
            if not self._queue and not self.ended and not self._first_frame_came \
                    and remaining is not None and remaining <= -DEADLINE_GRACE:
                self.error = self._give_up(f"{self.source.name} did not open")
                self.ended = self.blocked = True
            if not self._queue:
                return None
            delivery = self._queue.popleft()
            self._cond.notify_all()
            return delivery

    def join(self, timeout: float) -> bool:
        """Wait for the thread to finish; ``True`` if it did."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()
