"""The daemon's counters, stage latencies and state, exposed through ``prometheus_client``.

Each daemon has its own :class:`~prometheus_client.CollectorRegistry` (a process may run several, as the
tests do); outputs add their own metrics by registering themselves as collectors (:meth:`Metrics.register`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from edge_runtime.redact import redact

#: Latency histogram buckets, in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREFIX = "fer_edge"
#: The Content-Type of :meth:`Metrics.render`.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Frames, faces, dropped and skipped frames, reconnects, frame errors, stage latencies, and the
    daemon's state (``starting``, ``waiting``, ``running``, ``reconnecting``, ``stopping``)."""

    COUNTERS = {
        "frames": "Frames processed.",
        "faces": "Faces recognized.",
        "dropped_frames": "Camera frames dropped because processing fell behind the camera (latest frame wins).",
        "skipped_frames": "Camera frames skipped on purpose to keep to --max-fps (latest frame wins).",
        "source_reconnects": "Times the source was reopened after it stopped delivering frames.",
        "frame_errors": "Frames whose processing failed.",
    }

    def __init__(self, info: dict[str, str] | None = None) -> None:
        self.registry = CollectorRegistry()
        self._counters = {name: Counter(f"{PREFIX}_{name}", text, registry=self.registry)
                          for name, text in self.COUNTERS.items()}
        self._latency = Histogram(f"{PREFIX}_stage_latency_seconds", "Processing time per frame and stage.",
                                  ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._last_frame = Gauge(f"{PREFIX}_last_frame_timestamp_seconds",
                                 "When the last frame was processed (Unix time).", registry=self.registry)
        Info(PREFIX, "Model, runtime, detector and source of this daemon.", registry=self.registry).info(
            {k: redact(str(v)) for k, v in (info or {}).items()})
        self._lock = threading.Lock()  # one frame's counters change together
        self.started = time.time()
        self.last_frame_time: float | None = None
        self.state = "starting"

    def set_state(self, state: str) -> None:
        """Record what keeps frames away, or ``running``; /healthz reports it."""
        self.state = state

    def inc(self, name: str, amount: int = 1) -> None:
        """Add to a counter."""
        self._counters[name].inc(amount)

    def frame_done(self, faces: int, latency_ms: dict[str, float]) -> None:
        """Record one processed frame: its face count and its per-stage latencies (milliseconds)."""
        with self._lock:
            self._counters["frames"].inc()
            self._counters["faces"].inc(faces)
            for stage, ms in latency_ms.items():
                self._latency.labels(stage).observe(ms / 1e3)
            self.last_frame_time = time.time()
            self._last_frame.set(self.last_frame_time)

    def snapshot(self) -> dict[str, int]:
        """Counter values (for /healthz, the final log line and tests)."""
        with self._lock:
            values = {s.name: s.value for c in self._counters.values() for family in c.collect()
                      for s in family.samples}
        return {name: int(values[f"{PREFIX}_{name}_total"]) for name in self.COUNTERS}

    def register(self, collector: Any) -> None:
        """Add an output's metrics: ``collector.collect()`` yields ``prometheus_client`` metric families."""
        self.registry.register(collector)

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        return generate_latest(self.registry).decode("utf-8")
