"""Latency of single-face inference: warm-up runs excluded, timed runs with ``perf_counter_ns``;
and :class:`Progress`, the benchmark's one-line progress display.

One timed run is ``set_tensor`` + ``invoke`` + ``get_tensor`` of one face (batch 1), i.e.
what a device does per face once the crop is prepared. The inputs are cycled through, so
with real face crops the percentiles cover real data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Latency:
    """Summary of timed runs, in milliseconds per face."""

    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @property
    def throughput_fps(self) -> float:
        """Faces per second at batch 1, one after the other (1000 / mean latency)."""
        return 1000.0 / self.mean_ms if self.mean_ms > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        """The fields, rounded for reports, plus ``throughput_fps``."""
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        out["throughput_fps"] = round(self.throughput_fps, 1)
        return out


def summarize(samples_ns: Sequence[int] | np.ndarray, warmup: int = 0) -> Latency:
    """Percentiles (linear interpolation), mean, min and max of timed runs given in nanoseconds."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no timed run to summarize; use --runs 1 or more")
    p50, p90, p99 = np.percentile(ms, PERCENTILES)
    return Latency(runs=int(ms.size), warmup=int(warmup), p50_ms=float(p50), p90_ms=float(p90),
                   p99_ms=float(p99), mean_ms=float(ms.mean()), min_ms=float(ms.min()),
                   max_ms=float(ms.max()))


def single_inputs(batch: np.ndarray) -> list[np.ndarray]:
    """Split ``N x H x W x C`` model inputs into N contiguous ``1 x H x W x C`` tensors."""
    return [np.ascontiguousarray(batch[i:i + 1]) for i in range(len(batch))]


def time_invokes(interpreter: Any, inputs: Sequence[np.ndarray], runs: int, warmup: int) -> np.ndarray:
    """Nanoseconds of ``runs`` timed single-face inferences, after ``warmup`` untimed ones.

    ``inputs`` are ready ``1 x H x W x C`` tensors of the model's input dtype, used in turn.
    """
    if not inputs:
        raise ValueError("no input to time the model with")
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    n = len(inputs)
    for i in range(warmup):
        interpreter.set_tensor(input_index, inputs[i % n])
        interpreter.invoke()
        interpreter.get_tensor(output_index)
    samples = np.empty(runs, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(runs):
        tensor = inputs[(warmup + i) % n]
        start = clock()
        interpreter.set_tensor(input_index, tensor)
        interpreter.invoke()
        interpreter.get_tensor(output_index)
        samples[i] = clock() - start
    return samples


class Progress:
    """Progress over a known number of steps on one status line.

    On a terminal the line is rewritten in place (``\\r``) and cleared by :meth:`close`; on a pipe or
    file at most one line is written every ``interval`` seconds, so logs stay short.
    """

    def __init__(self, total: int, stream: TextIO | None = None, interval: float = 15.0, width: int = 20) -> None:
        self.total, self.done = max(1, total), 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval, self.width = interval, width
        self._last = time.monotonic()
        self._shown = 0

    def line(self, text: str) -> str:
        """``[#####.....] 12/54 text`` for the step now starting."""
        filled = self.width * self.done // self.total
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done + 1}/{self.total} {text}"

    def update(self, text: str) -> None:
        """Show that the next step (``text``) starts."""
        now = time.monotonic()
        line = self.line(text)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._shown))
            self._shown = len(line)
            self.stream.flush()
        elif self.done == 0 or now - self._last >= self.interval:
            self.stream.write(line + "\n")
            self._last = now
        self.done = min(self.done + 1, self.total)

    def close(self) -> None:
        """Clear the status line (terminal) or write the last one (pipe); the command reports the time taken."""
        if self.tty:
            self.stream.write("\r" + " " * self._shown + "\r")
        else:
            self.stream.write(f"[{'#' * self.width}] {self.done}/{self.total} done\n")
        self.stream.flush()
