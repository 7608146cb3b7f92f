"""What every command line of the package shares, written once: the parser whose errors are one line,
``--log-level``, logging with credentials redacted, the exit codes and the ``error:`` line.

A command builds its parser with :class:`CommandParser`, adds :func:`add_log_level`, and hands its body
to :func:`run_command`; an :class:`~edge_runtime.errors.FerEdgeError` raised by the body becomes one
``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from edge_runtime.errors import FerEdgeError
from edge_runtime.redact import RedactingFormatter, redact

#: Exit codes (deploy/fer-edge.service relies on them: 2 is never restarted).
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: The largest magnitude any numeric option accepts: past it, products and conversions overflow.
NUMBER_LIMIT = 1e9


def finite_float(text: str) -> float:
    """argparse type: a finite number of at most :data:`NUMBER_LIMIT` in magnitude (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value) or abs(value) > NUMBER_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number up to {NUMBER_LIMIT:g}; give one")
    return value


def bounded_int(text: str) -> int:
    """argparse type: a whole number of at most :data:`NUMBER_LIMIT` in magnitude."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if abs(value) > NUMBER_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is larger than {NUMBER_LIMIT:.0f}; give a smaller number")
    return value


#: What :class:`CommandParser` puts in place of a plain ``float`` or ``int`` option type.
_CHECKED_TYPES: dict[Any, Callable[[str], Any]] = {float: finite_float, int: bounded_int}


def _checked(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``add_argument`` keyword arguments with a plain float or int type replaced by its checked type."""
    if kwargs.get("type") in _CHECKED_TYPES:
        kwargs = {**kwargs, "type": _CHECKED_TYPES[kwargs["type"]]}
    return kwargs


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``PROG: error: ... (see PROG --help)``, exit 2,
    with credentials redacted: no usage block, and ``prog`` is the command the user typed.

    Every ``type=float`` option takes finite numbers only and every ``type=int`` option bounded ones
    (:func:`finite_float`, :func:`bounded_int`), so no command sees nan or inf; an unknown option is
    reported by name (with the closest known one) rather than the required option it left missing.
    """

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        return super().add_argument(*args, **_checked(kwargs))

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        group = super().add_argument_group(*args, **kwargs)
        add = group.add_argument
        group.add_argument = lambda *a, **kw: add(*a, **_checked(kw))  # the same checks in every group
        return group

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _unknown_option(self) -> str | None:
        """The first ``--option`` of the arguments that this parser does not know (nor abbreviates)."""
        known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        for arg in getattr(self, "_argv", []):
            if arg == "--":
                return None
            name = arg.split("=", 1)[0]
            if name.startswith("--") and not any(k.startswith(name) for k in known):
                close = difflib.get_close_matches(name, known, n=1)
                return f"unrecognized option {name}" + (f"; did you mean {close[0]}?" if close else "")
        return None

    def error(self, message: str) -> NoReturn:  # argparse's signature
        if message.startswith(("the following arguments are required", "unrecognized arguments")):
            message = self._unknown_option() or message  # a typo, rather than what the typo left missing
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {redact(message)} (see {self.prog} --help)\n")


def add_log_level(parser: argparse.ArgumentParser, default: str = "info") -> None:
    """Add ``--log-level`` with the choices every command accepts (in any case: ``DEBUG`` is ``debug``)."""
    parser.add_argument("--log-level", default=default, type=str.lower, choices=LOG_LEVELS,
                        help=f"log verbosity on stderr (default: {default})")


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is then (a command run in-process, e.g. by a test, may
    outlive the stream that was ``sys.stderr`` when logging was set up)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def setup_logging(level: str = "info", fmt: str = LOG_FORMAT) -> None:
    """Log to stderr at ``level`` with credentials redacted from every line (tracebacks included);
    calling it again replaces the handler it added before."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, RedactingFormatter)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(RedactingFormatter(fmt))
    root.addHandler(handler)
    root.setLevel(level.upper())


def fail(message: str, code: int = EXIT_BAD_INPUT, prog: str | None = None) -> int:
    """Print one ``PROG: error: ...`` line (credentials redacted) and return ``code``."""
    head = f"{prog}: " if prog else ""
    print(f"{head}error: {redact(message)}", file=sys.stderr)
    return code


def run_command(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
                argv: Sequence[str] | None = None, *, log_format: str = LOG_FORMAT) -> int:
    """Parse ``argv``, set up logging from ``--log-level`` (if the parser has it), run ``body``; a
    :class:`FerEdgeError` becomes one ``error:`` line and exit 2."""
    args = parser.parse_args(None if argv is None else list(argv))
    setup_logging(getattr(args, "log_level", "info"), log_format)
    try:
        return body(args)
    except FerEdgeError as exc:
        return fail(str(exc), EXIT_BAD_INPUT, parser.prog)
