"""A local MJPEG-over-HTTP camera on 127.0.0.1 for the daemon's stream tests: it serves real JPEG frames
(from the shared clip), can require a password, die and come back on the same port, or hang."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2

from tests.edge_support import VIDEO, need

BOUNDARY = b"fer-edge-test-frame"


def clip_jpegs(count: int = 30, size: tuple[int, int] = (320, 180)) -> list[bytes]:
    """The first ``count`` frames of the shared clip, resized and JPEG-encoded."""
    cap = cv2.VideoCapture(str(need(VIDEO)))
    jpegs = []
    for _ in range(count):
        ok, image = cap.read()
        assert ok
        jpegs.append(cv2.imencode(".jpg", cv2.resize(image, size))[1].tobytes())
    cap.release()
    return jpegs


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MjpegCamera:
    """An IP camera: ``multipart/x-mixed-replace`` JPEG frames at ``fps`` to every client.

    ``mode``: ``serve`` (normal), ``hang_open`` (accept, never answer), ``hang_read`` (answer and
    send one frame, then nothing). With ``user``/``password`` a client must send Basic auth.
    :meth:`stop` kills it (listening socket and every connection); :meth:`start` brings it back on
    the same port.
    """

    def __init__(self, jpegs: list[bytes], fps: float = 10.0, port: int | None = None, mode: str = "serve",
                 user: str | None = None, password: str | None = None) -> None:
        self.jpegs, self.fps, self.mode = jpegs, fps, mode
        self.port = port or free_port()
        self.auth = None if user is None else "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.sent = 0
        self._listener: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def connections(self) -> int:
        """Clients connected now."""
        with self._lock:
            return len(self._clients)

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials}127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegCamera:
        self._stop.clear()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            sockets = [self._listener, *self._clients] if self._listener else list(self._clients)
            self._listener, self._clients = None, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            if self.mode == "hang_open":
                self._stop.wait()
                return
            if self.auth and f"authorization: {self.auth}".lower().encode() not in request.lower():
                client.sendall(b'HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\n'
                               b"Content-Length: 0\r\n\r\n")
                return
            client.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary="
                           + BOUNDARY + b"\r\n\r\n")
            index = 0
            while not self._stop.is_set():
                jpeg = self.jpegs[index % len(self.jpegs)]
                client.sendall(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                               % len(jpeg) + jpeg + b"\r\n")
                index += 1
                self.sent += 1
                if self.mode == "hang_read":
                    self._stop.wait()
                    return
                self._stop.wait(1.0 / self.fps)
        except OSError:
            pass
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.close()


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition()`` until true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def stop_process(proc: subprocess.Popen, sig, timeout: float) -> tuple[float, str, str]:
    """Send ``sig`` and wait; returns (seconds until it exited, stdout, stderr)."""
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout + 10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - started, out, err
