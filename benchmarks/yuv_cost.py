"""What colour costs on the Pi camera path: a YUV420 lores buffer to BGR, per frame.

    python -m benchmarks.yuv_cost [--size 640x480] [--runs 500] [--threads 1]

Times :func:`edge_runtime.sources.yuv.yuv420_to_bgr` (the Pi camera source's conversion) for a buffer whose
rows are as wide as the image and for one padded to a 768-byte stride (the repacking path), next to
the Y-plane copy the grayscale path makes, and prints the bytes each format takes per frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.sources.yuv import y_plane, yuv420_to_bgr


def time_ms(call, runs: int) -> float:
    """Median milliseconds of ``call()`` over ``runs`` calls (after 10 warm-up calls)."""
    for _ in range(10):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def frame_size(text: str) -> tuple[int, int]:
    """``--size WIDTHxHEIGHT``: a positive, even width and height (YUV420 halves both for chroma)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT, e.g. 640x480 (got {text})") from None
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"{text}: YUV420 needs a positive, even width and height")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.yuv_cost``."""
    p = CommandParser(prog="python -m benchmarks.yuv_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=frame_size, default="640x480", help="WIDTHxHEIGHT, both even (640x480)")
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads (1)")
    add_log_level(p, default="warning")
    return p


def measure(args: argparse.Namespace) -> int:
    """The command's body: time each conversion and print the table."""
    width, height = args.size
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{width}x{height}, median of {args.runs} runs, {args.threads} OpenCV thread(s)\n")
    print("| step | stride | ms/frame | bytes in -> out |\n|---|---|---|---|")
    for stride in (width, -(-width // 256) * 256 if width % 256 else width + 128):
        buffer = rng.integers(0, 256, (height * 3 // 2, stride), dtype=np.uint8)
        yuv_bytes = height * 3 // 2 * stride
        ms = time_ms(lambda b=buffer, s=stride: yuv420_to_bgr(b, width, height, s), args.runs)
        print(f"| YUV420 -> BGR (detector) | {stride} | {ms:.3f} | {yuv_bytes:,} -> {width * height * 3:,} |")
        ms = time_ms(lambda b=buffer, s=stride: y_plane(b, width, height, s), args.runs)
        print(f"| Y plane copy (classifier) | {stride} | {ms:.3f} | {height * stride:,} -> {width * height:,} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print a markdown table of the conversion costs; 2 with one ``error:`` line on a bad option."""
    return run_command(build_parser(), measure, argv)


if __name__ == "__main__":
    sys.exit(main())
