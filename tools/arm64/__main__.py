"""``python -m tools.arm64``: the emulated-ARM check (``probe``: the per-side probe); see :mod:`tools.arm64`."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge_runtime.command_line import EXIT_BAD_INPUT, EXIT_FAILURE, CommandParser, add_log_level, fail, run_command
from edge_runtime.paths import DEFAULT_MODEL, shared_dir

from .build import default_arm64_dir
from .report import format_summary
from .settings import DEFAULT_PHOTOS, PROFILES, CheckUnavailable

DESCRIPTION = "The edge runtime on emulated 64-bit ARM (Raspberry Pi 4 and Pi 5 CPUs) gives the same answers as on x86."


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tools.arm64``."""
    p = CommandParser(prog="python -m tools.arm64", description=DESCRIPTION,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="int8 .tflite with its card (default: bundled)")
    p.add_argument("--out", type=Path, help="also write the summary JSON here (always: <arm64 dir>/last-summary.json)")
    p.add_argument("--workdir", type=Path, help="keep the runs' outputs here (default: a temporary folder)")
    p.add_argument("--arm64-dir", type=Path, default=default_arm64_dir(), help="emulated builds (default: .arm64)")
    p.add_argument("--shared", type=Path, default=shared_dir(), help="shared assets (default: ../shared)")
    p.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS), help="names in shared media/photos")
    p.add_argument("--frames", type=int, default=5, help="first video frames to process (default 5)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads on every side (default 1)")
    p.add_argument("--profiles", nargs="+", choices=list(PROFILES), default=list(PROFILES))
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    add_log_level(p, default="warning")
    return p


def check(args: argparse.Namespace) -> int:
    """Run the check and print its summary: 0 same answers, 1 a difference (or a failed run), 2 cannot run here."""
    from .check import run_check
    from .options import CheckOptions

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fer-arm64-")))
        opts = CheckOptions(model=args.model, workdir=workdir, summary=args.out,
                            shared=args.shared, arm64_dir=args.arm64_dir, photos=tuple(args.photos),
                            frames=args.frames, threads=args.threads, profiles=tuple(args.profiles), jobs=args.jobs)
        try:
            summary = run_check(opts)
        except CheckUnavailable as exc:
            return fail(f"cannot run the arm64 check here: {exc}", EXIT_BAD_INPUT)
        except (FileNotFoundError, RuntimeError) as exc:
            return fail(str(exc), EXIT_FAILURE)
    print(format_summary(summary))
    print(f"summary: {opts.summary or opts.arm64_dir / 'last-summary.json'}")
    return 0 if summary["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check (or, with ``probe`` first, the probe); see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["probe"]:
        from .probe import probe_main

        return probe_main(argv[1:])
    return run_command(build_parser(), check, argv)


if __name__ == "__main__":
    sys.exit(main())
