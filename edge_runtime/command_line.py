"""What every command line of the package shares, written once: the parser whose errors are one line,
``--log-level``, logging with credentials redacted, the exit codes and the ``error:`` line.

A command builds its parser with :class:`CommandParser`, adds :func:`add_log_level`, and hands its body
to :func:`run_command`; an :class:`~edge_runtime.errors.FerEdgeError` raised by the body becomes one
``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from edge_runtime.errors import FerEdgeError
from edge_runtime.redact import RedactingFormatter, redact

#: Exit codes (deploy/fer-edge.service relies on them: 2 is never restarted).
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``PROG: error: ... (see PROG --help)``, exit 2,
    with credentials redacted: no usage block, and ``prog`` is the command the user typed."""

    def error(self, message: str) -> NoReturn:  # argparse's signature
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
