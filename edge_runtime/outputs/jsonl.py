"""The daemon's JSONL output: one line per frame, to stdout or a file that can rotate by size.

A file is written through an ``O_APPEND`` descriptor, one ``write`` per line, so a crash can cut
only the last line short. Rotation (``--rotate-mb``/``--keep``) happens between lines, by renames
(``results.jsonl`` -> ``results.jsonl.1`` -> ... -> ``results.jsonl.K``, the oldest dropped), so no
line is torn or lost; the same scheme as ``logging.handlers.RotatingFileHandler``. :meth:`reopen`
(on SIGHUP) reopens the path after an external logrotate moved the file. New files are 0640.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs.sink import OutputClosed, SinkBase
from edge_runtime.results import FrameResult

FILE_MODE = 0o640


@dataclass
class OutputConfig:
    """Where results go: ``target`` (a path or ``-``), and how the file is kept bounded."""

    target: str = "-"
    append: bool = False
    rotate_bytes: int | None = None  # rotate before a line would take the file past this size
    keep: int = 5  # rotated files kept (results.jsonl.1 .. .keep)


def rotated_name(target: str, n: int) -> str:
    """The ``n``-th rotated file of ``target`` (``results.jsonl.1`` is the newest)."""
    return f"{target}.{n}"


def check_target(target: str) -> None:
    """Refuse an output path whose folder does not exist, or that is a folder, before anything is written."""
    path = Path(target)
    if path.is_dir():
        raise EdgeRuntimeError(f"cannot write --output {target} (it is a directory; give a file path)")
    if not path.parent.is_dir():
        raise EdgeRuntimeError(f"cannot write --output {target} (the folder {path.parent} does not exist; "
                               "create it first)")


def last_frame_number(path: str, tail: int = 65536) -> int | None:
    """The ``frame`` of the last complete JSON line of ``path``; ``None`` if there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail))
            lines = f.read().split(b"\n")[:-1]  # what follows the last newline is a cut-off line
    except OSError:
        return None
    for line in reversed(lines):
        try:
            frame = json.loads(line).get("frame")
        except (ValueError, AttributeError):
            continue
        if isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0:
            return frame
    return None


class JsonlWriter:
    """One JSON object per line to stdout or a file (see the module docstring)."""

    def __init__(self, config: OutputConfig | str, append: bool = False) -> None:
        self.config = config if isinstance(config, OutputConfig) else OutputConfig(config, append)
        self.target = self.config.target
        self.rotations = 0
        self._fd: int | None = None
        self._size = 0
        self._reopen = False
        self._stream: TextIO | None = sys.stdout if self.target == "-" else None
        if self._stream is None:
            check_target(self.target)
            self._open(truncate=not self.config.append)

    def _open(self, truncate: bool = False) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
        try:
            if Path(self.target).is_dir():
                raise IsADirectoryError(21, "it is a directory; give a file path")
            self._fd = os.open(self.target, flags, FILE_MODE)
        except OSError as exc:
            raise EdgeRuntimeError(f"cannot write --output {self.target} ({exc.strerror or exc})") from exc
        self._size = os.fstat(self._fd).st_size
        if self._size and not self._ends_with_newline():
            self._write_all(b"\n")  # a line cut off by a kill keeps its own line; the next one starts clean
            self._size += 1

    def _ends_with_newline(self) -> bool:
        try:
            with open(self.target, "rb") as f:
                f.seek(-1, os.SEEK_END)
                return f.read(1) == b"\n"
        except OSError:  # not seekable (a pipe, /dev/full): nothing to repair
            return True

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def reopen(self) -> None:
        """Reopen the output path before the next line (safe to call from a signal handler)."""
        self._reopen = True

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        for n in range(self.config.keep - 1, 0, -1):
            if os.path.exists(rotated_name(self.target, n)):
                os.replace(rotated_name(self.target, n), rotated_name(self.target, n + 1))
        os.replace(self.target, rotated_name(self.target, 1))
        self.rotations += 1
        self._open()

    def write(self, record: dict) -> str:
        """Write ``record`` as one line; returns the line (without newline).

        Raises ``BrokenPipeError`` when stdout's reader went away (stdout then goes to /dev/null,
        so the interpreter's exit does not fail on it again).
        """
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        self.write_line(line)
        return line

    def write_line(self, line: str) -> None:
        """Write one JSON line (without its newline); see :meth:`write`."""
        if self._stream is not None:
            self._write_stream(line)
            return
        data = (line + "\n").encode("utf-8")
        if self._reopen:
            self._reopen = False
            os.close(self._fd)
            self._open()
        limit = self.config.rotate_bytes
        if limit and self._size and self._size + len(data) > limit:
            self._rotate()
        self._write_all(data)
        self._size += len(data)

    def _write_stream(self, line: str) -> None:
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            raise

    def close(self) -> None:
        """Flush stdout, or close the file."""
        if self._stream is not None:
            self._stream.flush()
        elif self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JsonlSink(SinkBase):
    """The results as JSON lines (``--output``): opened last at start, so a bad option elsewhere never
    replaces an existing file."""

    name = "jsonl"

    def __init__(self, config: OutputConfig) -> None:
        if config.target != "-":
            check_target(config.target)
        self.config = config
        self.option = f"--output {config.target}"
        self.writer: JsonlWriter | None = None

    @property
    def next_frame(self) -> int:
        """The frame number after the last one in the results file, when appending to one (else 0)."""
        if self.config.target == "-" or not self.config.append:
            return 0
        for path in (self.config.target, rotated_name(self.config.target, 1)):
            last = last_frame_number(path)
            if last is not None:
                return last + 1
        return 0

    def start(self) -> None:
        """Open (or replace, without ``append``) the output."""
        self.writer = JsonlWriter(self.config)

    def handle(self, result: FrameResult) -> None:
        """Write the result's line; :class:`OutputClosed` when stdout's reader went away."""
        try:
            self.writer.write_line(result.line)
        except BrokenPipeError as exc:
            raise OutputClosed("output closed by the reader") from exc

    def reopen(self) -> None:
        """Reopen the file before the next line (SIGHUP)."""
        if self.writer is not None:
            self.writer.reopen()

    def close(self, deadline: float) -> None:
        """Flush stdout or close the file."""
        if self.writer is not None:
            self.writer.close()
