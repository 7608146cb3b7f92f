"""``python -m benchmarks.camera_pipeline --source VIDEO``: the whole camera path on a real video.

For each detector and thread count, the video is decoded and every frame goes through the edge
runtime's own ``FaceRecognizer.recognize`` (detect -> crop -> classify) and its tracker; each stage
is timed with ``time.perf_counter_ns`` (the recognizer reports its stages in a ``RecognizeTrace``).
Reported: end-to-end frames per second (wall clock, decode included) and milliseconds per frame
for each stage.
"""

from __future__ import annotations

import argparse
import gc
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_runtime import FaceRecognizer, IoUTracker, open_source
from edge_runtime.command_line import CommandParser, add_log_level
from edge_runtime.detection.detectors import DETECTORS
from edge_runtime.errors import ModelError
from edge_runtime.model.classifier import TTA_MODES
from edge_runtime.paths import DEFAULT_MODEL, shared_dir
from edge_runtime.recognition.options import DEFAULT_TTA
from edge_runtime.recognition.recognizer import RecognizeTrace
from edge_runtime.results import Face

from .camera_pipeline_report import pipeline_markdown, plot_pipeline
from .device import device_facts
from .errors import BenchmarkError
from .latency import LOG_FORMAT, parse_threads, quiet_model_loads
from .report import run_and_report, run_benchmark_command
from .timing import PERCENTILES

log = logging.getLogger("benchmarks.camera_pipeline")

STAGES = ("decode", "detect", "crop", "classify", "track")
SHARED_VIDEO = Path("media") / "video" / "short_hamilton_clip.mp4"


def process_frame(recognizer: FaceRecognizer, tracker: IoUTracker, image: np.ndarray,
                  times: dict[str, int]) -> list[Face]:
    """The recognizer's :meth:`~FaceRecognizer.recognize`, then tracking; each stage's ns into ``times``.

    ``crop`` is the recognizer's frame preparation (grayscale) plus its face crops.
    """
    trace = RecognizeTrace()
    faces = recognizer.recognize(image, trace=trace)
    t0 = time.perf_counter_ns()
    faces = tracker.update(faces)
    times["track"] = time.perf_counter_ns() - t0
    times["detect"] = trace.stage_ns["detect"]
    times["crop"] = trace.stage_ns["preprocess"] + trace.stage_ns["crop"]
    times["classify"] = trace.stage_ns["classify"]
    return faces


def stage_stats(values_ns: Sequence[int]) -> dict[str, float]:
    """Mean and percentiles of per-frame stage times, in ms."""
    ms = np.asarray(values_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, PERCENTILES)
    return {"mean_ms": round(float(ms.mean()), 4), "p50_ms": round(float(p50), 4),
            "p90_ms": round(float(p90), 4), "p99_ms": round(float(p99), 4)}


def run_video(recognizer: FaceRecognizer, source_spec: str, warmup_frames: int,
              max_frames: int | None) -> dict[str, Any]:
    """Run the camera path over ``source_spec``; per-frame stage times of the frames after warm-up."""
    tracker = IoUTracker(recognizer.labels)
    per_stage: dict[str, list[int]] = {stage: [] for stage in STAGES}
    totals: list[int] = []
    faces_seen = frames_with_faces = 0
    clock = time.perf_counter_ns
    with open_source(source_spec) as source:
        index = 0
        started = None
        while max_frames is None or index < warmup_frames + max_frames:
            if index == warmup_frames:
                started = clock()
            t0 = clock()
            frame = source.read()
            times = {"decode": clock() - t0}
            if frame is None:
                break
            faces = process_frame(recognizer, tracker, frame.image, times)
            if index >= warmup_frames:
                for stage in STAGES:
                    per_stage[stage].append(times[stage])
                totals.append(clock() - t0)
                faces_seen += len(faces)
                frames_with_faces += bool(faces)
            index += 1
        wall_ns = clock() - started if started is not None else 0
    if not totals:
        raise BenchmarkError(f"{source_spec} has {index} frame(s), not more than --warmup-frames "
                             f"{warmup_frames}; use a longer video or fewer warm-up frames")
    frames = len(totals)
    return {
        "frames": frames, "faces": faces_seen, "faces_per_frame": round(faces_seen / frames, 3),
        "frames_with_faces": frames_with_faces,
        "fps": round(frames / (wall_ns / 1e9), 3),
        **{f"frame_{k}": v for k, v in stage_stats(totals).items()},
        **{f"{stage}_ms": stage_stats(per_stage[stage])["mean_ms"] for stage in STAGES},
        "classify_ms_per_face": (round(sum(per_stage["classify"]) / 1e6 / faces_seen, 4)
                                 if faces_seen else None),
        "stages": {stage: stage_stats(per_stage[stage]) for stage in STAGES},
    }


