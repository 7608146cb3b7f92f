"""Live view (``--live``): the page at ``/`` and the annotated MJPEG stream at ``/stream.mjpg``.

The daemon hands every processed frame to :meth:`FrameHub.offer`. While nobody watches that is a
counter check and nothing else; while someone does, at most ``max_fps`` frames per second are
copied, and each is drawn and JPEG-encoded once, in the first viewer's thread, for all viewers.
Frames live in memory only. :func:`route` serves both paths from any ``BaseHTTPRequestHandler``.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np
from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_runtime.outputs.annotate import draw_faces
from edge_runtime.outputs.metrics import PREFIX
from edge_runtime.outputs.sink import SinkBase
from edge_runtime.results import Face, FrameResult

log = logging.getLogger(__name__)

BOUNDARY = "fer-edge-frame"
STREAM_PATH = "/stream.mjpg"
PAGE_PATHS = ("/", "/index.html")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fer-edge live</title>
<style>
body{margin:0;font:15px/1.4 system-ui,sans-serif;background:#111;color:#eee;display:flex;flex-wrap:wrap;
gap:16px;padding:16px}
#view{flex:1 1 480px;max-width:960px}#view img{width:100%;background:#222;border-radius:6px;display:block}
#side{flex:0 1 280px}h1{font-size:18px;margin:0 0 8px}#status{color:#aaa;font-size:13px;margin-bottom:12px}
.face{background:#1d1d1d;border-radius:6px;padding:8px 10px;margin-bottom:10px}
.label{font-size:20px;font-weight:600;color:#5f5}.conf{color:#aaa;margin-left:6px}
.row{display:flex;align-items:center;gap:6px;font-size:13px}.row span{width:70px}
.bar{flex:1;height:8px;background:#333;border-radius:4px}.bar i{display:block;height:100%;background:#5f5;
border-radius:4px}
</style></head><body>
<div id="view"><img id="stream" src="/stream.mjpg" alt="annotated camera stream"></div>
<div id="side"><h1>fer-edge live</h1><div id="status">connecting&hellip;</div><div id="faces"></div></div>
<script>
"use strict";
const faces = document.getElementById("faces"), statusLine = document.getElementById("status");
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function show(rec) {
  const list = (rec.faces || []).slice().sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
  statusLine.textContent = "frame " + rec.frame + " \\u00b7 " + list.length + (list.length === 1 ? " face" : " faces")
    + " \\u00b7 " + (rec.time || "").slice(11, 23) + " UTC";
  faces.replaceChildren(...list.map(f => {
    const card = el("div", "face"), top = el("div");
    const best = Math.max(...Object.values(f.scores));
    top.append(el("span", "label", f.label || "uncertain"), el("span", "conf", Math.round(best * 100) + "%"));
    if (f.track_id !== undefined) top.append(el("span", "conf", "#" + f.track_id));
    if (f.profile) top.append(el("span", "conf", "calibrated: " + f.profile));
    card.append(top);
    for (const [name, p] of Object.entries(f.scores)) {
      const row = el("div", "row"), bar = el("div", "bar"), fill = el("i");
      fill.style.width = Math.round(p * 100) + "%";
      bar.append(fill);
      row.append(el("span", "", name), bar);
      card.append(row);
    }
    return card;
  }));
}
async function poll() {
  try {
    const r = await fetch("/latest", {cache: "no-store"});
    if (r.ok) show(await r.json());
    else statusLine.textContent = "waiting for the first frame";
  } catch (e) {
    statusLine.textContent = "daemon unreachable";
  }
  setTimeout(poll, 500);
}
document.getElementById("stream").addEventListener("error", e => {
  setTimeout(() => { e.target.src = "/stream.mjpg?" + Date.now(); }, 2000);
});
poll();
</script></body></html>
"""

CSP = "default-src 'none'; img-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


