"""The error raised on labelled face data or a votes file that cannot be used."""

from edge_runtime.errors import FerEdgeError


class FaceDataError(FerEdgeError):
    """``--data`` or ``--votes`` is missing, unreadable or of the wrong layout; the message names the fix."""