def default_source() -> Path:
    """``<shared>/media/video/short_hamilton_clip.mp4`` (an error naming --source if it is absent)."""
    path = shared_dir() / SHARED_VIDEO
    if not path.is_file():
        raise BenchmarkError(f"no --source given and {path} is not there; pass --source VIDEO")
    return path


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.camera_pipeline``."""
    p = CommandParser(prog="python -m benchmarks.camera_pipeline", description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", default=None,
                   help="video file (or any edge_runtime source: image folder, camera) "
                        "(default: ../shared/media/video/short_hamilton_clip.mp4)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="expression model (.tflite + card)")
    p.add_argument("--detectors", default=",".join(DETECTORS), help="comma-separated face detectors")
    p.add_argument("--tta", choices=TTA_MODES, default=DEFAULT_TTA,
                   help="the recognizer's test-time augmentation (flip: two classifier runs per face)")
    p.add_argument("--blazeface-model", type=Path, default=None,
                   help="BlazeFace .tflite (default: found in ../shared or a mediapipe wheel)")
    p.add_argument("--threads", default="1,all", help="thread counts, comma-separated ('all' = every core)")
    p.add_argument("--warmup-frames", type=int, default=5, help="first frames processed but not counted")
    p.add_argument("--max-frames", type=int, default=None, help="count at most this many frames per run")
    p.add_argument("--out", type=Path, default=None,
                   help="write pipeline.json, pipeline.md and pipeline.png into this folder")
    p.add_argument("-v", "--verbose", action="store_true", help="log every model load")
    add_log_level(p)
    return p


def parse_detectors(spec: str) -> list[str]:
    """``--detectors``: names from edge_runtime's detectors."""
    names = list(dict.fromkeys(n.strip().lower() for n in spec.split(",") if n.strip()))
    unknown = [n for n in names if n not in DETECTORS]
    if unknown or not names:
        raise BenchmarkError(f"--detectors {spec!r}: choose from {', '.join(DETECTORS)}")
    return names


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark every detector at every thread count; return device, settings and rows."""
    started = time.perf_counter()
    threads = parse_threads(args.threads)
    detectors = parse_detectors(args.detectors)
    if args.warmup_frames < 0 or (args.max_frames is not None and args.max_frames < 1):
        raise BenchmarkError("--warmup-frames must be 0 or more and --max-frames 1 or more")
    source = str(args.source) if args.source is not None else str(default_source())
    device = device_facts()
    rows = []
    opencv_threads = cv2.getNumThreads()
    try:
        for detector in detectors:
            for count in threads:
                cv2.setNumThreads(count)
                log.info("pipeline with %s at %d thread(s) on %s", detector, count, source)
                detector_model = args.blazeface_model if detector == "blazeface" else None
                try:
                    recognizer = FaceRecognizer(args.model, detector=detector, detector_model=detector_model,
                                                num_threads=count, tta=args.tta)
                except ModelError as exc:
                    raise BenchmarkError(f"{detector}: {exc}") from exc
                result = run_video(recognizer, source, args.warmup_frames, args.max_frames)
                card = recognizer.card
                rows.append({"detector": detector, "threads": count, "model": card.name,
                             "variant": card.variant, "file": recognizer.classifier.model_path.name,
                             "margin": recognizer.margin, "warmup_frames": args.warmup_frames, **result})
                del recognizer
                gc.collect()
    finally:
        cv2.setNumThreads(opencv_threads)
    return {
        "benchmark": "pipeline",
        "command": "python -m benchmarks.camera_pipeline " + shlex.join(args.argv),
        "device": device,
        "settings": {"source": source, "model": str(args.model), "tta": args.tta, "threads": threads,
                     "detectors": detectors,
                     "warmup_frames": args.warmup_frames, "max_frames": args.max_frames,
                     "stages": list(STAGES), "clock": "time.perf_counter_ns",
                     "threads_apply_to": "LiteRT interpreters (classifier, BlazeFace) and OpenCV"},
        "rows": rows,
        "duration_s": round(time.perf_counter() - started, 1),
    }


def benchmark(args: argparse.Namespace) -> int:
    """The command's body: run, print the table, write ``--out``."""
    quiet_model_loads(args.verbose)
    return run_and_report(args, run, "pipeline", pipeline_markdown, plot_pipeline)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write ``--out``; 2 with one ``error:`` line on bad input."""
    return run_benchmark_command(build_parser(), benchmark, argv, log_format=LOG_FORMAT)


if __name__ == "__main__":
    sys.exit(main())
