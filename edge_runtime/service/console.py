"""``fer-edge``: the installed command, one entry for every tool of the package.

Its commands are the ``fer_edge.commands`` entry points of the installed distributions
(``pyproject.toml``): ``fer-edge run`` is ``python -m edge_runtime`` (the daemon) and ``fer-edge bench``
is ``python -m benchmarks.latency``. Commands are found, not imported, so the runtime never depends on
the packages that plug into it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version

#: The entry-point group whose names are ``fer-edge`` commands; each value is a
#: ``main(argv, prog=...) -> int`` (``prog``: the command as typed, for its help and error lines).
COMMAND_GROUP = "fer_edge.commands"


def commands() -> dict[str, EntryPoint]:
    """The installed commands by name."""
    return {ep.name: ep for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: ep.name)}


def _summary(command: EntryPoint) -> str:
    main: Callable[[list[str]], int] = command.load()
    module = sys.modules.get(main.__module__)
    doc = " ".join(((module.__doc__ if module is not None else None) or main.__doc__ or "").split())
    first = re.split(r"[.,;] ", doc.split("``: ", 1)[-1], maxsplit=1)[0]  # after "``python -m x``: "
    return first.rstrip(".")


def _version() -> str:
    try:
        return version("fer-edge")
    except PackageNotFoundError:
        return "not installed"


def build_parser(available: dict[str, EntryPoint]) -> argparse.ArgumentParser:
    """The top-level parser: a command name, everything after it goes to that command."""
    listing = "\n".join(f"  {name:<6} {_summary(ep)}" for name, ep in available.items())
    p = argparse.ArgumentParser(
        prog="fer-edge", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Facial expression recognition on a Raspberry Pi camera.",
        epilog=f"commands (see fer-edge COMMAND --help):\n{listing}\n\nexamples:\n"
               "  fer-edge run --source photo.jpg\n  fer-edge run --source picamera2 --http 8765\n"
               "  fer-edge bench --threads 1")
    p.add_argument("--version", action="version", version=f"fer-edge {_version()}")
    p.add_argument("command", choices=tuple(available), help=" or ".join(available))
    p.add_argument("args", nargs=argparse.REMAINDER, help="the command's own options")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the command; its exit code (2 with one ``error:`` line for an unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    available = commands()
    if argv and argv[0] in available:
        return available[argv[0]].load()(argv[1:], prog=f"fer-edge {argv[0]}")
    build_parser(available).parse_args(argv)  # prints help, the version, or one error line (exit 2)
    return 2


if __name__ == "__main__":
    sys.exit(main())
