"""The daemon's configuration: nested, frozen blocks, each validated once when it is built.

Every rule about the options lives here, and nowhere else: ranges, options that need another, the
``--http`` address, the ``--mqtt`` URL, output rotation and the health threshold. A block that
constructs is valid, and its resolved values (``HttpOptions.address``, ``OutputOptions.rotate_bytes``,
``DaemonConfig.stale_after``, ``DaemonConfig.mqtt_config``) are ready to use. argparse only converts
text to types. Errors are :class:`ConfigError`: one line that names the option and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_runtime.command_line import NUMBER_LIMIT
from edge_runtime.detection.alignment import DEFAULT_ALIGN
from edge_runtime.detection.detectors import DEFAULT_DETECTOR, DETECTORS
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.model.classifier import TTA_MODES
from edge_runtime.outputs.annotate import annotate_mode
from edge_runtime.outputs.mqtt import MqttConfig
from edge_runtime.outputs.status_http import STALE_AFTER, is_loopback
from edge_runtime.recognition.recognizer import DEFAULT_TTA
from edge_runtime.sources.capture import SOURCE_HELP

#: Environment variable the command line reads when --mqtt is not given.
MQTT_ENV = "FER_EDGE_MQTT"
#: Defaults of the options whose absence means something (``--keep`` only with ``--rotate-mb``, ...).
DEFAULT_KEEP = 5
DEFAULT_LIVE_FPS = 5.0
DEFAULT_DETECT_MAX_SIDE = 640
#: Upper bounds of options whose larger values only exhaust the device (threads, rotated files, ...).
MAX_THREADS = 64
MAX_KEEP = 1000
MAX_FPS = 1000.0
MAX_SIDE = 20000
MAX_MARGIN = 1.0
MAX_ROTATE_MB = 1e6


class ConfigError(EdgeRuntimeError):
    """An option, or a combination of options, that cannot work; the message names the fix."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _in_range(flag: str, value: float | None, low: float, high: float, *, low_open: bool = False,
              below: str | None = None) -> None:
    """``value`` (when given) is a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``).
    ``below`` says what the value must be when it is too small (default: between low and high)."""
    if value is None:
        return
    if math.isnan(value):
        raise ConfigError(f"{flag} must be a number (got nan)")
    if value > high:
        raise ConfigError(f"{flag} must be at most {high:g} (got {value:g})")
    if value < low or (low_open and value == low):
        raise ConfigError(f"{flag} must be {below or f'between {low:g} and {high:g}'} (got {value:g})")


def _positive(flag: str, value: float | None, high: float = NUMBER_LIMIT) -> None:
    _in_range(flag, value, 0, high, low_open=True, below="> 0")


def _at_least_zero(flag: str, value: float | None, high: float = NUMBER_LIMIT) -> None:
    _in_range(flag, value, 0, high, below="0 or more")


def _needs(flag: str, given: bool, other: str, present: bool) -> None:
    _check(not given or present, f"{flag} needs {other}")


@dataclass(frozen=True)
class SourceOptions:
    """Where frames come from and how they are read (``--source`` ... ``--wait-for-source``)."""

    spec: str
    realtime: bool = False
    loop: bool = False
    size: tuple[int, int] | None = None
    max_fps: float | None = None
    max_frames: int | None = None
    wait_for_source: float | None = None  # seconds; None waits forever, 0 gives up at once
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        _check(bool(str(self.spec).strip()), f"--source is empty; {SOURCE_HELP}")
        _check(self.size is None or (len(self.size) == 2 and 0 < min(self.size) and max(self.size) <= MAX_SIDE),
               f"--size must be WIDTHxHEIGHT with both > 0 and <= {MAX_SIDE}, e.g. 640x480 (got {self.size})")
        _positive("--max-fps", self.max_fps, MAX_FPS)
        _positive("--max-frames", self.max_frames)
        _at_least_zero("--wait-for-source", self.wait_for_source)
        _positive("the reconnect backoff", self.backoff_initial)
        _positive("the reconnect backoff", self.backoff_max)
        _check(self.backoff_initial <= self.backoff_max,
               f"the reconnect backoff must satisfy 0 < initial <= max (got {self.backoff_initial:g}, "
               f"{self.backoff_max:g})")

    @property
    def frame_interval(self) -> float:
        """Seconds between processed frames at ``--max-fps`` (0 without it)."""
        return 1.0 / self.max_fps if self.max_fps else 0.0


