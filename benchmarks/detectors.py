"""Compare face detectors and BlazeFace schemes on the shared media: faces found and time per frame.

    python -m benchmarks.detectors [--media ../shared/media] [--threads 1] [--input color gray yuv420]
                                   [--only blazeface] [--json OUT]

Sets: ``photos`` (14 photos, 17 faces whose centres are listed in ``PHOTO_FACES``: a face is found when
a box covers its centre, a box covering none is false), ``unlabelled_faces`` (195 close-up photos of one
person) and every frame of ``video/``. Frames larger than 640 px are downscaled for detection, as the
recognizer does. Everything runs on one core by default (OpenCV and the interpreters limited to
``--threads``); besides the wall time per frame the CPU time is reported, which a busy machine inflates
less. Every detector sees each frame as ``--input``: ``color`` (the BGR file), ``gray`` (its luma, what a
Pi camera's Y plane gives) and ``yuv420`` (through a YUV420 buffer and back to BGR, as the Pi camera
source hands it to the detector: chroma at half resolution). ``--only TEXT`` keeps the detectors whose
name contains TEXT. ``--json OUT`` also writes the figures (atomically).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.atomic_io import atomic_write_json
from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.detection.blazeface import BlazeFaceDetector
from edge_runtime.detection.detectors import DEFAULT_DETECTOR, DETECTORS, FaceDetector, detect_scaled, make_detector
from edge_runtime.paths import shared_dir
from edge_runtime.results import Detection
from edge_runtime.sources.capture import read_image

from .errors import BenchmarkError

#: Face centres a person sees in ``media/photos`` (pixels of the original images).
PHOTO_FACES = {
    "alex-lacamoire.png": [(256, 229)],
    "biden.jpg": [(582, 410)],
    "kit_with_rose.jpg": [(309, 148), (117, 160)],
    "lin-manuel-miranda.png": [(390, 343)],
    "obama-240p.jpg": [(222, 61)],
    "obama-480p.jpg": [(441, 121)],
    "obama-720p.jpg": [(662, 182)],
    "obama.jpg": [(485, 279)],
    "obama2.jpg": [(340, 451)],
    "obama3.jpg": [(770, 475)],
    "obama_and_biden.jpg": [(1234, 478), (836, 514)],
    "obama_partial_face.jpg": [(100, 277)],
    "obama_small.jpg": [(161, 129)],
    "two_people.jpg": [(861, 177), (305, 141)],
}


class FallbackDetector:
    """``first``'s faces; ``second``'s only when ``first`` finds none."""

    uses_color = True

    def __init__(self, name: str, first: FaceDetector, second: FaceDetector) -> None:
        self.name, self.first, self.second = name, first, second

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces of the first detector, else of the second."""
        return self.first.detect(frame) or self.second.detect(frame)


def schemes(threads: int) -> dict[str, Callable[[], FaceDetector]]:
    """The detectors compared, by the name shown in the table (built lazily)."""
    def blaze(kind: str) -> BlazeFaceDetector:
        return BlazeFaceDetector(kind, num_threads=threads)

    return {
        f"{DEFAULT_DETECTOR} (default: full-range + short-range's other faces)":
            lambda: make_detector(DEFAULT_DETECTOR, num_threads=threads),
        "blazeface short-range only": lambda: blaze("short-range"),
        "blazeface full-range only": lambda: blaze("full-range"),
        "short-range, full-range when it finds none":
            lambda: FallbackDetector("short>full", blaze("short-range"), blaze("full-range")),
        "full-range, short-range when it finds none":
            lambda: FallbackDetector("full>short", blaze("full-range"), blaze("short-range")),
        **{name: partial(make_detector, name, num_threads=threads) for name in DETECTORS if name != DEFAULT_DETECTOR},
    }


def frames_of(media: Path) -> dict[str, list]:
    """The image sets: photos (by name), unlabelled_faces and every frame of the video(s)."""
    sets: dict[str, list] = {"photos": [(name, read_image(media / "photos" / name)) for name in PHOTO_FACES]}
    files = sorted((media / "unlabelled_faces").glob("*"))
    sets["unlabelled_faces"] = [(f.name, img) for f in files if (img := read_image(f)) is not None]
    frames = []
    for video in sorted((media / "video").glob("*")):
        cap = cv2.VideoCapture(str(video))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append((f"{video.name}:{len(frames)}", frame))
        cap.release()
    sets["video"] = frames
    return sets


