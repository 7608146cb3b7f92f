"""The live view: frame hub, MJPEG over real loopback HTTP, and the page in a real headless Chromium.

Needs: apt-get install -y chromium (the browser test; it skips with the reason without it) and
../shared/media/video/short_hamilton_clip.mp4, which the real daemon replays for that test. The
browser test saves its screenshot under pytest's tmp dir and copies it to out/live-view/live-view.png.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs.annotate import draw_faces
from edge_runtime.outputs.live_view import BOUNDARY, PAGE, FrameHub
from edge_runtime.outputs.metrics import Metrics
from edge_runtime.outputs.status_http import StatusBoard, StatusServer
from edge_runtime.results import Face
from edge_runtime.service.config import HttpOptions, OutputOptions, RecognizerOptions, SourceOptions
from tests.edge_support import REAL_MODEL, ROOT, VIDEO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FACE = Face(box=(40, 30, 60, 60), label="happy", scores={"happy": 0.9, "sad": 0.1}, detector_score=0.9)


def green_pixels(image: np.ndarray) -> int:
    """Pixels of the annotation colour (pure BGR green, allowing for JPEG and scaling)."""
    b, g, r = image[..., 0].astype(int), image[..., 1].astype(int), image[..., 2].astype(int)
    return int(np.count_nonzero((g > 190) & (r < 60) & (b < 60)))


class LiveServer:
    """The daemon's status server with a live hub (what ``--http --live`` starts), on a free loopback port."""

    def __init__(self, hub: FrameHub) -> None:
        self.hub = hub
        self.board = StatusBoard(Metrics())
        self.status = StatusServer(self.board, "127.0.0.1", 0, live=hub)
        self.port = self.status.address[1]

    @property
    def latest(self) -> dict | None:
        raw = self.board.latest()
        return None if raw is None else json.loads(raw)

    @latest.setter
    def latest(self, record: dict) -> None:
        self.board.set_latest(json.dumps(record))

    def close(self) -> None:
        self.hub.close(time.monotonic() + 1.0)
        self.status.close()


@pytest.fixture
def server() -> Iterator[LiveServer]:
    s = LiveServer(FrameHub(max_fps=5))
    yield s
    s.close()


def read_parts(sock_file, count: int) -> list[bytes]:
    """Read ``count`` JPEG parts of a multipart/x-mixed-replace body."""
    parts = []
    while len(parts) < count:
        line = sock_file.readline()
        assert line, "stream ended early"
        if line.strip() != f"--{BOUNDARY}".encode():
            continue
        headers = {}
        while (h := sock_file.readline().strip()):
            key, _, value = h.decode().partition(":")
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(sock_file.read(int(headers["content-length"])))
    return parts


