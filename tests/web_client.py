"""MediaPipe Tasks for Web (``@mediapipe/tasks-vision`` from npm) on a mobile model, in headless Chromium.

:func:`classify_in_browser` serves tests/web/classify.html, the npm package, the model and the faces
from a local HTTP server, opens the page in headless Chromium and waits for the page to POST back
MediaPipe's category names by index and each face's top-1 index. Needs ``npm ci`` in tests/web
(``make setup-web``) and a Chromium (``apt-get install chromium``; ``FER_CHROMIUM`` for another path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

WEB_DIR = Path(__file__).with_name("web")
PACKAGE = WEB_DIR / "node_modules" / "@mediapipe" / "tasks-vision"


def chromium() -> str | None:
    """The Chromium to run: ``$FER_CHROMIUM``, else the first of the usual names on PATH."""
    if os.environ.get("FER_CHROMIUM"):
        return os.environ["FER_CHROMIUM"]
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


class _Handler(SimpleHTTPRequestHandler):
    """Serves the page folder; ``POST /result`` hands the page's JSON to the waiting test."""

    result: dict
    done: threading.Event

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).result.update(json.loads(body))
        self.send_response(204)
        self.end_headers()
        type(self).done.set()

    def log_message(self, *args) -> None:
        pass


def classify_in_browser(model: Path, faces: np.ndarray, timeout: float = 600.0) -> dict:
    """MediaPipe's top-1 (and its names by index) for ``faces`` (``N x H x W`` uint8 grey) in Chromium."""
    browser = chromium()
    if browser is None or not PACKAGE.is_dir():
        raise FileNotFoundError("needs Chromium and tests/web/node_modules (make setup-web)")
    with tempfile.TemporaryDirectory(prefix="fer-web-") as tmp:
        root = Path(tmp)
        shutil.copy(WEB_DIR / "classify.html", root / "classify.html")
        shutil.copytree(PACKAGE, root / "mediapipe")
        shutil.copy(model, root / "model.tflite")
        (root / "faces.bin").write_bytes(np.ascontiguousarray(faces, dtype=np.uint8).tobytes())
        handler = type("Handler", (_Handler,), {"result": {}, "done": threading.Event()})
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        n, h, w = faces.shape
        url = f"http://127.0.0.1:{server.server_port}/classify.html?n={n}&h={h}&w={w}"
        process = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                                    "--no-first-run", f"--user-data-dir={root / 'profile'}", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not handler.done.wait(timeout):
                raise TimeoutError(f"the page sent no result within {timeout:.0f} s")
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            server.shutdown()
        if "error" in handler.result:
            raise RuntimeError(f"MediaPipe in Chromium failed: {handler.result['error']}")
        return dict(handler.result)