@dataclass(frozen=True)
class RecognizerOptions:
    """The model, the detector and how faces are classified (``--model`` ... ``--smoothing``)."""

    model: str | None = None
    card: str | None = None
    detector: str = DEFAULT_DETECTOR
    detector_model: str | None = None
    threads: int | None = None
    margin: float | None = None
    min_confidence: float = 0.0
    tta: str = DEFAULT_TTA
    align: bool = DEFAULT_ALIGN
    smoothing: float = 0.5
    detect_max_side: int = DEFAULT_DETECT_MAX_SIDE
    profile: str | None = None  # a personal profile (fer-edge enrol), applied to the largest face

    def __post_init__(self) -> None:
        if self.model and Path(self.model).is_dir():
            models = sorted(Path(self.model).glob("*.tflite"),
                            key=lambda p: (not p.name.endswith("_int8.tflite"), p))
            hint = f", e.g. --model {models[0]}" if models else ""
            raise ConfigError(f"--model {self.model} is a folder; give a .tflite file{hint}")
        _check(self.detector in DETECTORS, f"--detector {self.detector!r}: choose one of {', '.join(DETECTORS)}")
        _check(self.tta in TTA_MODES, f"--tta {self.tta!r}: choose one of {', '.join(TTA_MODES)}")
        _in_range("--threads", self.threads, 1, MAX_THREADS)
        _at_least_zero("--margin", self.margin, MAX_MARGIN)
        _check(0.0 <= self.min_confidence <= 1.0,
               f"--min-confidence must be between 0 and 1 (got {self.min_confidence:g})")
        _check(0.0 < self.smoothing <= 1.0, f"--smoothing must be > 0 and <= 1 (got {self.smoothing:g})")
        _at_least_zero("--detect-max-side", self.detect_max_side, MAX_SIDE)


@dataclass(frozen=True)
class OutputOptions:
    """The JSONL results and the annotated debug output (``--output`` ... ``--annotate``)."""

    target: str = "-"
    append: bool = False
    rotate_mb: float | None = None
    keep: int | None = None  # rotated files kept; only with rotate_mb (default DEFAULT_KEEP)
    annotate: str | None = None

    def __post_init__(self) -> None:
        _positive("--rotate-mb", self.rotate_mb, MAX_ROTATE_MB)
        _check(self.rotate_mb is None or self.target != "-",
               "--rotate-mb needs --output FILE (stdout cannot be rotated)")
        _needs("--keep", self.keep is not None, "--rotate-mb MB", self.rotate_mb is not None)
        _check(self.keep is None or 1 <= self.keep <= MAX_KEEP,
               f"--keep {self.keep}: keep between 1 and {MAX_KEEP} rotated files")
        if self.annotate:
            annotate_mode(Path(self.annotate))
            folder = Path(self.annotate).parent
            _check(folder.is_dir(), f"cannot write --annotate {self.annotate} (the folder {folder} does not "
                                    "exist; create it first)")

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
    _check(port.isdigit() and 0 <= int(port) <= 65535,
           f"bad --http address {spec!r}; use PORT or HOST:PORT, e.g. 127.0.0.1:8765")
    return host, int(port)


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback ``host`` unless ``allow_remote``: the endpoints have no authentication."""
    _check(allow_remote or is_loopback(host),
           f"--http {host} is reachable from the network and the endpoints have no authentication; bind "
           "127.0.0.1, or add --http-allow-remote to allow it")


@dataclass(frozen=True)
class HttpOptions:
    """The status endpoints and the live view (``--http`` ... ``--live-fps``)."""

    bind: str | None = None
    allow_remote: bool = False
    stale_after: float | None = None  # seconds; None: STALE_AFTER, or 3 frame intervals at --max-fps
    live: bool = False
    live_fps: float | None = None  # None: DEFAULT_LIVE_FPS
    address: tuple[str, int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.bind is not None:
            address = parse_bind(self.bind)
            check_bind(address[0], self.allow_remote)
            object.__setattr__(self, "address", address)
        _positive("--stale-after", self.stale_after)
        _check(not self.live or self.bind is not None,
               "--live needs --http [HOST:]PORT (the page is served there), e.g. --http 127.0.0.1:8765 --live")
        _needs("--live-fps", self.live_fps is not None, "--live", self.live)
        _positive("--live-fps", self.live_fps, MAX_FPS)

    @property
    def stream_fps(self) -> float:
        """The live stream's frame rate cap."""
        return DEFAULT_LIVE_FPS if self.live_fps is None else self.live_fps


