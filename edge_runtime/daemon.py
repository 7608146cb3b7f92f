"""The camera daemon's loop: frames in, one JSON line per processed frame out.

Live sources (cameras, streams, ``--realtime`` files) are read by a grabber thread that keeps only
the newest frame: when processing is slower than the camera, stale frames are dropped (and
counted) instead of queued. A live source that stops delivering is closed and reopened with
exponential backoff. Nothing accumulates per frame, so memory stays flat over long runs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from .annotate import Annotator
from .errors import CameraUnavailableError, EdgeRuntimeError, SourceError
from .http_server import StatusBoard, StatusServer, parse_bind
from .metrics import Metrics
from .recognizer import FaceRecognizer
from .sources import Frame, FrameSource, open_source
from .tracking import IoUTracker

log = logging.getLogger(__name__)


@dataclass
class DaemonConfig:
    """Everything the daemon's command line sets (see ``python -m edge_runtime --help``)."""

    source: str
    model: str | None = None
    card: str | None = None
    output: str = "-"
    append: bool = False
    detector: str = "haar"
    detector_model: str | None = None
    threads: int | None = None
    max_fps: float | None = None
    http: str | None = None
    annotate: str | None = None
    margin: float | None = None
    min_confidence: float = 0.0
    smoothing: float = 0.5
    max_frames: int | None = None
    realtime: bool = False
    size: tuple[int, int] | None = None
    detect_max_side: int = 640
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


def iso_time(seconds: float) -> str:
    """ISO 8601 UTC timestamp with milliseconds."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


class LatestFrameGrabber:
    """Reads a live source in a background thread; :meth:`get` returns the newest unread frame.

    A frame replaced before it was read counts as dropped. When the source fails and it may
    reconnect, it is closed and reopened with exponential backoff (``initial`` .. ``maximum`` s).
    """

    def __init__(self, source: FrameSource, metrics: Metrics, stop: threading.Event,
                 board: StatusBoard | None = None, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.source = source
        self.metrics = metrics
        self.stop_event = stop
        self.board = board
        self.initial, self.maximum = initial, maximum
        self.error: SourceError | None = None
        self.ended = False
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="fer-edge-grabber", daemon=True)

    def start(self) -> None:
        """Start reading (the source must be open)."""
        self._thread.start()

    def _reopen(self, exc: SourceError) -> bool:
        """Close the failed source and reopen it with backoff; ``False`` if stopped meanwhile."""
        self.source.close()
        if self.board:
            self.board.state = "reconnecting"
        delay = self.initial
        log.warning("%s; reopening in %.1f s", exc, delay)
        while not self.stop_event.wait(delay):
            try:
                self.source.open()
            except SourceError as again:
                delay = min(delay * 2, self.maximum)
                log.warning("%s; retrying in %.1f s", again, delay)
                continue
            self.metrics.inc("source_reconnects")
            if self.board:
                self.board.state = "running"
            log.info("%s reopened", self.source.name)
            return True
        return False

    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    frame = self.source.read()
                except SourceError as exc:
                    if not self.source.reconnect:
                        self.error = exc
                        break
                    if not self._reopen(exc):
                        break
                    continue
                if frame is None:
                    break
                with self._cond:
                    if self._latest is not None:
                        self.metrics.inc("dropped_frames")
                    self._latest = frame
                    self._cond.notify_all()
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        """The newest unread frame, waiting up to ``timeout`` s; ``None`` if none came (see ``ended``)."""
        with self._cond:
            if self._latest is None and not self.ended:
                self._cond.wait(timeout)
            frame, self._latest = self._latest, None
            return frame

    def join(self, timeout: float) -> bool:
        """Wait for the thread to finish; ``True`` if it did."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()


