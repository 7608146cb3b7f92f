"""The error ``train`` raises on bad input; every command line reports it as one ``error:`` line, exit 2."""

from edge_runtime.errors import FerEdgeError


class UserError(FerEdgeError):
    """Bad input from the user: the message names the problem and the fix."""
