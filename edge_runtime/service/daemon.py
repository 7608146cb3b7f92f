"""The camera daemon's loop: frames in, one result per processed frame handed to every output.

:meth:`Daemon.prepare` loads the model and the detector, opens a file source, and builds and starts
the outputs (:func:`~edge_runtime.service.sinks.build_sinks`); the configuration was validated when it
was built (:mod:`edge_runtime.service.config`). :meth:`Daemon.run` then processes frames until the
source ends, ``max_frames`` is reached, an output ends the run, or :meth:`Daemon.stop`. The source is
opened and read by a :class:`~edge_runtime.sources.reader.FrameReader` thread, so the loop (and a stop
request) never waits on a camera that hangs. Nothing accumulates per frame, so memory stays flat over
long runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from edge_runtime.detection.detectors import make_detector
from edge_runtime.outputs.metrics import Metrics
from edge_runtime.outputs.sink import OutputClosed, Sink, output_errors
from edge_runtime.recognition.recognizer import FaceRecognizer
from edge_runtime.recognition.tracking import IoUTracker
from edge_runtime.results import FrameResult
from edge_runtime.service.config import DaemonConfig
from edge_runtime.service.sinks import build_sinks
from edge_runtime.sources.frames import FrameSource
from edge_runtime.sources.options import open_source_from_options
from edge_runtime.sources.reader import Delivery, FrameReader, ReaderConfig

log = logging.getLogger(__name__)

#: Seconds the daemon waits for a reader stuck in an open or a read before exiting without it.
READER_JOIN_TIMEOUT = 1.0
#: Seconds a stop may take from the loop's end; the outputs' goodbyes get what the reader leaves of it.
STOP_BUDGET = 1.8


class Daemon:
    """Runs the recognizer on a source until it ends, ``max_frames`` is reached, or :meth:`stop`.

    ``extra_sinks``: outputs of your own (:class:`~edge_runtime.outputs.sink.Sink`), started and handed
    every result like the configured ones (before the JSONL results, which open last).
    """

    def __init__(self, config: DaemonConfig, recognizer: FaceRecognizer | None = None,
                 source: FrameSource | None = None, extra_sinks: Sequence[Sink] = ()) -> None:
        self.config = config
        self.recognizer = recognizer
        self.source = source
        self.extra_sinks = list(extra_sinks)
        self.metrics: Metrics | None = None
        self.sinks: list[Sink] = []
        self.reader: FrameReader | None = None
        self._prepared = False
        self._source_open = False
        self._stop = threading.Event()

    def sink(self, name: str) -> Sink | None:
        """The started output called ``name`` (``jsonl``, ``http``, ``mqtt``, ``live``, ``annotate``)."""
        return next((s for s in self.sinks if s.name == name), None)

    def stop(self) -> None:
        """Ask the loop to finish (safe from signal handlers and other threads)."""
        self._stop.set()

    def reopen_output(self) -> None:
        """Reopen the output files before the next result (SIGHUP, after logrotate moved them)."""
        for sink in self.sinks:
            sink.reopen()

    def prepare(self) -> None:
        """Load everything and start the outputs; raises :class:`EdgeRuntimeError` (or a card error) for
        bad input, having released what it opened. A file source is opened here; cameras and streams by
        the reader. The results file is replaced only once everything else is ready."""
        if self._prepared:
            return
        try:
            self._prepare()
        except BaseException:
            self._release()
            raise
        self._prepared = True

    def _prepare(self) -> None:
        cfg = self.config
        rec_cfg, src_cfg = cfg.recognizer, cfg.source
        detector = self.recognizer.detector if self.recognizer is not None else \
            make_detector(rec_cfg.detector, rec_cfg.detector_model, rec_cfg.threads)
        if self.source is None:  # a Pi camera delivers colour only to a detector that uses it
            self.source = open_source_from_options(src_cfg, color=detector.uses_color)
        if not self.source.reconnect:  # a bad file is reported before the model is loaded
            self.source.open()
            self._source_open = True
        if self.recognizer is None:
            self.recognizer = FaceRecognizer.create_from_options(rec_cfg, detector=detector)
        rec = self.recognizer
        self.metrics = Metrics(info={"model": rec.classifier.model_path.name, "runtime": rec.runtime_name,
                                     "detector": rec.detector.name, "source": self.source.name})
        outputs = build_sinks(cfg, self.metrics, tuple(rec.labels), source_fps=self.source.fps)
        for sink in self.extra_sinks:
            self.metrics.register(sink)
        for sink in outputs.start_order(self.extra_sinks):  # the results file opens last
            with output_errors(sink):
                sink.start()
            self.sinks.append(sink)  # only started outputs are closed

    def run(self) -> int:
        """Process frames; returns 0. Raises what ended the source early (see :class:`FrameReader`) or
        an output's fatal error (a refused MQTT login)."""
        src = self.config.source
        try:
            self.prepare()
            tracker = IoUTracker(self.recognizer.labels, smoothing=self.config.recognizer.smoothing,
                                 min_confidence=self.config.recognizer.min_confidence) if self.source.video else None
            self.reader = FrameReader(self.source, self._stop,
                                      ReaderConfig(src.backoff_initial, src.backoff_max, src.wait_for_source),
                                      count=self.metrics.inc, on_state=self.metrics.set_state,
                                      opened=self._source_open, first_index=self._first_index())
            self.reader.start()
            started = time.monotonic()
            self._loop(tracker)
            elapsed = time.monotonic() - started
            if self.reader.error is not None:
                raise self.reader.error
            counts = self.metrics.snapshot()
            log.info("done: %d frames, %d faces, %d dropped (processing behind), %d skipped (--max-fps), "
                     "%d reconnects in %.1f s (%.1f frames/s)", counts["frames"], counts["faces"],
                     counts["dropped_frames"], counts["skipped_frames"], counts["source_reconnects"],
                     elapsed, counts["frames"] / max(elapsed, 1e-9))
            return 0
        finally:
            self._shutdown()

    def _first_index(self) -> int:
        """The first frame number: after the last one already in an ``--append`` results file."""
        jsonl = self.sink("jsonl")
        return 0 if jsonl is None else jsonl.next_frame

    def _shutdown(self) -> None:
        if self.metrics is not None:
            self.metrics.set_state("stopping")
        self._stop.set()
        deadline = time.monotonic() + STOP_BUDGET
        blocked = self.reader is not None and (self.reader.blocked or not self.reader.join(READER_JOIN_TIMEOUT))
        if blocked:  # closing the source under the blocked reader would crash it
            log.info("the source is still blocked in an open or a read; exiting without waiting for it")
        self._release(close_source=not blocked, deadline=deadline)

    def _release(self, close_source: bool = True, deadline: float | None = None) -> None:
        if close_source and self.source is not None:
            self.source.close()
        deadline = time.monotonic() + 1.0 if deadline is None else deadline
        for sink in reversed(self.sinks):  # the results file first, the HTTP server and MQTT last
            try:
                sink.close(deadline)
            except Exception:  # keep closing the others
                log.error("closing the %s output failed", sink.name, exc_info=True)

    def _throttle(self, last_start: float | None) -> None:
        max_fps = self.config.source.max_fps
        if max_fps and last_start is not None:
            remaining = last_start + 1.0 / max_fps - time.monotonic()
            if remaining > 0:
                self.reader.pacing = True  # frames replaced meanwhile are skipped on purpose, not dropped
                try:
                    self._stop.wait(remaining)
                finally:
                    self.reader.pacing = False

    def _next(self) -> Delivery | None:
        """The next frame; ``None`` once stopped or the source ended. Raises an output's fatal error."""
        while not self._stop.is_set():
            for sink in self.sinks:
                if sink.error is not None:
                    raise sink.error
            delivery = self.reader.get(timeout=0.25)
            if delivery is not None or self.reader.ended:
                return delivery
        return None

    def _recognize(self, delivery: Delivery, tracker: IoUTracker | None) -> FrameResult | None:
        """One frame through the recognizer (and the tracker); ``None`` when the frame cannot be used."""
        frame = delivery.frame
        timings = {"wait": max(0.0, (time.time() - frame.time) * 1e3)} if self.source.live \
            else {"read": delivery.read_ms}
        t0 = time.perf_counter()
        try:
            faces = self.recognizer.recognize(frame.image, timings, gray=frame.gray)
        except ValueError as exc:
            self.metrics.inc("frame_errors")
            log.warning("frame %s of %s skipped: %s", frame.index, frame.source, exc)
            return None
        if tracker is not None:
            t1 = time.perf_counter()
            faces = tracker.update(faces, scene=(delivery.reconnects, delivery.passes))
            timings["track"] = (time.perf_counter() - t1) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return FrameResult.build(frame, faces, delivery.reconnects, timings)

    def _loop(self, tracker: IoUTracker | None) -> None:
        max_frames = self.config.source.max_frames
        processed = 0
        last_start = None
        while not self._stop.is_set():
            self._throttle(last_start)
            delivery = self._next()
            if delivery is None:
                break
            last_start = time.monotonic()
            result = self._recognize(delivery, tracker)
            if result is None:
                continue
            try:
                for sink in self.sinks:
                    with output_errors(sink):
                        sink.handle(result)
            except OutputClosed as exc:
                log.warning("%s; stopping", exc)
                break
            self.metrics.frame_done(len(result.faces), result.record.latency_ms)
            processed += 1
            if max_frames and processed >= max_frames:
                break