@dataclass(frozen=True)
class MqttOptions:
    """The MQTT output with Home Assistant discovery (``--mqtt`` ... ``--device-name``)."""

    url: str | None = None  # mqtt://[user:pass@]host[:port][/prefix] or mqtts://...
    url_origin: str = "--mqtt"  # where the URL came from, named in errors (--mqtt or $FER_EDGE_MQTT)
    ca: str | None = None
    every: float | None = None  # seconds; None: mqtt_policy.DEFAULT_EVERY
    heartbeat: float | None = None  # seconds; None: mqtt_policy.DEFAULT_HEARTBEAT
    device_name: str | None = None  # None: the hostname

    def __post_init__(self) -> None:
        for flag, value in (("--mqtt-ca", self.ca), ("--mqtt-every", self.every),
                            ("--mqtt-heartbeat", self.heartbeat), ("--device-name", self.device_name)):
            _needs(flag, value not in (None, ""), f"--mqtt URL (or ${MQTT_ENV})", bool(self.url))
        _at_least_zero("--mqtt-every", self.every)
        _positive("--mqtt-heartbeat", self.heartbeat)


@dataclass(frozen=True)
class DaemonConfig:
    """Everything ``python -m edge_runtime`` sets, in blocks; valid once constructed.

    ``stale_after`` and ``mqtt_config`` are resolved from more than one block.
    """

    source: SourceOptions
    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    http: HttpOptions = field(default_factory=HttpOptions)
    mqtt: MqttOptions = field(default_factory=MqttOptions)
    stale_after: float = field(init=False, default=STALE_AFTER)
    mqtt_config: MqttConfig | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if isinstance(self.source, str):
            object.__setattr__(self, "source", SourceOptions(self.source))
        interval = self.source.frame_interval
        threshold = self.http.stale_after
        if threshold is None:
            threshold = max(STALE_AFTER, 3 * interval)
        if threshold <= interval:
            raise ConfigError(f"--stale-after {threshold:g} is not longer than one frame at --max-fps "
                              f"{self.source.max_fps:g} ({interval:g} s); give more than {interval:g}")
        object.__setattr__(self, "stale_after", threshold)
        if self.mqtt.url:
            beat = {} if self.mqtt.heartbeat is None else {"heartbeat": self.mqtt.heartbeat}
            every = {} if self.mqtt.every is None else {"every": self.mqtt.every}
            mqtt = MqttConfig.from_url(self.mqtt.url, device=self.mqtt.device_name, ca_file=self.mqtt.ca,
                                       url_origin=self.mqtt.url_origin,
                                       backoff_max=self.source.backoff_max, **every, **beat)
            object.__setattr__(self, "mqtt_config", mqtt)

    def with_labels(self, labels: tuple[str, ...]) -> MqttConfig | None:
        """The MQTT settings with the model's labels (known once the model is loaded)."""
        return None if self.mqtt_config is None else replace(self.mqtt_config, labels=tuple(labels))
