"""Daemon counters and latency histograms, rendered in the Prometheus text format (no dependencies)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from edge_runtime.redact import redact

#: Latency histogram buckets, in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREFIX = "fer_edge"


class Histogram:
    """A fixed-bucket histogram (constant memory, however long it runs)."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one value."""
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break

    def lines(self, name: str, labels: str) -> list[str]:
        """Exposition lines (cumulative buckets, ``+Inf``, ``_sum``, ``_count``)."""
        out, running = [], 0
        sep = "," if labels else ""
        for bound, n in zip(self.buckets, self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.total:.6f}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


class Metrics:
    """Thread-safe daemon metrics: frames, faces, dropped and skipped frames, reconnects, errors, stage latencies.

    ``extra`` holds callables whose Prometheus text (MQTT, live view) :meth:`render` appends.
    """

    COUNTERS = {
        "frames": "Frames processed.",
        "faces": "Faces recognized.",
        "dropped_frames": "Camera frames dropped because processing fell behind the camera (latest frame wins).",
        "skipped_frames": "Camera frames skipped on purpose to keep to --max-fps (latest frame wins).",
        "source_reconnects": "Times the source was reopened after it stopped delivering frames.",
        "frame_errors": "Frames whose processing failed.",
    }

    def __init__(self, info: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self.counters = dict.fromkeys(self.COUNTERS, 0)
        self.latency: dict[str, Histogram] = {}
        self.info = dict(info or {})
        self.started = time.time()
        self.last_frame_time: float | None = None
        self.extra: list[Callable[[], str]] = []

    def inc(self, name: str, amount: int = 1) -> None:
        """Add to a counter."""
        with self._lock:
            self.counters[name] += amount

    def frame_done(self, faces: int, latency_ms: dict[str, float]) -> None:
        """Record one processed frame: its face count and its per-stage latencies (milliseconds)."""
        with self._lock:
            self.counters["frames"] += 1
            self.counters["faces"] += faces
            for stage, ms in latency_ms.items():
                self.latency.setdefault(stage, Histogram()).observe(ms / 1e3)
            self.last_frame_time = time.time()

    def snapshot(self) -> dict[str, float]:
        """Counter values (for tests and /healthz)."""
        with self._lock:
            return dict(self.counters)

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        with self._lock:
            lines = []
            for name, help_text in self.COUNTERS.items():
                metric = f"{PREFIX}_{name}_total"
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter",
                          f"{metric} {self.counters[name]}"]
            metric = f"{PREFIX}_stage_latency_seconds"
            lines += [f"# HELP {metric} Processing time per frame and stage.", f"# TYPE {metric} histogram"]
            for stage, hist in sorted(self.latency.items()):
                lines += hist.lines(metric, f'stage="{stage}"')
            metric = f"{PREFIX}_last_frame_timestamp_seconds"
            lines += [f"# HELP {metric} When the last frame was processed (Unix time).",
                      f"# TYPE {metric} gauge", f"{metric} {self.last_frame_time or 0:.3f}"]
            metric = f"{PREFIX}_info"
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(self.info.items()))
            lines += [f"# HELP {metric} Model, runtime, detector and source of this daemon.",
                      f"# TYPE {metric} gauge", f"{metric}{{{labels}}} 1"]
        return "\n".join(lines) + "\n" + "".join(render() for render in self.extra)


def _escape(value: str) -> str:
    return redact(str(value)).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
