"""``python -m edge_runtime``: the camera daemon's command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Sequence

import cv2

from edge_runtime.command_line import EXIT_BAD_INPUT, EXIT_FAILURE, CommandParser, add_log_level, fail, setup_logging
from edge_runtime.detection.alignment import DEFAULT_ALIGN
from edge_runtime.detection.detectors import DEFAULT_DETECTOR, DETECTORS
from edge_runtime.errors import CameraUnavailableError, FerEdgeError
from edge_runtime.model.classifier import TTA_MODES
from edge_runtime.outputs.mqtt import MqttError
from edge_runtime.recognition.recognizer import DEFAULT_TTA
from edge_runtime.service import config
from edge_runtime.service.config import MQTT_ENV, DaemonConfig
from edge_runtime.service.daemon import Daemon

log = logging.getLogger("edge_runtime")

#: Environment variable read when --source is not given.
SOURCE_ENV = "FER_EDGE_SOURCE"
#: Exit code when the camera/stream did not come up within --wait-for-source (the others:
#: :mod:`edge_runtime.command_line`; deploy/fer-edge.service never restarts 2).
EXIT_NO_SOURCE = 3
#: Warnings and errors only, so a bad input is one ``error:`` line; deploy/fer-edge.service asks for ``info``.
DEFAULT_LOG_LEVEL = "warning"
#: The command's name when run as a module (``fer-edge run`` passes its own).
PROG = "python -m edge_runtime"

EPILOG = """\
sources: picamera2[:N] (Raspberry Pi camera), 0 (USB webcam index) or /dev/videoN, a video file,
rtsp:// or http:// stream URL, one image, or a directory of images.
output: one JSON object per processed frame and line: source, frame, reconnects, time, width,
height, faces [{box [x,y,w,h], label, scores {label: p}, detector_score, track_id (video)}],
latency_ms. SIGHUP reopens --output (after logrotate moved it).
exit codes: 0 done or stopped (SIGTERM/SIGINT); 1 unexpected failure (traceback logged; restart);
2 bad input or setup (do not restart): an option, the model, the card, a --source file, a missing
package (picamera2, paho-mqtt), a camera that refuses the login (HTTP 401/403); 3 the camera/stream
did not come up within --wait-for-source. A login the MQTT broker
refuses is exit 2 at the start, 1 (restarted) when the broker first answers later.
docs: docs/daemon.md, docs/integrations.md (MQTT, Home Assistant, live view)
examples:
  python -m edge_runtime --source picamera2 --output results.jsonl --http 127.0.0.1:8765
  python -m edge_runtime --source picamera2 --http 127.0.0.1:8765 --live --mqtt mqtt://homeassistant.local
  python -m edge_runtime --source ../shared/media/photos --model models/fer4_int8.tflite
