"""The errors the package raises on bad input; each message names the problem and the fix.

:class:`FerEdgeError` is the one root: ``train``, ``convert`` and ``benchmarks`` derive their errors from
it, and every command line reports it as one ``error:`` line, exit code 2
(:mod:`edge_runtime.command_line`).
"""

from __future__ import annotations


class FerEdgeError(Exception):
    """An error the user can fix (a bad option, file, model or card); one ``error:`` line, exit 2."""


class EdgeRuntimeError(FerEdgeError):
    """Base class of the runtime's errors a user can fix (bad model, bad source, bad option)."""


class ModelError(EdgeRuntimeError):
    """A model file is missing, unreadable, or does not match its model card."""


class SourceError(EdgeRuntimeError):
    """A frame source cannot be opened or stopped delivering frames."""


class SetupError(EdgeRuntimeError):
    """The install or the device refuses for good (a missing package, a camera that rejects the login):
    never retried, exit code 2."""


class CameraUnavailableError(SourceError):
    """A camera or stream could not be opened at start-up (it may appear later: worth a retry)."""
