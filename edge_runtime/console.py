"""``fer-edge``: the installed command. ``fer-edge run ...`` is ``python -m edge_runtime ...`` (the daemon),
``fer-edge bench ...`` is ``python -m benchmarks.latency ...`` (latency against accuracy)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version


def _run(argv: list[str]) -> int:
    from .cli import main

    return main(argv)


def _bench(argv: list[str]) -> int:
    from benchmarks.latency import main

    return main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "run": (_run, "recognize expressions on a camera, video, image or folder; one JSON line per frame "
                  "(= python -m edge_runtime; see fer-edge run --help)"),
    "bench": (_bench, "time every bundled model on this device, with accuracy when --data is given "
                      "(= python -m benchmarks.latency; see fer-edge bench --help)"),
}


def _version() -> str:
    try:
        return version("fer-edge")
    except PackageNotFoundError:
        return "not installed"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: a command name, everything after it goes to that command."""
    p = argparse.ArgumentParser(
        prog="fer-edge", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Facial expression recognition on a Raspberry Pi camera.",
        epilog="commands:\n" + "\n".join(f"  {name:<6} {text}" for name, (_, text) in COMMANDS.items())
        + "\n\nexamples:\n  fer-edge run --source photo.jpg\n  fer-edge run --source picamera2 --http 8765\n"
        "  fer-edge bench --threads 1")
    p.add_argument("--version", action="version", version=f"fer-edge {_version()}")
    p.add_argument("command", choices=tuple(COMMANDS), help="run or bench")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the command's own options")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the command; its exit code (2 with one ``error:`` line for an unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][0](argv[1:])
    build_parser().parse_args(argv)  # prints help, the version, or one error line (exit 2)
    return 2


if __name__ == "__main__":
    sys.exit(main())