class JsonlWriter:
    """One JSON object per line to a file or stdout (``-``); every line is flushed as it is written."""

    def __init__(self, target: str, append: bool = False) -> None:
        self.target = target
        if target == "-":
            self._stream: TextIO = sys.stdout
            self._owned = False
        else:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                self._stream = open(target, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise EdgeRuntimeError(f"cannot write --output {target} ({exc.strerror or exc})") from exc
            self._owned = True

    def write(self, record: dict) -> str:
        """Write ``record`` as one line; returns the line (without newline).

        Raises ``BrokenPipeError`` when stdout's reader went away (stdout then goes to /dev/null,
        so the interpreter's exit does not fail on it again).
        """
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except BrokenPipeError:
            if not self._owned:
                os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            raise
        return line

    def close(self) -> None:
        """Flush, and close the file if it is ours."""
        try:
            self._stream.flush()
        finally:
            if self._owned:
                self._stream.close()


class Daemon:
    """Runs the recognizer on a source until it ends, ``max_frames`` is reached, or :meth:`stop`."""

    def __init__(self, config: DaemonConfig, recognizer: FaceRecognizer | None = None,
                 source: FrameSource | None = None) -> None:
        self.config = config
        self.recognizer = recognizer
        self.source = source
        self.metrics: Metrics | None = None
        self.board: StatusBoard | None = None
        self.server: StatusServer | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the loop to finish (safe from signal handlers and other threads)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def _build(self) -> None:
        cfg = self.config
        if self.recognizer is None:
            self.recognizer = FaceRecognizer(
                cfg.model, card_path=cfg.card, detector=cfg.detector, detector_model=cfg.detector_model,
                num_threads=cfg.threads, margin=cfg.margin, min_confidence=cfg.min_confidence,
                detect_max_side=cfg.detect_max_side)
        if self.source is None:
            self.source = open_source(cfg.source, realtime=cfg.realtime, size=cfg.size, fps=cfg.max_fps)
        rec = self.recognizer
        self.metrics = Metrics(info={"model": rec.classifier.model_path.name, "runtime": rec.runtime_name,
                                     "detector": rec.detector.name, "source": self.source.name})
        self.board = StatusBoard(self.metrics)
        if cfg.http:
            host, port = parse_bind(cfg.http)
            self.server = StatusServer(self.board, host, port)

    def run(self) -> int:
        """Process frames; returns the exit code (0). Raises user errors (bad model/source)."""
        cfg = self.config
        writer = annotator = grabber = None
        try:
            self._build()
            source, rec, metrics = self.source, self.recognizer, self.metrics
            tracker = IoUTracker(rec.labels, smoothing=cfg.smoothing, min_confidence=cfg.min_confidence) \
                if source.video else None
            try:
                source.open()
            except SourceError as exc:
                if source.reconnect:  # a camera/stream: it may come up later (systemd restarts us)
                    raise CameraUnavailableError(str(exc)) from exc
                raise
            writer = JsonlWriter(cfg.output, cfg.append)
            if cfg.annotate:
                annotator = Annotator(cfg.annotate, fps=cfg.max_fps or source.fps)
            self.board.state = "running"
            if source.live:
                grabber = LatestFrameGrabber(source, metrics, self._stop, self.board,
                                             cfg.backoff_initial, cfg.backoff_max)
                grabber.start()
                frames = self._live_frames(grabber)
            else:
                frames = self._file_frames(source)
            started = time.monotonic()
            self._loop(frames, writer, tracker, annotator)
            elapsed = time.monotonic() - started
            counts = metrics.snapshot()
            log.info("done: %d frames, %d faces, %d dropped in %.1f s (%.1f frames/s)",
                     counts["frames"], counts["faces"], counts["dropped_frames"], elapsed,
                     counts["frames"] / max(elapsed, 1e-9))
            if grabber is not None and grabber.error is not None:
                raise grabber.error
            return 0
        finally:
            if self.board is not None:
                self.board.state = "stopping"
            self._stop.set()
            if grabber is not None and not grabber.join(timeout=5.0):
                log.warning("the source is still blocked in a read; exiting without waiting for it")
            elif self.source is not None:
                self.source.close()
            for closer in (writer, annotator, self.server):
                if closer is not None:
                    try:
                        closer.close()
                    except Exception as exc:  # noqa: BLE001 - keep closing the others
                        log.error("closing %s failed: %s", type(closer).__name__, exc)

    def _file_frames(self, source: FrameSource) -> Iterator[tuple[Frame, dict[str, float]]]:
        while True:
            t0 = time.perf_counter()
            frame = source.read()
            if frame is None:
                return
            yield frame, {"read": (time.perf_counter() - t0) * 1e3}

    def _live_frames(self, grabber: LatestFrameGrabber) -> Iterator[tuple[Frame, dict[str, float]]]:
        while not self._stop.is_set():
            frame = grabber.get(timeout=0.25)
            if frame is not None:
                yield frame, {"wait": max(0.0, (time.time() - frame.time) * 1e3)}
            elif grabber.ended:
                return

    def _throttle(self, last_start: float | None) -> None:
        if self.config.max_fps and last_start is not None:
            remaining = last_start + 1.0 / self.config.max_fps - time.monotonic()
            if remaining > 0:
                self._stop.wait(remaining)

    def _loop(self, frames, writer: JsonlWriter, tracker: IoUTracker | None,
              annotator: Annotator | None) -> None:
        cfg, rec, metrics = self.config, self.recognizer, self.metrics
        processed = 0
        last_start = None
        while not self._stop.is_set():
            self._throttle(last_start)
            if self._stop.is_set():
                break
            item = next(frames, None)
            if item is None:
                break
            frame, timings = item
            last_start = time.monotonic()
            t0 = time.perf_counter()
            try:
                faces = rec.recognize(frame.image, timings)
            except ValueError as exc:
                metrics.inc("frame_errors")
                log.warning("frame %s of %s skipped: %s", frame.index, frame.source, exc)
                continue
            if tracker is not None:
                t1 = time.perf_counter()
                faces = tracker.update(faces)
                timings["track"] = (time.perf_counter() - t1) * 1e3
            timings["total"] = (time.perf_counter() - t0) * 1e3
            height, width = frame.image.shape[:2]
            record = {"source": frame.source, "frame": frame.index, "time": iso_time(frame.time),
                      "width": width, "height": height, "faces": [f.to_dict() for f in faces],
                      "latency_ms": {k: round(v, 2) for k, v in timings.items()}}
            if frame.pts_ms is not None:
                record["video_time_ms"] = round(frame.pts_ms, 1)
            try:
                line = writer.write(record)
            except BrokenPipeError:
                log.warning("output closed by the reader; stopping")
                break
            self.board.set_latest(line)
            metrics.frame_done(len(faces), timings)
            if annotator is not None:
                annotator.write(frame.image, faces, frame.index, frame.source)
            processed += 1
            if cfg.max_frames and processed >= cfg.max_frames:
                break