"""


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 640x480 (got {text})") from None
    return width, height


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The daemon's argument parser: it converts text to types; :mod:`~edge_runtime.service.config`
    holds the rules."""
    p = CommandParser(prog=prog, epilog=EPILOG,
                      description="Facial expression recognition on a camera, video or images; "
                                  "writes one JSON line per processed frame.",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    env_source = os.environ.get(SOURCE_ENV)
    p.add_argument("--source", required=env_source is None, default=env_source,
                   help=f"picamera2, camera index, video, URL, image or directory (default: ${SOURCE_ENV}, "
                        "which keeps a stream password out of the process list)")
    p.add_argument("--model", help="the .tflite model, its card (.json) beside it "
                                   "(default: models/fer4_int8.tflite)")
    p.add_argument("--card", help="the model card, when it is not beside the model")
    p.add_argument("--output", default="-", help="JSONL file, or - for stdout (default)")
    p.add_argument("--append", action="store_true", help="append to --output instead of replacing it")
    p.add_argument("--rotate-mb", type=float, metavar="MB",
                   help="rotate --output when it would grow past MB megabytes (results.jsonl.1, .2, ...)")
    p.add_argument("--keep", type=int, metavar="K",
                   help="rotated files kept with --rotate-mb, the oldest deleted (default 5)")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                   help=f"face detector (default: {DEFAULT_DETECTOR})")
    p.add_argument("--detector-model", "--blazeface-model", dest="detector_model",
                   help="the detector's model file (Haar .xml or BlazeFace .tflite) if not the default")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                   help="interpreter threads (default: CPU count, at most 4)")
    p.add_argument("--max-fps", type=float, help="process at most this many frames per second")
    p.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve /healthz, /latest, /metrics (host defaults to 127.0.0.1)")
    p.add_argument("--http-allow-remote", action="store_true",
                   help="allow --http on a non-loopback address (the endpoints have no authentication)")
    p.add_argument("--stale-after", type=float, metavar="SECONDS",
                   help="/healthz answers 503 when no frame came for this long (default 10, below the "
                        "15 s stream timeout)")
    p.add_argument("--wait-for-source", type=float, metavar="SECONDS",
                   help="retry a camera/stream that is not up at start for this long, then exit 3 "
                        "(default: forever; 0: exit 3 at once)")
    p.add_argument("--annotate", metavar="OUT",
                   help="debug output with boxes drawn: a .mp4/.avi/.mkv/.mov video, a .jpg/.png/.bmp image "
                        "(rewritten each frame), or a folder path without a suffix")
    p.add_argument("--detect-max-side", type=int, default=config.DEFAULT_DETECT_MAX_SIDE, metavar="PIXELS",
                   help="detect faces on frames downscaled to this longer side (default 640; 0 = never); "
                        "smaller is faster but misses small faces")
    p.add_argument("--margin", type=float, help="face crop margin, fraction of the box per side "
                                                "(default: the card's, else measured per detector)")
    p.add_argument("--min-confidence", type=float, default=0.0,
                   help="report label null below this top probability (default 0)")
    p.add_argument("--tta", choices=TTA_MODES, default=DEFAULT_TTA,
                   help="flip: average each face's scores with its mirror image's (two classifier runs per face; "
                        "default %(default)s)")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=DEFAULT_ALIGN,
                   help="rotate each BlazeFace crop so the eyes are level (Haar: no effect; default: %(default)s)")
    p.add_argument("--profile", metavar="FILE",
                   help="a personal profile from `fer-edge enrol`: the largest face of each frame is read against "
                        "that person's neutral face (its record carries profile and raw_scores; docs/calibration.md)")
    p.add_argument("--smoothing", type=float, default=0.5,
                   help="video: EMA weight of the newest frame's scores, 1 = none (default 0.5)")
    p.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    p.add_argument("--realtime", action="store_true",
                   help="play a video file at its frame rate like a camera (slow processing drops frames)")
    p.add_argument("--loop", action="store_true",
                   help="replay a video file or a directory from the start each time it ends")
    p.add_argument("--size", type=_size,
                   help="camera capture size WIDTHxHEIGHT (default 640x480 for picamera2)")
    p.add_argument("--mqtt", metavar="URL",
                   help="publish each result to an MQTT broker, with Home Assistant discovery: "
                        f"mqtt://[user:pass@]host[:port][/prefix] or mqtts://... (default: ${MQTT_ENV}, "
                        "which keeps the password out of the process list)")
    p.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate (PEM) of an mqtts:// broker")
    p.add_argument("--mqtt-every", type=float, metavar="SECONDS",
                   help="publish a change of scores alone at most every SECONDS; a change of expression or "
                        "face count goes at once (default 5)")
    p.add_argument("--mqtt-heartbeat", type=float, metavar="SECONDS",
                   help="publish an unchanged state again after SECONDS (default 60)")
    p.add_argument("--device-name", metavar="NAME",
                   help="the device in MQTT topics and Home Assistant (default: the hostname)")
    p.add_argument("--live", action="store_true",
                   help="with --http: a live page at / and the annotated stream at /stream.mjpg")
    p.add_argument("--live-fps", type=float, metavar="FPS",
                   help="frame rate cap of the live stream (default 5)")
    add_log_level(p, default=DEFAULT_LOG_LEVEL)
    return p


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """Map parsed arguments to a :class:`DaemonConfig`, which validates them (one ``ConfigError`` if not)."""
    return DaemonConfig(
        source=config.SourceOptions(
            args.source, realtime=args.realtime, loop=args.loop, size=args.size, max_fps=args.max_fps,
            max_frames=args.max_frames, wait_for_source=args.wait_for_source),
        recognizer=config.RecognizerOptions(
            model=args.model, card=args.card, detector=args.detector, detector_model=args.detector_model,
            threads=args.threads, margin=args.margin, min_confidence=args.min_confidence, tta=args.tta,
            align=args.align, smoothing=args.smoothing, detect_max_side=args.detect_max_side, profile=args.profile),
        output=config.OutputOptions(
            args.output, append=args.append, rotate_mb=args.rotate_mb, keep=args.keep, annotate=args.annotate),
        http=config.HttpOptions(
            args.http, allow_remote=args.http_allow_remote, stale_after=args.stale_after, live=args.live,
            live_fps=args.live_fps),
        mqtt=config.MqttOptions(
            args.mqtt or os.environ.get(MQTT_ENV) or None, url_origin="--mqtt" if args.mqtt else f"${MQTT_ENV}",
            ca=args.mqtt_ca, every=args.mqtt_every, heartbeat=args.mqtt_heartbeat,
            device_name=args.device_name))


def quiet_native_logs(level: str) -> None:
    """Below ``info``, OpenCV's and FFmpeg's own warnings (which the daemon reports itself, in one line)
    are not printed."""
    if level in ("debug", "info"):
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg is first used
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the daemon and return its exit code (see ``EPILOG``)."""
    args = build_parser(prog).parse_args(None if argv is None else list(argv))
    setup_logging(args.log_level)
    quiet_native_logs(args.log_level)
    try:
        daemon = Daemon(config_from_args(args))
    except FerEdgeError as exc:
        return fail(str(exc), EXIT_BAD_INPUT, prog)

    def on_signal(signum: int, _frame) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        daemon.stop()

    def on_hangup(_signum: int, _frame) -> None:
        log.info("received SIGHUP, reopening the output file")
        daemon.reopen_output()

    handlers = {signal.SIGTERM: on_signal, signal.SIGINT: on_signal, signal.SIGHUP: on_hangup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        try:
            daemon.prepare()
        except FerEdgeError as exc:
            return fail(str(exc), EXIT_BAD_INPUT, prog)
        return daemon.run()
    except CameraUnavailableError as exc:
        return fail(str(exc), EXIT_NO_SOURCE, prog)
    except MqttError as exc:  # the broker was down at the start and refused the login once up
        return fail(str(exc), EXIT_FAILURE, prog)
    except FerEdgeError as exc:  # a --source file found unreadable once read, a missing package, a refused login
        return fail(str(exc), EXIT_BAD_INPUT, prog)
    except Exception as exc:  # logged with its traceback
        log.error("unexpected failure (exit code 1: worth a restart)", exc_info=exc)
        return fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE, prog)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
