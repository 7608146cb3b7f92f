"""The camera daemon's loop: frames in, one JSON line per processed frame out.

:meth:`Daemon.prepare` checks everything a user can get wrong (options, model, card, source, output
and annotate paths, HTTP address) before anything runs; :meth:`Daemon.run` then processes frames
until the source ends, ``max_frames`` is reached, or :meth:`Daemon.stop`. The source is opened and
read by a :class:`~edge_runtime.sources.reader.FrameReader` thread, so the loop (and a stop request) never
waits on a camera that hangs. Each result also goes to MQTT (``--mqtt``, through a bounded queue that
never blocks the loop) and to the live view (``--live``, only while someone watches). Nothing
accumulates per frame, so memory stays flat over long runs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from edge_runtime.detection.detectors import DEFAULT_DETECTOR
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs.annotate import Annotator
from edge_runtime.outputs.jsonl import JsonlWriter, OutputConfig
from edge_runtime.outputs.live_view import FrameHub
from edge_runtime.outputs.metrics import Metrics
from edge_runtime.outputs.mqtt import MqttConfig, MqttPublisher
from edge_runtime.outputs.status_http import STALE_AFTER, StatusBoard, StatusServer, check_bind, parse_bind
from edge_runtime.recognition.recognizer import DEFAULT_ALIGN, DEFAULT_TTA, FaceRecognizer
from edge_runtime.recognition.tracking import IoUTracker
from edge_runtime.sources.capture import FrameSource, open_source
from edge_runtime.sources.reader import Delivery, FrameReader, ReaderConfig

log = logging.getLogger(__name__)

#: Seconds the daemon waits for a reader stuck in an open or a read before exiting without it.
READER_JOIN_TIMEOUT = 1.0
#: Seconds a stop may take from the loop's end; MQTT's goodbye gets what the reader leaves of it.
STOP_BUDGET = 1.8
#: Seconds the start waits for the MQTT broker before going on without it (it is waited for).
MQTT_CONNECT_WAIT = 2.0


@dataclass
class DaemonConfig:
    """Everything the daemon's command line sets (see ``python -m edge_runtime --help``)."""

    source: str
    model: str | None = None
    card: str | None = None
    output: str = "-"
    append: bool = False
    detector: str = DEFAULT_DETECTOR
    detector_model: str | None = None
    threads: int | None = None
    max_fps: float | None = None
    http: str | None = None
    http_allow_remote: bool = False
    annotate: str | None = None
    margin: float | None = None
    min_confidence: float = 0.0
    tta: str = DEFAULT_TTA
    align: bool = DEFAULT_ALIGN
    smoothing: float = 0.5
    max_frames: int | None = None
    realtime: bool = False
    loop: bool = False
    size: tuple[int, int] | None = None
    detect_max_side: int = 640
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    wait_for_source: float | None = None  # seconds; None waits forever, 0 gives up at once
    stale_after: float | None = None  # seconds; None: STALE_AFTER, or 3 frame intervals at --max-fps
    rotate_mb: float | None = None
    keep: int = 5
    mqtt: str | None = None  # mqtt://[user:pass@]host[:port][/prefix] or mqtts://...
    mqtt_ca: str | None = None
    mqtt_every: float | None = None  # seconds; None: mqtt_policy.DEFAULT_EVERY
    mqtt_heartbeat: float | None = None  # seconds; None: mqtt_policy.DEFAULT_HEARTBEAT
    device_name: str | None = None  # None: the hostname
    live: bool = False
    live_fps: float = 5.0


