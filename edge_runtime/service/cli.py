"""``python -m edge_runtime``: the camera daemon's command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Sequence

import cv2

from edge_runtime.command_line import EXIT_BAD_INPUT, EXIT_FAILURE, CommandParser, add_log_level, fail, setup_logging
from edge_runtime.errors import CameraUnavailableError, FerEdgeError
from edge_runtime.options import add_options, from_args
from edge_runtime.outputs.mqtt import MqttError
from edge_runtime.outputs.options import MQTT_ENV, HttpOptions, MqttOptions, OutputOptions
from edge_runtime.recognition.options import RecognizerOptions
from edge_runtime.service.config import DaemonConfig
from edge_runtime.service.daemon import Daemon
from edge_runtime.sources.options import SourceOptions

log = logging.getLogger("edge_runtime")

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


#: The option blocks the command line is made of, each under its own heading in --help.
BLOCKS = (("source", SourceOptions), ("recognition", RecognizerOptions), ("results and debug output", OutputOptions),
          ("status endpoints and live view", HttpOptions), ("MQTT and Home Assistant", MqttOptions))


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The daemon's argument parser, generated from the components' option blocks (flag, help and default
    come from each field): it converts text to types, and the blocks hold the rules."""
    p = CommandParser(prog=prog, epilog=EPILOG,
                      description="Facial expression recognition on a camera, video or images; "
                                  "writes one JSON line per processed frame.",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    for title, block in BLOCKS:
        add_options(p, block, title)
    add_log_level(p, default=DEFAULT_LOG_LEVEL)
    return p


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """Build every block from the parsed arguments; each validates itself (one ``ConfigError`` if not)."""
    url = args.mqtt or os.environ.get(MQTT_ENV) or None
    return DaemonConfig(
        source=from_args(SourceOptions, args), recognizer=from_args(RecognizerOptions, args),
        output=from_args(OutputOptions, args), http=from_args(HttpOptions, args),
        mqtt=from_args(MqttOptions, args, url=url, url_origin="--mqtt" if args.mqtt else f"${MQTT_ENV}"))


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
