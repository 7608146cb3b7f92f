"""The error of the benchmarks: every benchmark command reports it as one ``error:`` line, exit 2."""

from __future__ import annotations

from edge_runtime.errors import FerEdgeError


class BenchmarkError(FerEdgeError):
    """Bad input to a benchmark (missing model, data or peer); the message names the fix."""
