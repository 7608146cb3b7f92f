"""MQTT output (``--mqtt``): each result as JSON, availability with a last will, Home Assistant discovery.

The camera loop only calls :meth:`MqttPublisher.publish`, which never waits: records that
:class:`~edge_runtime.outputs.mqtt_policy.PublishPolicy` lets through (a change, or the heartbeat) go into a
bounded queue (the oldest is dropped and counted when it is full) and a background thread sends
them. paho-mqtt's own network thread connects, waits for a broker that is down, and reconnects
with exponential backoff. A refused login stops the publisher with :attr:`MqttPublisher.error` set
(not logged: the daemon reports it, once, from :meth:`MqttPublisher.wait_until_connected` or ``error``).
Needs the ``mqtt`` extra (paho-mqtt 2.x).
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs.ha_discovery import DISCOVERY_PREFIX, default_device_name, discovery_configs, sanitize_name
from edge_runtime.outputs.metrics import PREFIX
from edge_runtime.outputs.mqtt_policy import DEFAULT_EVERY, DEFAULT_HEARTBEAT, PublishPolicy, largest_face
from edge_runtime.outputs.sink import SinkBase
from edge_runtime.redact import redact
from edge_runtime.results import FrameResult

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "fer-edge"
#: Written so that redacting credentials from an error line leaves it intact.
URL_HELP = "use mqtt://HOST[:PORT][/PREFIX] (mqtts:// for TLS), with USER:PASSWORD@ before HOST for a login"


class MqttError(EdgeRuntimeError):
    """The broker refused us for good (wrong user or password, not authorized)."""


def redact_record(record: dict[str, Any], redact_text: Callable[[str], str] = redact) -> dict[str, Any]:
    """A shallow copy of a result record with ``redact_text`` applied to its string fields."""
    return {k: redact_text(v) if isinstance(v, str) else v for k, v in record.items()}


@dataclass
class MqttConfig:
    """Where and how to publish; build it with :meth:`from_url`."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    prefix: str = DEFAULT_PREFIX
    device: str = field(default_factory=default_device_name)
    every: float = DEFAULT_EVERY
    heartbeat: float = DEFAULT_HEARTBEAT
    labels: tuple[str, ...] = ()
    queue_size: int = 64
    keepalive: int = 30
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    discovery_prefix: str = DISCOVERY_PREFIX
    url_origin: str = "--mqtt"  # where the URL came from, for error messages

    @classmethod
    def from_url(cls, url: str, device: str | None = None, every: float | None = None, ca_file: str | None = None,
                 url_origin: str = "--mqtt", **options: Any) -> MqttConfig:
        """Parse ``mqtt://[user:pass@]host[:port][/prefix]`` (``mqtts://`` for TLS); one clear error if bad.

        The ranges of ``every`` and the other timings are the caller's to check (the daemon's
        configuration does, :mod:`edge_runtime.service.config`)."""
        shown = redact(url)
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise EdgeRuntimeError(f"bad {url_origin} URL {shown!r}; {URL_HELP}") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.query or parts.fragment:
            raise EdgeRuntimeError(f"bad {url_origin} URL {shown!r}; {URL_HELP}")
        prefix = parts.path.strip("/") or DEFAULT_PREFIX
        if "#" in url or any(c in prefix for c in "+\0") or "//" in prefix:
            raise EdgeRuntimeError(f"bad {url_origin} topic prefix {prefix!r}: no '#', '+' or empty levels")
        every = DEFAULT_EVERY if every is None else every
        if ca_file and parts.scheme != "mqtts":
            raise EdgeRuntimeError("--mqtt-ca needs an mqtts:// URL")
        tls = parts.scheme == "mqtts"
        return cls(host=parts.hostname, port=port or (8883 if tls else 1883),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   tls=tls, ca_file=ca_file, prefix=prefix,
                   device=sanitize_name(device) if device else default_device_name(), every=every,
                   url_origin=url_origin, **options)

    @property
    def base(self) -> str:
        """``<prefix>/<device>``."""
        return f"{self.prefix}/{self.device}"

    @property
    def state_topic(self) -> str:
        return f"{self.base}/state"

    @property
    def availability_topic(self) -> str:
        return f"{self.base}/availability"

    @property
    def url(self) -> str:
        """The broker URL without credentials (for logs)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def dominant_label(record: dict[str, Any]) -> str | None:
    """The label of the largest face in a record (``None`` without faces)."""
    face = largest_face(record)
    return None if face is None else face.get("label")


class MqttPublisher:
    """Publishes records to a broker from background threads; :meth:`publish` never blocks.

    ``redact_text`` is applied to the record's string fields in the sending thread (default:
    :func:`~edge_runtime.redact.redact`); ``None`` for records that carry no credentials already, as the
    daemon's (its sources redact their names).
    """

    def __init__(self, config: MqttConfig, redact_text: Callable[[str], str] | None = redact) -> None:
        try:
            import paho.mqtt.client as paho
        except ImportError as exc:
            raise EdgeRuntimeError("--mqtt needs paho-mqtt 2.x: pip install 'fer-edge[mqtt]'") from exc
        self.config = config
        self.redact_text = redact_text
        self.error: MqttError | None = None
        self.published = 0
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max(1, config.queue_size))
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self.policy = PublishPolicy(every=config.every, heartbeat=config.heartbeat)
        self._last_failure: str | None = None
        self._lock = threading.Lock()
        self._paho = paho
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fer-edge-{config.device}",
                             protocol=paho.MQTTv311)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            try:
                client.tls_set(ca_certs=config.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise EdgeRuntimeError(f"--mqtt-ca {config.ca_file}: cannot load it ({exc})") from exc
        client.will_set(config.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(config.backoff_initial, config.backoff_max)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self.client = client
        self._sender = threading.Thread(target=self._send_loop, name="fer-edge-mqtt", daemon=True)

    @property
    def connected(self) -> bool:
        """Whether the broker accepted us and the connection is up."""
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background (a broker that is down is retried with backoff) and start sending."""
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        self.client.loop_start()
        self._sender.start()
        log.info("MQTT: publishing to %s topic %s", self.config.url, self.config.state_topic)

    def wait_until_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the broker; ``False`` if it is not up yet (we keep trying).

        Raises :class:`MqttError` when the broker refused the login (a daemon can exit with it).
        """
        deadline = time.monotonic() + timeout
        while not self._connected.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if self.error is not None:
                raise self.error
            if time.monotonic() >= deadline:
                return False
        return True

    def publish(self, record: dict[str, Any], now: float | None = None) -> bool:
        """Queue ``record`` (its scores rounded) if the policy lets it through: a change, or the heartbeat.

        Constant time and non-blocking: when the queue is full the oldest record is dropped.
        Returns whether the record was queued. ``record`` must not be changed afterwards.
        """
        if self.error is not None or self._closing.is_set():
            return False
        record = self.policy.decide(record, time.monotonic() if now is None else now)
        if record is None:
            return False
        while True:
            try:
                self._queue.put_nowait(record)
                return True
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    continue
                with self._lock:
                    self.dropped += 1

    def counters(self) -> dict[str, int]:
        """``published``, ``dropped`` and ``connected`` (0/1), for /metrics."""
        with self._lock:
            return {"published": self.published, "dropped": self.dropped, "connected": int(self.connected)}

    def collect(self) -> Iterator[Metric]:
        """Published and dropped results and the connection, for /metrics."""
        c = self.counters()
        yield CounterMetricFamily(f"{PREFIX}_mqtt_published", "Results published to the MQTT broker.",
                                  value=c["published"])
        yield CounterMetricFamily(f"{PREFIX}_mqtt_dropped", "Results not delivered to MQTT (queue full while "
                                  "the broker was slow or down).", value=c["dropped"])
        yield GaugeMetricFamily(f"{PREFIX}_mqtt_connected", "1 while connected to the MQTT broker.",
                                value=c["connected"])

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued, publish ``offline`` and disconnect, all within about ``timeout`` s."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            return max(0.05, deadline - time.monotonic())

        if self._sender.is_alive():
            self._sender.join(remaining())
        if self.connected:
            info = self.client.publish(self.config.availability_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(remaining())
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        # paho's loop_stop joins its thread with no timeout, and that thread may be inside a
        # connect() to a host that drops packets: wait for it only until the deadline.
        stopper = threading.Thread(target=self.client.loop_stop, name="fer-edge-mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(remaining())

    def _on_connect(self, client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            if reason.value in (0x86, 0x87):  # bad user name or password, not authorized
                self.error = MqttError(
                    f"the MQTT broker {self.config.url} refused the login ({reason}); check the user and "
                    f"password in {self.config.url_origin}")
                log.debug("%s", self.error)
                self._closing.set()
                client.disconnect()
            else:
                log.warning("MQTT broker %s refused the connection (%s); retrying", self.config.url, reason)
            return
        cfg = self.config
        client.publish(cfg.availability_topic, "online", qos=1, retain=True)
        for topic, payload in discovery_configs(cfg.device, cfg.state_topic, cfg.availability_topic,
                                                cfg.labels, cfg.discovery_prefix).items():
            client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1, retain=True)
        self._last_failure = None
        self._connected.set()
        log.info("MQTT: connected to %s", cfg.url)

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing.is_set():
            log.warning("MQTT: lost the broker %s (%s); reconnecting", self.config.url, reason)

    def _on_connect_fail(self, _client, _userdata) -> None:
        exc = sys.exc_info()[1]  # paho calls this while handling the connection's OSError
        reason = str(exc) if exc is not None else "connection failed"
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason += "; check --mqtt-ca"
        if reason != self._last_failure:
            self._last_failure = reason
            log.warning("MQTT: cannot connect to %s (%s); retrying with backoff up to %.0f s",
                        self.config.url, reason, self.config.backoff_max)

    def _send_loop(self) -> None:
        """Send queued records while connected; a record taken just as the link drops waits for the next."""
        pending: dict[str, Any] | None = None
        drops_then = 0
        while True:
            if not self._connected.wait(0.2):
                if self._closing.is_set():
                    return
                continue
            if pending is None:
                try:
                    pending = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if self._closing.is_set():
                        return
                    continue
                drops_then = self.dropped
            elif self.dropped > drops_then:  # the queue overflowed meanwhile: this one is the oldest
                with self._lock:
                    self.dropped += 1
                pending = None
                continue
            if self.redact_text is not None:
                pending = redact_record(pending, self.redact_text)
            payload = json.dumps(pending, separators=(",", ":"), ensure_ascii=False)
            info = self.client.publish(self.config.state_topic, payload, qos=0)
            if info.rc == self._paho.MQTT_ERR_NO_CONN:
                self._closing.wait(0.05)
                continue
            try:
                info.wait_for_publish(5.0)
                sent = info.is_published()
            except (RuntimeError, ValueError):
                sent = False
            pending = None
            with self._lock:
                if sent:
                    self.published += 1
                else:
                    self.dropped += 1


class MqttSink(SinkBase):
    """MQTT as an output: connects at start (waiting up to ``connect_wait`` s for the broker, then going
    on without it), publishes each result through the :class:`MqttPublisher`'s policy and queue, and
    ends the run when the broker refuses the login."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, connect_wait: float = 2.0) -> None:
        self.publisher = MqttPublisher(config, redact_text=None)  # source names carry no credentials
        self.connect_wait = connect_wait

    def start(self) -> None:
        """Connect in the background; a refused login raises :class:`MqttError` here."""
        self.publisher.start()
        if not self.publisher.wait_until_connected(self.connect_wait):
            log.warning("MQTT: the broker %s is not up yet; results are published once it is",
                        self.publisher.config.url)

    def handle(self, result: FrameResult) -> None:
        """Queue the result if the publishing policy lets it through (never blocks)."""
        self.publisher.publish(result.data)

    @property
    def error(self) -> MqttError | None:
        """The broker's refusal of the login, once it answered."""
        return self.publisher.error

    def collect(self) -> Iterator[Metric]:
        """The publisher's counters."""
        return self.publisher.collect()

    def close(self, deadline: float) -> None:
        """Publish ``offline`` and disconnect, within what is left until ``deadline`` (at least 0.3 s)."""
        self.publisher.close(timeout=max(0.3, deadline - time.monotonic()))
