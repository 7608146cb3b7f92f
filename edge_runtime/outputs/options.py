"""The outputs' options, one frozen block each, validated once: the results file and the annotated
output (:class:`OutputOptions`), the status endpoints and the live view (:class:`HttpOptions`), MQTT
(:class:`MqttOptions`). A block that constructs is valid, and its resolved values
(``HttpOptions.address``, ``OutputOptions.rotate_bytes``) are ready to use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_runtime.options import at_least_zero, check, in_range, needs, option, positive
from edge_runtime.outputs.annotate import annotate_mode
from edge_runtime.outputs.mqtt_policy import DEFAULT_EVERY, DEFAULT_HEARTBEAT
from edge_runtime.outputs.status_http import STALE_AFTER, is_loopback

#: Environment variable read when --mqtt is not given (it keeps the password out of the process list).
MQTT_ENV = "FER_EDGE_MQTT"
#: Defaults of the options whose absence means something (``--keep`` only with ``--rotate-mb``, ...).
DEFAULT_KEEP = 5
DEFAULT_LIVE_FPS = 5.0
#: Upper bounds of options whose larger values only exhaust the device.
MAX_KEEP = 1000
MAX_ROTATE_MB = 1e6
MIN_ROTATE_MB = 0.001  # about a kilobyte: a few lines per file, no less
MAX_FPS = 1000.0


@dataclass(frozen=True)
class OutputOptions:
    """The JSONL results and the annotated debug output."""

    target: str = option("-", flag="--output", help="JSONL file, or - for stdout")
    append: bool = option(False, flag="--append", action="store_true",
                          help="append to --output instead of replacing it")
    rotate_mb: float | None = option(flag="--rotate-mb", type=float, metavar="MB",
                                     help="rotate --output when it would grow past MB megabytes (results.jsonl.1, "
                                          ".2, ...)")
    keep: int | None = option(flag="--keep", type=int, metavar="K",
                              help=f"rotated files kept with --rotate-mb, the oldest deleted (default {DEFAULT_KEEP})")
    annotate: str | None = option(flag="--annotate", metavar="OUT",
                                  help="debug output with boxes drawn: a .mp4/.avi/.mkv/.mov video, a .jpg/.png/.bmp "
                                       "image (rewritten each frame), or a folder path without a suffix")

    def __post_init__(self) -> None:
        in_range("--rotate-mb", self.rotate_mb, MIN_ROTATE_MB, MAX_ROTATE_MB, below=f"at least {MIN_ROTATE_MB:g}")
        check(self.rotate_mb is None or self.target != "-",
              "--rotate-mb needs --output FILE (stdout cannot be rotated)")
        needs("--keep", self.keep is not None, "--rotate-mb MB", self.rotate_mb is not None)
        check(self.keep is None or 1 <= self.keep <= MAX_KEEP,
              f"--keep {self.keep}: keep between 1 and {MAX_KEEP} rotated files")
        if self.annotate:
            annotate_mode(Path(self.annotate))
            folder = Path(self.annotate).parent
            check(folder.is_dir(), f"cannot write --annotate {self.annotate} (the folder {folder} does not exist; "
                                   "create it first)")

    @property
    def rotate_bytes(self) -> int | None:
        """The size a file may reach before it rotates, in bytes (``None``: never)."""
        return int(self.rotate_mb * 1024 * 1024) if self.rotate_mb else None

    @property
    def kept(self) -> int:
        """Rotated files kept."""
        return DEFAULT_KEEP if self.keep is None else self.keep


def parse_bind(spec: str) -> tuple[str, int]:
    """Parse ``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to 127.0.0.1."""
    host, sep, port = spec.strip().rpartition(":")
    if not sep:
        host, port = "", spec.strip()
    host = host.strip("[]") or "127.0.0.1"
    check(port.isdigit() and 0 <= int(port) <= 65535,
          f"bad --http address {spec!r}; use PORT or HOST:PORT, e.g. 127.0.0.1:8765")
    return host, int(port)


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback ``host`` unless ``allow_remote``: the endpoints have no authentication."""
    check(allow_remote or is_loopback(host),
          f"--http {host} is reachable from the network and the endpoints have no authentication; bind "
          "127.0.0.1, or add --http-allow-remote to allow it")


@dataclass(frozen=True)
class HttpOptions:
    """The status endpoints and the live view."""

    bind: str | None = option(flag="--http", metavar="[HOST:]PORT",
                              help="serve /healthz, /latest, /metrics (host defaults to 127.0.0.1)")
    allow_remote: bool = option(False, flag="--http-allow-remote", action="store_true",
                                help="allow --http on a non-loopback address (the endpoints have no authentication)")
    stale_after: float | None = option(flag="--stale-after", type=float, metavar="SECONDS",
                                       help=f"/healthz answers 503 when no frame came for this long (default "
                                            f"{STALE_AFTER:g}, below the stream timeout)")
    live: bool = option(False, flag="--live", action="store_true",
                        help="with --http: a live page at / and the annotated stream at /stream.mjpg")
    live_fps: float | None = option(flag="--live-fps", type=float, metavar="FPS",
                                    help=f"frame rate cap of the live stream (default {DEFAULT_LIVE_FPS:g})")
    address: tuple[str, int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.bind is not None:
            address = parse_bind(self.bind)
            check_bind(address[0], self.allow_remote)
            object.__setattr__(self, "address", address)
        positive("--stale-after", self.stale_after)
        check(not self.live or self.bind is not None,
              "--live needs --http [HOST:]PORT (the page is served there), e.g. --http 127.0.0.1:8765 --live")
        needs("--live-fps", self.live_fps is not None, "--live", self.live)
        positive("--live-fps", self.live_fps, MAX_FPS)

    @property
    def stream_fps(self) -> float:
        """The live stream's frame rate cap."""
        return DEFAULT_LIVE_FPS if self.live_fps is None else self.live_fps


@dataclass(frozen=True)
class MqttOptions:
    """The MQTT output with Home Assistant discovery."""

    url: str | None = option(flag="--mqtt", metavar="URL", show_default=False,
                             help="publish each result to an MQTT broker, with Home Assistant discovery: "
                                  f"mqtt://[user:pass@]host[:port][/prefix] or mqtts://... (default: ${MQTT_ENV}, "
                                  "which keeps the password out of the process list)")
    url_origin: str = "--mqtt"  # where the URL came from, named in errors (--mqtt or $FER_EDGE_MQTT)
    ca: str | None = option(flag="--mqtt-ca", metavar="FILE", help="CA certificate (PEM) of an mqtts:// broker")
    every: float | None = option(flag="--mqtt-every", type=float, metavar="SECONDS",
                                 help="publish a change of scores alone at most every SECONDS; a change of "
                                      f"expression or face count goes at once (default {DEFAULT_EVERY:g})")
    heartbeat: float | None = option(flag="--mqtt-heartbeat", type=float, metavar="SECONDS",
                                     help=f"publish an unchanged state again after SECONDS (default "
                                          f"{DEFAULT_HEARTBEAT:g})")
    device_name: str | None = option(flag="--device-name", metavar="NAME",
                                     help="the device in MQTT topics and Home Assistant (default: the hostname)")

    def __post_init__(self) -> None:
        for flag, value in (("--mqtt-ca", self.ca), ("--mqtt-every", self.every),
                            ("--mqtt-heartbeat", self.heartbeat), ("--device-name", self.device_name)):
            needs(flag, value not in (None, ""), f"--mqtt URL (or ${MQTT_ENV})", bool(self.url))
        at_least_zero("--mqtt-every", self.every)
        positive("--mqtt-heartbeat", self.heartbeat)