def as_input(image: np.ndarray, kind: str) -> np.ndarray:
    """The frame as the detector gets it from a source of ``kind`` (``color``, ``gray`` or ``yuv420``)."""
    if kind == "gray":
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if kind == "yuv420":
        even = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
        return cv2.cvtColor(cv2.cvtColor(even, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)
    return image


INPUTS = ("color", "gray", "yuv420")


def photo_hits(name: str, found: list[Detection]) -> tuple[int, int]:
    """(faces of the photo covered by a box, boxes covering no face)."""
    centres = PHOTO_FACES[name]
    inside = [[x <= cx <= x + w and y <= cy <= y + h for cx, cy in centres] for x, y, w, h in (d.box for d in found)]
    return sum(any(hits[i] for hits in inside) for i in range(len(centres))), sum(not any(h) for h in inside)


def run(name: str, detector: FaceDetector, sets: dict[str, list], kind: str = "color") -> list[dict]:
    """Detect on every frame of every set, given as ``kind`` (:func:`as_input`); faces found and timing per set."""
    rows = []
    for set_name, frames in sets.items():
        frames = [(frame_name, as_input(frame, kind)) for frame_name, frame in frames]
        times, cpu, counts, scores = [], [], [], []
        hits = false = 0
        for frame_name, frame in frames:
            t0, c0 = time.perf_counter(), time.process_time()
            found = detect_scaled(detector, frame, 640)
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
            counts.append(len(found))
            scores += [d.score for d in found]
            if set_name == "photos":
                h, f = photo_hits(frame_name, found)
                hits, false = hits + h, false + f
        row = {"detector": name, "input": kind, "set": set_name, "frames": len(frames),
               "with_face": sum(c > 0 for c in counts),
               "faces": sum(counts), "ms_mean": round(statistics.fmean(times), 2) if times else 0.0,
               "cpu_ms_mean": round(statistics.fmean(cpu), 2) if cpu else 0.0,
               "score_min": round(min(scores), 4) if scores else None,
               "score_max": round(max(scores), 4) if scores else None}
        if set_name == "photos":
            row.update(faces_total=sum(len(c) for c in PHOTO_FACES.values()), faces_hit=hits, false=false)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """One line per detector: each set's figures side by side."""
    by = {(r["detector"], r["input"], r["set"]): r for r in rows}
    lines = ["| detector | input | photos: faces found (false boxes) | unlabelled_faces: photos with a face | "
             "video: frames with a face (faces) | CPU ms/frame photos / faces / video |", "|---|---|---|---|---|---|"]
    for name, kind in dict.fromkeys((r["detector"], r["input"]) for r in rows):
        p, u, v = by[(name, kind, "photos")], by[(name, kind, "unlabelled_faces")], by[(name, kind, "video")]
        lines.append(f"| {name} | {kind} | {p['faces_hit']}/{p['faces_total']} ({p['false']}) | "
                     f"{u['with_face']}/{u['frames']} | {v['with_face']}/{v['frames']} ({v['faces']}) | "
                     f"{p['cpu_ms_mean']} / {u['cpu_ms_mean']} / {v['cpu_ms_mean']} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.detectors``."""
    p = CommandParser(prog="python -m benchmarks.detectors", description=__doc__.split("\n\n")[0])
    p.add_argument("--media", type=Path, help="media folder (default: $FER_SHARED/media)")
    p.add_argument("--threads", type=int, default=1, help="OpenCV and interpreter threads (1)")
    p.add_argument("--input", nargs="+", choices=INPUTS, default=["color", "gray"],
                   help="how each detector sees the frames (default: color gray)")
    p.add_argument("--only", metavar="TEXT", help="only the detectors whose name contains TEXT")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    add_log_level(p, default="warning")
    return p


def compare_detectors(args: argparse.Namespace) -> int:
    """The command's body: run every chosen detector on every set, print the table, write ``--json``."""
    media = args.media or shared_dir() / "media"
    if not (media / "photos").is_dir():
        raise BenchmarkError(f"media folder {media} not found (it needs photos/, unlabelled_faces/, video/); "
                             "pass --media")
    cv2.setNumThreads(args.threads)
    sets = frames_of(media)
    chosen = {name: build for name, build in schemes(args.threads).items() if not args.only or args.only in name}
    rows = []
    for name, build in chosen.items():
        detector = build()
        rows += [row for kind in args.input for row in run(name, detector, sets, kind)]
    print(markdown(rows))
    if args.json:
        atomic_write_json(args.json, {"media": str(media), "threads": args.threads, "inputs": args.input,
                                      "rows": rows})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print a markdown table of the comparison; 2 with one ``error:`` line on bad input."""
    return run_command(build_parser(), compare_detectors, argv)


if __name__ == "__main__":
    sys.exit(main())
