"""The one exception type the CLIs turn into a single error line and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user: the message names the problem and the fix."""
