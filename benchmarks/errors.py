"""The errors the benchmark CLIs report as one line and exit code 2 (no traceback)."""

from __future__ import annotations

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.model.card import ModelCardError
from train.errors import UserError


class BenchmarkError(Exception):
    """Bad input to a benchmark (missing model, data or peer); the message names the fix."""


#: Errors a user can fix: printed as ``error: ...`` with exit code 2.
USER_ERRORS = (BenchmarkError, ModelCardError, EdgeRuntimeError, UserError)
