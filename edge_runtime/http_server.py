"""The daemon's status endpoints on the standard library's ThreadingHTTPServer.

``/healthz`` (JSON; 200 while frames flow, 503 when stalled), ``/latest`` (the last result line,
404 before the first), ``/metrics`` (Prometheus text). Binds loopback unless a host is given.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .errors import EdgeRuntimeError
from .metrics import Metrics

log = logging.getLogger(__name__)


def parse_bind(spec: str) -> tuple[str, int]:
    """Parse ``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to 127.0.0.1."""
    host, sep, port = spec.strip().rpartition(":")
    if not sep:
        host, port = "", spec.strip()
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad --http address {spec!r}; use PORT or HOST:PORT, e.g. 127.0.0.1:8765")
    return host, int(port)


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

    def __init__(self, metrics: Metrics, stale_after: float = 30.0) -> None:
        self.metrics = metrics
        self.stale_after = stale_after
        self.state = "starting"
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
        """``(healthy, details)``: healthy unless no frame came for ``stale_after`` seconds."""
        now = time.time()
        last = self.metrics.last_frame_time
        age = None if last is None else now - last
        reference = last if last is not None else self.metrics.started
        healthy = self.state != "failed" and now - reference <= self.stale_after
        details = {"status": "ok" if healthy else "stalled", "state": self.state,
                   "frames": self.metrics.snapshot()["frames"],
                   "seconds_since_last_frame": None if age is None else round(age, 3)}
        return healthy, details


def _handler(board: StatusBoard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fer-edge"

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
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
                self._send(200, board.metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, b'{"error": "not found; try /healthz, /latest or /metrics"}',
                           "application/json")

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, fmt: str, *args) -> None:
            log.debug("http %s - " + fmt, self.address_string(), *args)

    return Handler


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class StatusServer:
    """Serve a :class:`StatusBoard` from a background thread; ``close()`` stops it."""

    def __init__(self, board: StatusBoard, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            log.warning("the HTTP status server listens on %s, reachable from the network", host)
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        try:
            self.httpd = server_class((host, port), _handler(board))
        except OSError as exc:
            raise EdgeRuntimeError(f"cannot serve HTTP on {host}:{port} ({exc}); "
                                   "choose another --http address or port") from exc
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fer-edge-http", daemon=True)
        self._thread.start()
        log.info("status server on http://%s:%d (/healthz, /latest, /metrics)", *self.address)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
