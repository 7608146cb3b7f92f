"""The daemon's status endpoints on the standard library's ThreadingHTTPServer.

``/healthz`` (JSON; 200 while frames flow, 503 when none came for ``stale_after`` seconds: stalled,
reconnecting or waiting for the source), ``/latest`` (the last result line, 404 before the first),
``/metrics`` (Prometheus text), and with a :class:`~edge_runtime.outputs.live_view.FrameHub` (``--live``) the
live page at ``/`` and its stream at ``/stream.mjpg``. Binds loopback unless a host is given, and another host only when
allowed (``--http-allow-remote``). Each connection has a timeout, the number of connections served
at once is bounded (more get a 503 at once), and clients that go away are logged at debug level.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs import live_view
from edge_runtime.outputs.live_view import FrameHub
from edge_runtime.outputs.metrics import CONTENT_TYPE, Metrics
from edge_runtime.outputs.sink import SinkBase
from edge_runtime.results import FrameResult

log = logging.getLogger(__name__)

#: Default seconds without a frame after which /healthz reports 503 (below the stream read timeout).
STALE_AFTER = 10.0
#: Seconds a client may take to send its request (or to read the answer).
CONNECTION_TIMEOUT = 5.0
#: Connections served at once; more are answered 503 ("busy") at once and closed. Requests take
#: microseconds, so this bounds threads held by slow or idle clients (each for CONNECTION_TIMEOUT at most).
MAX_CONNECTIONS = 64
#: Connections the kernel queues before they are accepted (socketserver's default of 5 makes clients
#: beyond it wait for SYN retries, seconds each, instead of an answer).
LISTEN_BACKLOG = 256
_BUSY_BODY = b'{"status": "busy", "error": "too many connections; retry"}'
BUSY_RESPONSE = (b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusBoard:
    """What the endpoints show: the latest result, the metrics and the daemon's state."""

    def __init__(self, metrics: Metrics, stale_after: float = STALE_AFTER) -> None:
        self.metrics = metrics
        self.stale_after = stale_after
        self._latest: bytes | None = None
        self._lock = threading.Lock()

    def set_latest(self, line: str) -> None:
        """Store the last result line (JSON)."""
        with self._lock:
            self._latest = line.encode("utf-8")

    def latest(self) -> bytes | None:
        """The last result line, if any."""
        with self._lock:
            return self._latest

    def health(self) -> tuple[bool, dict]:
        """``(healthy, details)``: healthy unless no frame came for ``stale_after`` seconds.

        ``status`` is ``ok``, or the state that keeps frames away (``waiting`` for the source at
        start, ``reconnecting``), else ``stalled``; ``state`` is the daemon's state.
        """
        now = time.time()
        last = self.metrics.last_frame_time
        age = None if last is None else now - last
        reference = last if last is not None else self.metrics.started
        state = self.metrics.state
        healthy = now - reference <= self.stale_after
        status = state if state in ("waiting", "reconnecting") else "ok" if healthy else "stalled"
        counts = self.metrics.snapshot()
        details = {"status": status, "state": state, "frames": counts["frames"],
                   "reconnects": counts["source_reconnects"],
                   "seconds_since_last_frame": None if age is None else round(age, 3),
                   "stale_after": self.stale_after}
        return healthy, details


def _handler(board: StatusBoard, connection_timeout: float,
             live: FrameHub | None = None) -> type[BaseHTTPRequestHandler]:
    paths = "/, /stream.mjpg, /healthz, /latest or /metrics" if live is not None else \
        "/healthz, /latest or /metrics"
    not_found = json.dumps({"error": f"not found; try {paths}"}).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "fer-edge"
        timeout = connection_timeout
        # a request line that does not parse is answered with a status line (HTTP/0.9 would send a bare body)
        default_request_version = "HTTP/1.0"

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """Malformed requests get a JSON error, like every other answer."""
            self.close_connection = True
            reason = message or self.responses.get(code, ("error",))[0]
            self.log_message("error %d: %s", code, reason)
            self._send(code, json.dumps({"error": f"{code} {reason}"}).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # http.server's naming
            if live is not None and live_view.route(self, live):
                return
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                healthy, details = board.health()
                self._send(200 if healthy else 503, json.dumps(details).encode(), "application/json")
            elif path == "/latest":
                latest = board.latest()
                if latest is None:
                    self._send(404, b'{"error": "no frame processed yet"}', "application/json")
                else:
                    self._send(200, latest, "application/json")
            elif path == "/metrics":
                self._send(200, board.metrics.render().encode(), CONTENT_TYPE)
            else:
                self._send(404, not_found, "application/json")

        do_HEAD = do_GET

        def log_message(self, fmt: str, *args) -> None:
            log.debug("http %s - " + fmt, self.address_string(), *args)

    return Handler


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once; client failures logged at debug."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int = MAX_CONNECTIONS) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("http %s refused: already serving the maximum of connections", client_address[0])
            try:
                request.settimeout(0.5)
                request.sendall(BUSY_RESPONSE)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("http %s went away: %s", client_address[0], exc)
        else:
            log.error("http request from %s failed", client_address[0], exc_info=True)


class StatusServer:
    """Serve a :class:`StatusBoard` from a background thread; ``close()`` stops it.

    ``host`` is used as given: the daemon's configuration checked it (``--http-allow-remote``).
    ``live`` adds the live page and stream.
    """

    def __init__(self, board: StatusBoard, host: str = "127.0.0.1", port: int = 0, *,
                 connection_timeout: float = CONNECTION_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 live: FrameHub | None = None) -> None:
        try:
            self.httpd = BoundedHTTPServer((host, port), _handler(board, connection_timeout, live),
                                           max_connections)
        except OSError as exc:
            raise EdgeRuntimeError(f"cannot serve HTTP on {host}:{port} ({exc}); "
                                   "choose another --http address or port") from exc
        self.address = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="fer-edge-http", daemon=True)
        self._thread.start()
        if not is_loopback(host):
            log.warning("the HTTP status server listens on %s, reachable from the network", host)
        paths = "/ (live view), /stream.mjpg, /healthz, /latest, /metrics" if live is not None else \
            "/healthz, /latest, /metrics"
        log.info("status server on http://%s:%d (%s)", *self.address, paths)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class StatusSink(SinkBase):
    """The HTTP endpoints as an output: the latest line for ``/latest``; the server binds at start."""

    name = "http"

    def __init__(self, metrics: Metrics, address: tuple[str, int], stale_after: float = STALE_AFTER,
                 live: FrameHub | None = None) -> None:
        self.board = StatusBoard(metrics, stale_after=stale_after)
        self.host, self.port = address
        self.live = live
        self.server: StatusServer | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound host and port, once started."""
        return None if self.server is None else self.server.address

    def start(self) -> None:
        """Bind and serve; :class:`EdgeRuntimeError` when the address is taken."""
        self.server = StatusServer(self.board, self.host, self.port, live=self.live)

    def handle(self, result: FrameResult) -> None:
        """Keep the result's line for ``/latest``."""
        self.board.set_latest(result.line)

    def close(self, deadline: float) -> None:
        """Stop serving and release the port."""
        if self.server is not None:
            self.server.close()
