"""The error of ``convert``: the command line reports a :class:`ConvertError` as one ``error:`` line, exit 2."""

from __future__ import annotations

from edge_runtime.errors import FerEdgeError


class ConvertError(FerEdgeError):
    """Bad input to a conversion, or a variant that fails its checks; the message names the fix."""
