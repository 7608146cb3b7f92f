"""One interface for every output: the daemon hands each
:class:`~edge_runtime.results.FrameResult` to every :class:`Sink`.

A result carries the frame, its faces, the typed record and its JSON line, encoded once; its
``source`` is the frame source's name, which the sources keep free of credentials. A sink starts
before the first frame, handles each result without blocking the loop, closes by a deadline, may hold a
fatal :attr:`Sink.error` that ends the run, and yields its own metrics to the daemon's Prometheus
registry. A new output is one class.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from prometheus_client import Metric

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.results import FrameResult

#: What to do about an output the system refuses to write, by errno.
_OS_ERROR_FIXES = {
    errno.ENOSPC: "the disk is full; free space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up; free space or write elsewhere",
    errno.EACCES: "permission denied; write where this user may, or change the permissions",
    errno.EPERM: "not permitted; write where this user may",
    errno.EROFS: "the file system is read-only; write to a writable one",
    errno.EIO: "the storage reported an I/O error; check the disk or card",
    errno.EFBIG: "the file is too large for its file system; use --rotate-mb or write elsewhere",
}


class OutputClosed(Exception):
    """Raised by :meth:`Sink.handle` when its reader went away (stdout closed): the run ends normally."""


class OutputError(EdgeRuntimeError):
    """The system refused to write an output (full disk, permissions, read-only or failing storage)."""


@contextlib.contextmanager
def output_errors(sink: Sink) -> Iterator[None]:
    """Turn an ``OSError`` of ``sink`` (other than a reader that went away) into one :class:`OutputError`
    line that names the output's option and the fix; the one place where this happens."""
    try:
        yield
    except (BrokenPipeError, ConnectionError):
        raise
    except OSError as exc:
        what = getattr(sink, "option", None) or f"the {sink.name} output"
        fix = _OS_ERROR_FIXES.get(exc.errno, "check the path and the storage")
        raise OutputError(f"cannot write {what} ({exc.strerror or exc}): {fix}") from exc


@runtime_checkable
class Sink(Protocol):
    """An output of the daemon (see the module docstring)."""

    name: str

    def start(self) -> None:
        """Open files, bind ports, connect; raises :class:`~edge_runtime.errors.EdgeRuntimeError` on bad input."""

    def handle(self, result: FrameResult) -> None:
        """Take one result without blocking the loop; may raise :class:`OutputClosed`."""

    def reopen(self) -> None:
        """Reopen files (SIGHUP, after logrotate moved them); safe from a signal handler."""

    def close(self, deadline: float) -> None:
        """Flush and release, finishing by ``deadline`` (``time.monotonic()`` seconds). Every sink has
        this one signature; the daemon closes them in reverse start order under one shared deadline."""

    @property
    def error(self) -> BaseException | None:
        """A failure that ends the run (e.g. a login the MQTT broker refused), else ``None``."""

    def collect(self) -> Iterable[Metric]:
        """This output's metrics, as ``prometheus_client`` metric families."""


class SinkBase:
    """Defaults for a :class:`Sink`: nothing to start, reopen or report, no fatal error."""

    name = "sink"

    def start(self) -> None:
        """Nothing to start."""

    def reopen(self) -> None:
        """Nothing to reopen."""

    @property
    def error(self) -> BaseException | None:
        """No fatal error."""
        return None

    def collect(self) -> Iterable[Metric]:
        """No metrics."""
        return ()
