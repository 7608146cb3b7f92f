"""The errors edge_runtime raises on bad input; each message names the problem and the fix."""

from __future__ import annotations


class EdgeRuntimeError(Exception):
    """Base class of the errors a user can fix (bad model, bad source, bad option)."""


class ModelError(EdgeRuntimeError):
    """A model file is missing, unreadable, or does not match its model card."""


class SourceError(EdgeRuntimeError):
    """A frame source cannot be opened or stopped delivering frames."""


class CameraUnavailableError(SourceError):
    """A camera or stream could not be opened at start-up (it may appear later: worth a retry)."""


#: Errors the CLI reports as one line and exit code 2.
USER_ERRORS = (EdgeRuntimeError,)