def iso_time(seconds: float) -> str:
    """ISO 8601 UTC timestamp with milliseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def stale_after(config: DaemonConfig) -> float:
    """The /healthz threshold: ``--stale-after``, checked against the frame interval of ``--max-fps``."""
    interval = 1.0 / config.max_fps if config.max_fps else 0.0
    if config.stale_after is None:
        return max(STALE_AFTER, 3 * interval)
    if config.stale_after <= interval:
        raise EdgeRuntimeError(f"--stale-after {config.stale_after:g} is not longer than one frame at "
                               f"--max-fps {config.max_fps:g} ({interval:g} s); give more than {interval:g}")
    return config.stale_after


def check_integrations(config: DaemonConfig) -> None:
    """Options that need another: the MQTT sub-options need ``--mqtt``, ``--live`` needs ``--http``."""
    if config.live and not config.http:
        raise EdgeRuntimeError("--live needs --http [HOST:]PORT (the page is served there), "
                               "e.g. --http 127.0.0.1:8765 --live")
    if not config.mqtt:
        for flag, value in (("--mqtt-ca", config.mqtt_ca), ("--mqtt-every", config.mqtt_every),
                            ("--mqtt-heartbeat", config.mqtt_heartbeat),
                            ("--device-name", config.device_name)):
            if value not in (None, ""):
                raise EdgeRuntimeError(f"{flag} needs --mqtt URL (or $FER_EDGE_MQTT)")


def output_config(config: DaemonConfig) -> OutputConfig:
    """The output settings, checked: rotation needs a file and at least one kept file."""
    if config.rotate_mb is not None and config.output == "-":
        raise EdgeRuntimeError("--rotate-mb needs --output FILE (stdout cannot be rotated)")
    if config.keep < 1:
        raise EdgeRuntimeError(f"--keep {config.keep}: keep at least 1 rotated file")
    rotate = int(config.rotate_mb * 1024 * 1024) if config.rotate_mb else None
    return OutputConfig(config.output, config.append, rotate, config.keep)


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
        self.writer: JsonlWriter | None = None
        self.annotator: Annotator | None = None
        self.reader: FrameReader | None = None
        self.mqtt: MqttPublisher | None = None
        self.live: FrameHub | None = None
        self._prepared = False
        self._source_open = False
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the loop to finish (safe from signal handlers and other threads)."""
        self._stop.set()

    def reopen_output(self) -> None:
        """Reopen the output file before the next line (SIGHUP, after logrotate moved it)."""
        if self.writer is not None:
            self.writer.reopen()

    def prepare(self) -> None:
        """Check the options and load everything; raises :class:`EdgeRuntimeError` (or a card error)
        for bad input, having released what it opened. A file source is opened here; cameras and
        streams by the reader. The output file is replaced only once everything else is ready."""
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
        check_integrations(cfg)
        beat = {} if cfg.mqtt_heartbeat is None else {"heartbeat": cfg.mqtt_heartbeat}
        mqtt = MqttConfig.from_url(cfg.mqtt, device=cfg.device_name, every=cfg.mqtt_every, ca_file=cfg.mqtt_ca,
                                   backoff_max=cfg.backoff_max, **beat) if cfg.mqtt else None
        if cfg.live:
            self.live = FrameHub(max_fps=cfg.live_fps)
        out = output_config(cfg)
        threshold = stale_after(cfg)
        bind = parse_bind(cfg.http) if cfg.http else None
        if bind is not None:
            check_bind(bind[0], cfg.http_allow_remote)
        if self.recognizer is None:
            self.recognizer = FaceRecognizer(
                cfg.model, card_path=cfg.card, detector=cfg.detector, detector_model=cfg.detector_model,
                num_threads=cfg.threads, margin=cfg.margin, min_confidence=cfg.min_confidence,
                detect_max_side=cfg.detect_max_side, tta=cfg.tta, align=cfg.align)
        if self.source is None:
            self.source = open_source(cfg.source, realtime=cfg.realtime, size=cfg.size, fps=cfg.max_fps,
                                      loop=cfg.loop)
        if hasattr(self.source, "color"):  # the Pi camera: colour only for a detector that uses it
            self.source.color = bool(getattr(self.recognizer.detector, "uses_color", True))
        if not self.source.reconnect:
            self.source.open()
            self._source_open = True
        if cfg.annotate:
            self.annotator = Annotator(cfg.annotate, fps=cfg.max_fps or self.source.fps)
        rec = self.recognizer
        self.metrics = Metrics(info={"model": rec.classifier.model_path.name, "runtime": rec.runtime_name,
                                     "detector": rec.detector.name, "source": self.source.name})
        self.board = StatusBoard(self.metrics, stale_after=threshold)
        if self.live is not None:
            self.metrics.extra.append(self.live.prometheus)
        if bind is not None:
            self.server = StatusServer(self.board, *bind, allow_remote=cfg.http_allow_remote, live=self.live)
        if mqtt is not None:
            self._start_mqtt(replace(mqtt, labels=tuple(rec.labels)))
        self.writer = JsonlWriter(out)

    def _start_mqtt(self, config: MqttConfig) -> None:
        """Connect to the broker in the background; a refused login raises ``MqttError`` here."""
        self.mqtt = MqttPublisher(config)
        self.mqtt.start()
        self.metrics.extra.append(self.mqtt.prometheus)
        if not self.mqtt.wait_until_connected(MQTT_CONNECT_WAIT):
            log.warning("MQTT: the broker %s is not up yet; results are published once it is",
                        self.mqtt.config.url)

    def run(self) -> int:
        """Process frames; returns 0. Raises what ended the source early (see :class:`FrameReader`)."""
        cfg = self.config
        try:
            self.prepare()
            source = self.source
            tracker = IoUTracker(self.recognizer.labels, smoothing=cfg.smoothing,
                                 min_confidence=cfg.min_confidence) if source.video else None
            self.reader = FrameReader(source, self.metrics, self._stop, self.board, ReaderConfig(
                cfg.backoff_initial, cfg.backoff_max, cfg.wait_for_source), opened=self._source_open)
            self.reader.start()
            started = time.monotonic()
            self._loop(tracker)
            elapsed = time.monotonic() - started
            counts = self.metrics.snapshot()
            log.info("done: %d frames, %d faces, %d dropped (processing behind), %d skipped (--max-fps), "
                     "%d reconnects in %.1f s (%.1f frames/s)", counts["frames"], counts["faces"],
                     counts["dropped_frames"], counts["skipped_frames"], counts["source_reconnects"],
                     elapsed, counts["frames"] / max(elapsed, 1e-9))
            if self.reader.error is not None:
                raise self.reader.error
            return 0
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self.board is not None:
            self.board.state = "stopping"
        self._stop.set()
        deadline = time.monotonic() + STOP_BUDGET
        blocked = self.reader is not None and not self.reader.join(READER_JOIN_TIMEOUT)
        if blocked:  # closing the source under the blocked reader would crash it
            log.warning("the source is still blocked in an open or a read; exiting without waiting for it")
        self._release(close_source=not blocked, mqtt_timeout=max(0.3, deadline - time.monotonic()))

    def _release(self, close_source: bool = True, mqtt_timeout: float = 1.0) -> None:
        if close_source and self.source is not None:
            self.source.close()
        for closer in (self.writer, self.annotator, self.live, self.server):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # keep closing the others
                    log.error("closing %s failed", type(closer).__name__, exc_info=True)
        if self.mqtt is not None:  # publishes "offline" and disconnects within mqtt_timeout
            try:
                self.mqtt.close(timeout=mqtt_timeout)
            except Exception:
                log.error("closing the MQTT connection failed", exc_info=True)

    def _throttle(self, last_start: float | None) -> None:
        if self.config.max_fps and last_start is not None:
            remaining = last_start + 1.0 / self.config.max_fps - time.monotonic()
            if remaining > 0:
                self.reader.pacing = True  # frames replaced meanwhile are skipped on purpose, not dropped
                try:
                    self._stop.wait(remaining)
                finally:
                    self.reader.pacing = False

    def _next(self) -> Delivery | None:
        """The next frame; ``None`` once stopped or the source ended. Raises a refused MQTT login."""
        while not self._stop.is_set():
            if self.mqtt is not None and self.mqtt.error is not None:
                raise self.mqtt.error
            delivery = self.reader.get(timeout=0.25)
            if delivery is not None or self.reader.ended:
                return delivery
        return None

    def _loop(self, tracker: IoUTracker | None) -> None:
        cfg, rec, metrics = self.config, self.recognizer, self.metrics
        processed = 0
        last_start = None
        epoch = (0, 0)
        while not self._stop.is_set():
            self._throttle(last_start)
            delivery = self._next()
            if delivery is None:
                break
            frame = delivery.frame
            timings = {"wait": max(0.0, (time.time() - frame.time) * 1e3)} if self.source.live \
                else {"read": delivery.read_ms}
            last_start = time.monotonic()
            t0 = time.perf_counter()
            try:
                faces = rec.recognize(frame.image, timings, gray=frame.gray)
            except ValueError as exc:
                metrics.inc("frame_errors")
                log.warning("frame %s of %s skipped: %s", frame.index, frame.source, exc)
                continue
            if tracker is not None:
                if (delivery.reconnects, delivery.passes) != epoch:  # a new scene: start new tracks
                    epoch = (delivery.reconnects, delivery.passes)
                    tracker.reset()
                t1 = time.perf_counter()
                faces = tracker.update(faces)
                timings["track"] = (time.perf_counter() - t1) * 1e3
            timings["total"] = (time.perf_counter() - t0) * 1e3
            height, width = frame.image.shape[:2]
            record = {"source": frame.source, "frame": frame.index, "reconnects": delivery.reconnects,
                      "time": iso_time(frame.time), "width": width, "height": height,
                      "faces": [f.to_dict() for f in faces],
                      "latency_ms": {k: round(v, 2) for k, v in timings.items()}}
            if frame.pts_ms is not None:
                record["video_time_ms"] = round(frame.pts_ms, 1)
            try:
                line = self.writer.write(record)
            except BrokenPipeError:
                log.warning("output closed by the reader; stopping")
                break
            self.board.set_latest(line)
            if self.mqtt is not None:
                self.mqtt.publish(record)
            if self.live is not None:
                self.live.offer(frame.image, faces)
            metrics.frame_done(len(faces), timings)
            if self.annotator is not None:
                self.annotator.write(frame.image, faces, frame.index, frame.source)
            processed += 1
            if cfg.max_frames and processed >= cfg.max_frames:
                break