def open_stream(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    f = sock.makefile("rb")
    status = f.readline()
    headers = []
    while (h := f.readline().strip()):
        headers.append(h.decode())
    return sock, f, status, headers


def test_hub_encodes_only_while_watched_and_at_most_max_fps():
    drawn = []
    hub = FrameHub(max_fps=5, draw=lambda img, faces: (drawn.append(len(faces)), img)[1])
    image = np.full((120, 160, 3), 90, np.uint8)
    assert not hub.offer(image, [FACE], now=0.0) and hub.next_jpeg(0, timeout=0.05) is None
    with hub.watch() as admitted:
        assert admitted and hub.watching
        assert hub.offer(image, [FACE], now=1.0)
        assert not hub.offer(image, [FACE], now=1.1), "faster than max_fps"
        assert hub.offer(image, [FACE], now=1.2)
        image[:] = 0  # the hub keeps its own copy
        seq, jpeg = hub.next_jpeg(0, timeout=1)
        assert seq == 2 and hub.next_jpeg(0, timeout=1) == (seq, jpeg), "one encode per frame for all viewers"
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (120, 160, 3) and abs(float(decoded.mean()) - 90) < 3
        assert hub.next_jpeg(seq, timeout=0.05) is None
    assert not hub.watching and not hub.offer(image, [FACE], now=5.0)
    with hub.watch():
        taken = sum(hub.offer(image, [], now=10 + i / 30) for i in range(300))  # a 30 fps camera, 10 s
    assert taken in (50, 51), taken
    assert hub.encoded == 1 and drawn == [1]
    assert {s.name: s.value for m in hub.collect() for s in m.samples}["fer_edge_live_frames_encoded_total"] == 1
    with pytest.raises(EdgeRuntimeError, match="--live-fps must be > 0"):
        HttpOptions("0", live=True, live_fps=0)


def test_mjpeg_stream_over_http_at_most_live_fps(server):
    image = np.full((240, 320, 3), 60, np.uint8)
    stop = threading.Event()

    def camera() -> None:  # 50 frames/s, far above --live-fps 5
        while not stop.is_set():
            server.hub.offer(image, [FACE])
            time.sleep(0.02)

    threading.Thread(target=camera, daemon=True).start()
    try:
        sock, f, status, headers = open_stream(server.port)
        assert b" 200 " in status
        assert f"Content-Type: multipart/x-mixed-replace; boundary={BOUNDARY}" in headers
        read_parts(f, 1)
        t0, parts = time.monotonic(), []
        while time.monotonic() - t0 < 2.0:
            parts += read_parts(f, 1)
        # At most 5 frames/s: 10 in 2 s, plus one for where the window falls (a stall only lowers it).
        assert 5 <= len(parts) <= 11, f"{len(parts)} frames in 2 s at --live-fps 5 from a 50 frames/s camera"
        frame = cv2.imdecode(np.frombuffer(parts[-1], np.uint8), cv2.IMREAD_COLOR)
        assert frame.shape == (240, 320, 3) and green_pixels(frame) > 100, "the face box is drawn"
        assert server.hub.clients == 1
        f.close()
        sock.close()
        deadline = time.monotonic() + 3
        while server.hub.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.hub.clients == 0, "a viewer that left is no longer counted"
        encoded = server.hub.encoded
        time.sleep(0.5)
        assert server.hub.encoded == encoded, "nothing is encoded without viewers"
    finally:
        stop.set()


def test_extra_viewers_get_503_status_stays_reachable_and_idle_leavers_are_noticed(server):
    server.hub.max_clients = 2
    server.latest = {"frame": 1, "faces": []}
    viewers = [open_stream(server.port) for _ in range(2)]
    assert all(b" 200 " in status for _, _, status, _ in viewers)
    deadline = time.monotonic() + 3
    while server.hub.clients < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    sock, f, status, _ = open_stream(server.port)
    assert b" 503 " in status
    f.close()
    sock.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/latest", timeout=5) as answer:
        assert json.loads(answer.read()) == {"frame": 1, "faces": []}
    for sock, f, _, _ in viewers:  # no frame is flowing: the handler notices on its next 1 s wake-up
        f.close()
        sock.close()
    deadline = time.monotonic() + 3
    while server.hub.clients and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.hub.clients == 0


def test_a_label_near_the_right_edge_stays_inside_the_frame():
    image = np.zeros((120, 200, 3), np.uint8)
    scores = {"surprise": 0.93, "happy": 0.07}
    at_left = draw_faces(image, [Face((10, 60, 28, 28), "surprise", scores, 0.9, track_id=12)])
    at_right = draw_faces(image, [Face((170, 60, 28, 28), "surprise", scores, 0.9, track_id=12)])
    label_rows = slice(0, 59)  # above the box
    whole = green_pixels(at_left[label_rows])
    assert whole > 500 and green_pixels(at_right[label_rows]) == whole, "the label is drawn whole"
    assert green_pixels(at_right[label_rows, -2:]) > 0, "moved left only as far as needed"
    assert green_pixels(at_right[60:]) == green_pixels(at_left[60:]), "the box itself stays where the face is"


def test_the_status_server_serves_the_live_view_only_with_a_hub():
    plain = StatusServer(StatusBoard(Metrics()), "127.0.0.1", 0)
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{plain.address[1]}/", timeout=5)
        assert info.value.code == 404 and "/stream.mjpg" not in info.value.read().decode()
    finally:
        plain.close()
    live = LiveServer(FrameHub())
    try:
        base = f"http://127.0.0.1:{live.port}"
        with urllib.request.urlopen(base + "/", timeout=5) as answer:
            assert answer.headers["Content-Type"].startswith("text/html") and answer.read().decode() == PAGE
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/nope", timeout=5)
        assert info.value.code == 404 and "try /, /stream.mjpg, /healthz" in info.value.read().decode()
    finally:
        live.close()


def test_page_is_self_contained():
    assert "/stream.mjpg" in PAGE and "/latest" in PAGE
    for external in ("http://", "https://", "src=\"//", "@import", "<link"):
        assert external not in PAGE


def chromium(args: list[str], url: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
           "--no-first-run", "--window-size=1000,420", "--virtual-time-budget=3000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_live_page_in_headless_chromium_on_a_daemon_replaying_the_video(tmp_path):
    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} not found (set FER_SHARED to the shared assets folder)")
    from edge_runtime import Daemon, DaemonConfig

    results = tmp_path / "results.jsonl"
    daemon = Daemon(DaemonConfig(SourceOptions(str(VIDEO), max_fps=10, loop=True),
                                 RecognizerOptions(model=str(REAL_MODEL), detector="blazeface", threads=1),
                                 OutputOptions(str(results)), HttpOptions("127.0.0.1:0", live=True)))
    daemon.prepare()
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    url = f"http://127.0.0.1:{daemon.sink('http').address[1]}/"
    try:
        dom = chromium(["--dump-dom"], url).stdout
        shot, control = tmp_path / "live-view.png", tmp_path / "control.png"
        chromium([f"--screenshot={shot}"], url)
        with urllib.request.urlopen(url + "metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        daemon.sink("live").draw = lambda image, faces: draw_faces(image, [])  # control: the same video, no face drawn
        chromium([f"--screenshot={control}"], url)
    finally:
        daemon.stop()
        runner.join(10)
    assert not runner.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    encoded = [line for line in metrics.splitlines() if line.startswith("fer_edge_live_frames_encoded_total ")]
    assert encoded and float(encoded[0].split()[1]) > 0, "frames were encoded for the browser"
    written = [json.loads(line) for line in results.read_text().splitlines()]
    recognised = {f["label"] for r in written for f in r["faces"]}
    side = dom[dom.index('<div id="faces">'):]
    shown = {label for label in ("happy", "neutral", "sad", "surprise") if f'class="label">{label}<' in side}
    assert shown and shown <= recognised, f"labels on the page {shown}, in the daemon's output {recognised}"
    assert 'class="bar"' in side
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[:2] == (420, 1000)
    assert float(picture.std()) > 10, "the screenshot is not a blank page"
    artifacts = ROOT / "out" / "live-view"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "live-view.png")
    boxes, plain = green_pixels(picture), green_pixels(cv2.imread(str(control)))
    assert boxes > 200 and plain < boxes / 20, f"box pixels: {boxes} with faces, {plain} without"