class FrameHub(SinkBase):
    """The newest annotated frame for the stream's viewers; encodes only while someone watches.

    As an output (``name`` ``live``) it is offered every result; the HTTP output serves it."""

    name = "live"

    def __init__(self, max_fps: float = 5.0, quality: int = 80, max_clients: int = 4,
                 draw: Callable[[np.ndarray, Sequence[Face]], np.ndarray] = draw_faces) -> None:
        self.max_fps = max_fps
        self.quality = int(quality)
        self.max_clients = max_clients
        self.draw = draw
        self.clients = 0
        self.encoded = 0
        self.closed = False
        self._seq = 0
        self._raw: tuple[np.ndarray, list[Face]] | None = None
        self._jpeg: tuple[int, bytes] | None = None
        self._due: float | None = None
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()

    @property
    def watching(self) -> bool:
        """Whether at least one viewer is connected."""
        return self.clients > 0

    def offer(self, image: np.ndarray, faces: Sequence[Face], now: float | None = None) -> bool:
        """Hand over a processed frame; kept (copied) only if watched and ``max_fps`` allows it.

        Frames are taken on a ``1 / max_fps`` schedule, so a camera slightly faster than ``max_fps``
        still yields ``max_fps`` on average, never more.
        """
        if self.clients == 0 or self.closed:
            return False
        now = time.monotonic() if now is None else now
        interval = 1.0 / self.max_fps
        due = self._due
        if due is not None and now < due - 1e-6:
            return False
        self._due = (due if due is not None and now - due < interval else now) + interval
        frame = (np.array(image, copy=True), list(faces))
        with self._cond:
            self._seq += 1
            self._raw = frame
            self._cond.notify_all()
        return True

    @contextmanager
    def watch(self) -> Iterator[bool]:
        """Count a viewer while the block runs; yields ``False`` (and counts nothing) when full."""
        with self._cond:
            admitted = self.clients < self.max_clients and not self.closed
            if admitted:
                self.clients += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._cond:
                    self.clients -= 1
                    if self.clients == 0:
                        self._raw, self._jpeg, self._due = None, None, None

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The first frame newer than sequence number ``after`` as ``(seq, jpeg)``; ``None`` on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed or (self._seq > after and self._raw is not None),
                                       timeout):
                return None
            if self.closed:
                return None
            seq, (image, faces) = self._seq, self._raw
        with self._encode_lock:
            if self._jpeg is not None and self._jpeg[0] >= seq:  # encoded by another viewer meanwhile
                return self._jpeg
            ok, data = cv2.imencode(".jpg", self.draw(image, faces), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise ValueError("cannot encode the live frame as JPEG")
            self._jpeg = (seq, data.tobytes())
            self.encoded += 1
            return self._jpeg

    def handle(self, result: FrameResult) -> None:
        """Offer the result's frame and faces (see :meth:`offer`)."""
        self.offer(result.frame.image, result.faces)

    def close(self, deadline: float) -> None:
        """End every stream (their handlers return within a second)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def collect(self) -> Iterator[Metric]:
        """Viewer count and encoded frames, for /metrics."""
        yield GaugeMetricFamily(f"{PREFIX}_live_clients", "Viewers of the live stream.", value=self.clients)
        yield CounterMetricFamily(f"{PREFIX}_live_frames_encoded", "Frames JPEG-encoded for the live stream.",
                                  value=self.encoded)


def _peer_gone(sock: socket.socket) -> bool:
    """Whether the client closed its end (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def serve_page(handler: BaseHTTPRequestHandler) -> None:
    """Send the live page (self-contained: no external scripts, styles or fonts)."""
    body = PAGE.encode("utf-8")
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    handler.send_header("Content-Security-Policy", CSP)
    handler.send_header("X-Content-Type-Options", "nosniff")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def serve_mjpeg(handler: BaseHTTPRequestHandler, hub: FrameHub, max_frames: int | None = None) -> int:
    """Stream ``hub``'s frames as ``multipart/x-mixed-replace`` until the viewer leaves or the hub closes.

    Returns the number of frames sent. Answers 503 when ``hub.max_clients`` viewers already watch.
    """
    handler.close_connection = True
    with hub.watch() as admitted:
        if not admitted:
            body = b"too many live viewers; try again later\n"
            handler.send_response(503)
            handler.send_header("Content-Type", "text/plain; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Retry-After", "5")
            handler.end_headers()
            handler.wfile.write(body)
            return 0
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Connection", "close")
        handler.end_headers()
        if handler.command == "HEAD":
            return 0
        seq = sent = 0
        while max_frames is None or sent < max_frames:
            got = hub.next_jpeg(seq, timeout=1.0)
            if got is None:
                if hub.closed or _peer_gone(handler.connection):
                    break
                continue
            seq, jpeg = got
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            try:
                handler.wfile.write(head + jpeg + b"\r\n")
                handler.wfile.flush()
            except OSError:
                break
            sent += 1
        return sent


def route(handler: BaseHTTPRequestHandler, hub: FrameHub) -> bool:
    """Serve ``/`` and ``/stream.mjpg``; ``False`` for any other path (the caller handles it)."""
    path = handler.path.split("?", 1)[0]
    if path in PAGE_PATHS:
        serve_page(handler)
    elif path == STREAM_PATH:
        serve_mjpeg(handler, hub)
    else:
        return False
    return True
