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

REALM, NONCE, OPAQUE = "camera", "4f1c2a", "5ccc069c403ebaf9"


class DigestRtspCamera:
    """Answers every RTSP request 401 with a Digest challenge, unless its Authorization proves the password
    (RFC 2617, checked here independently of the code under test): then 200. With ``qop`` the challenge
    asks for ``qop="auth"`` and carries an ``opaque`` the answer must echo."""

    def __init__(self, user: str, password: str, qop: bool = False) -> None:
        self.user, self.password, self.qop = user, password, qop
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
        fields = {k: quoted or bare for k, quoted, bare in
                  re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', headers.get("authorization", ""))}
        if fields.get("username") != self.user:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1, ha2 = md5(f"{self.user}:{REALM}:{self.password}"), md5(f"{method}:{fields.get('uri')}")
        if not self.qop:
            return fields.get("response") == md5(f"{ha1}:{NONCE}:{ha2}")
        if fields.get("qop") != "auth" or fields.get("opaque") != OPAQUE or not fields.get("cnonce"):
            return False
        expected = md5(f"{ha1}:{NONCE}:{fields.get('nc')}:{fields['cnonce']}:auth:{ha2}")
        return fields.get("response") == expected

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
                    extra = f', qop="auth", opaque="{OPAQUE}"' if self.qop else ""
                    client.sendall(f'RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Digest '
                                   f'realm="{REALM}", nonce="{NONCE}"{extra}\r\n\r\n'.encode())

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


@pytest.fixture
def qop_camera():
    server = DigestRtspCamera("admin", "right-s3cret", qop=True)
    yield server
    server.close()


@pytest.mark.parametrize("server", ["camera", "qop_camera"])
def test_the_rtsp_probe_answers_the_digest_challenge_with_the_urls_credentials(server, request):
    camera = request.getfixturevalue(server)
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
