"""``python -m edge_runtime``: the camera daemon's command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from .daemon import Daemon, DaemonConfig
from .detectors import DETECTORS
from .errors import USER_ERRORS, CameraUnavailableError

log = logging.getLogger("edge_runtime")

EPILOG = """\
sources: picamera2[:N] (Raspberry Pi camera), 0 (USB webcam index) or /dev/videoN, a video file,
rtsp:// or http:// stream URL, one image, or a directory of images.
output: one JSON object per processed frame and line: source, frame, time, width, height,
faces [{box [x,y,w,h], label, scores {label: p}, detector_score, track_id (video)}], latency_ms.
exit codes: 0 done or stopped (SIGTERM/SIGINT), 1 failure, 2 bad input, 3 camera unavailable at start.
examples:
  python -m edge_runtime --source picamera2 --output results.jsonl --http 127.0.0.1:8765
  python -m edge_runtime --source ../shared/media/photos --model models/fer4_int8.tflite
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text})")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (got {text})")
    return value


def _weight(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 1 (got {text})")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 640x480 (got {text})") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive (got {text})")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The daemon's argument parser."""
    p = argparse.ArgumentParser(prog="python -m edge_runtime", epilog=EPILOG,
                                description="Facial expression recognition on a camera, video or images; "
                                            "writes one JSON line per processed frame.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="picamera2, camera index, video, URL, image or directory")
    p.add_argument("--model", help="the .tflite model, its card (.json) beside it "
                                   "(default: models/fer4_int8.tflite)")
    p.add_argument("--card", help="the model card, when it is not beside the model")
    p.add_argument("--output", default="-", help="JSONL file, or - for stdout (default)")
    p.add_argument("--append", action="store_true", help="append to --output instead of replacing it")
    p.add_argument("--detector", choices=DETECTORS, default="blazeface", help="face detector (default: blazeface)")
    p.add_argument("--detector-model", "--blazeface-model", dest="detector_model",
                   help="the detector's model file (Haar .xml or BlazeFace .tflite) if not the default")
    p.add_argument("--threads", type=_positive_int, default=min(4, os.cpu_count() or 1),
                   help="interpreter threads (default: CPU count, at most 4)")
    p.add_argument("--max-fps", type=_positive_float, help="process at most this many frames per second")
    p.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve /healthz, /latest, /metrics (host defaults to 127.0.0.1)")
    p.add_argument("--annotate", metavar="OUT",
                   help="debug output with boxes drawn: a .mp4/.avi video, a .jpg/.png, or a directory")
    p.add_argument("--detect-max-side", type=int, default=640, metavar="PIXELS",
                   help="detect faces on frames downscaled to this longer side (default 640; 0 = never); "
                        "smaller is faster but misses small faces")
    p.add_argument("--margin", type=float, help="face crop margin, fraction of the box per side "
                                                "(default: the card's, else measured per detector)")
    p.add_argument("--min-confidence", type=_fraction, default=0.0,
                   help="report label null below this top probability (default 0)")
    p.add_argument("--smoothing", type=_weight, default=0.5,
                   help="video: EMA weight of the newest frame's scores, 1 = none (default 0.5)")
    p.add_argument("--max-frames", type=_positive_int, help="stop after this many processed frames")
    p.add_argument("--realtime", action="store_true",
                   help="play a video file at its frame rate like a camera (slow processing drops frames)")
    p.add_argument("--size", type=_size,
                   help="camera capture size WIDTHxHEIGHT (default 640x480 for picamera2)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="log verbosity on stderr (default: info)")
    return p


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """Map parsed arguments to a :class:`DaemonConfig`."""
    return DaemonConfig(
        source=args.source, model=args.model, card=args.card, output=args.output, append=args.append,
        detector=args.detector, detector_model=args.detector_model, threads=args.threads,
        max_fps=args.max_fps, http=args.http, annotate=args.annotate, margin=args.margin,
        min_confidence=args.min_confidence, smoothing=args.smoothing,
        max_frames=args.max_frames, realtime=args.realtime, size=args.size,
        detect_max_side=max(0, args.detect_max_side))


def main(argv: list[str] | None = None) -> int:
    """Run the daemon and return its exit code.

    0: done, or stopped by SIGTERM/SIGINT; 1: unexpected failure; 2: bad input (options, model, card,
    file source); 3: the camera/stream could not be opened at start-up (retrying later may work).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.margin is not None and args.margin < 0:
        print("error: --margin must be >= 0", file=sys.stderr)
        return 2
    daemon = Daemon(config_from_args(args))

    def on_signal(signum: int, _frame) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        daemon.stop()

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        return daemon.run()
    except CameraUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad option values found while building (e.g. --http address)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        log.debug("I/O failure", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, no traceback (see --log-level debug)
        log.debug("unexpected failure", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc} (run with --log-level debug for details)", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
