"""Cameras that refuse the login: real HTTP and RTSP servers on loopback (the RTSP one checks Digest
credentials), probed directly and through the daemon (exit 2, one line, the password never printed, no
retries)."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge_runtime.sources.login_check import rtsp_status
from tests.edge_support import run_cli

REALM, NONCE = "camera", "4f1c2a"


class DigestRtspCamera:
    """Answers every RTSP request 401 with a Digest challenge, unless its Authorization proves the password
    (RFC 2617 without qop, checked here independently of the code under test): then 200."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.requests: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _authorized(self, method: str, headers: dict[str, str]) -> bool:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', headers.get("authorization", "")))
        if fields.get("username") != self.user:
            return False
        ha1 = hashlib.md5(f"{self.user}:{REALM}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{fields.get('uri')}".encode()).hexdigest()
        return fields.get("response") == hashlib.md5(f"{ha1}:{NONCE}:{ha2}".encode()).hexdigest()

    def _serve(self, client: socket.socket) -> None:
        with client:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = client.recv(4096)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ")[0]
                self.requests.append(method)
                headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
                cseq = headers.get("cseq", "0")
                if self._authorized(method, headers):
                    client.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n".encode())
                else:
                    client.sendall(f'RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Digest '
                                   f'realm="{REALM}", nonce="{NONCE}"\r\n\r\n'.encode())

    def close(self) -> None:
        self._stop.set()
        self.server.close()


@pytest.fixture
def http_camera():
    """A real HTTP server on loopback that answers every request 401 with a Basic challenge; yields its port."""

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def camera():
    server = DigestRtspCamera("admin", "right-s3cret")
    yield server
    server.close()


def test_the_rtsp_probe_answers_the_digest_challenge_with_the_urls_credentials(camera):
    base = f"127.0.0.1:{camera.port}/stream1"
    assert rtsp_status(f"rtsp://admin:right-s3cret@{base}", timeout=5) == 200
    assert rtsp_status(f"rtsp://admin:wrong@{base}", timeout=5) == 401
    assert rtsp_status(f"rtsp://{base}", timeout=5) == 401
    assert set(camera.requests) == {"DESCRIBE"}
    assert rtsp_status("rtsp://127.0.0.1:9/nothing-listens", timeout=2) is None


@pytest.mark.parametrize("protocol", ["HTTP", "RTSP"])
def test_a_camera_that_refuses_the_login_is_exit_2_not_retried(protocol, request, tiny_model):
    if protocol == "HTTP":
        url = f"http://admin:wrong-s3cret@127.0.0.1:{request.getfixturevalue('http_camera')}/video.mjpg"
    else:
        rtsp = request.getfixturevalue("camera")
        url = f"rtsp://admin:wrong-s3cret@127.0.0.1:{rtsp.port}/stream1"
    done = run_cli("--source", url, "--model", str(tiny_model), timeout=120)
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert f"refused the login ({protocol} 401 Unauthorized); check the user and password in --source" in errors[0]
    assert "wrong-s3cret" not in done.stderr and "retrying" not in done.stderr
    if protocol == "RTSP":
        assert {"OPTIONS", "DESCRIBE"} & set(rtsp.requests)        # FFmpeg itself asked first
