"""Compare the face detectors on the shared media: faces found and detection time per frame.

    python -m benchmarks.detectors [--media ../shared/media] [--threads 1]

Frames larger than 640 px are downscaled for detection, as the recognizer does. Both detectors run
on one core (OpenCV and the interpreter limited to one thread); besides the wall time per frame the
CPU time is reported, which a busy machine inflates less. ``--json OUT`` also writes the figures
(atomically).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2

from edge_runtime.atomic_io import atomic_write_json
from edge_runtime.detectors import detect_scaled, make_detector
from edge_runtime.errors import USER_ERRORS
from edge_runtime.paths import shared_dir
from edge_runtime.sources import read_image


def frames_of(media: Path) -> dict[str, list]:
    """The image sets: photos, unlabelled_faces and every frame of the video(s)."""
    sets = {}
    for name in ("photos", "unlabelled_faces"):
        files = sorted((media / name).glob("*"))
        sets[name] = [img for img in (read_image(f) for f in files) if img is not None]
    frames = []
    for video in sorted((media / "video").glob("*")):
        cap = cv2.VideoCapture(str(video))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
    sets["video"] = frames
    return sets


def run(detector_name: str, sets: dict[str, list], threads: int) -> list[dict]:
    """Detect on every frame of every set; faces found and timing per set."""
    detector = make_detector(detector_name, num_threads=threads)
    rows = []
    for name, frames in sets.items():
        times, cpu, counts = [], [], []
        for frame in frames:
            t0, c0 = time.perf_counter(), time.process_time()
            counts.append(len(detect_scaled(detector, frame, 640)))
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        rows.append({"detector": detector_name, "set": name, "frames": len(frames),
                     "with_face": sum(c > 0 for c in counts), "faces": sum(counts),
                     "ms_mean": round(statistics.fmean(times), 2) if times else 0.0,
                     "ms_median": round(statistics.median(times), 2) if times else 0.0,
                     "cpu_ms_mean": round(statistics.fmean(cpu), 2) if cpu else 0.0})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print a markdown table of the comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--media", type=Path, help="media folder (default: $FER_SHARED/media)")
    p.add_argument("--threads", type=int, default=1, help="OpenCV and interpreter threads (1)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    media = args.media or shared_dir() / "media"
    if not media.is_dir():
        print(f"error: media folder {media} not found; pass --media", file=sys.stderr)
        return 2
    cv2.setNumThreads(args.threads)
    sets = frames_of(media)
    try:
        rows = [row for name in ("haar", "blazeface") for row in run(name, sets, args.threads)]
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("| detector | set | frames | frames with a face | faces found | ms/frame mean | median | CPU ms/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['detector']} | {r['set']} | {r['frames']} | {r['with_face']} | {r['faces']} | "
              f"{r['ms_mean']} | {r['ms_median']} | {r['cpu_ms_mean']} |")
    if args.json:
        atomic_write_json(args.json, {"media": str(media), "threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
