"""The status endpoints over real HTTP on loopback, and the Prometheus metrics text; the server's limits
(connection timeout, bounded connections, quiet client disconnects, loopback unless allowed)."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_runtime import Daemon, DaemonConfig, FaceRecognizer
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs.metrics import Metrics
from edge_runtime.outputs.status_http import STALE_AFTER, StatusBoard, StatusServer, is_loopback
from edge_runtime.service.config import HttpOptions, OutputOptions, SourceOptions, check_bind, parse_bind
from edge_runtime.sources.capture import STREAM_TIMEOUT, VideoSource
from tests.edge_support import make_clip


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's own parser:
    ``{(name, sorted labels): value}``."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text."""
    found = samples(text)
    key = (name, tuple(sorted(labels.items())))
    assert key in found, f"{key} not in metrics"
    return found[key]


def test_parse_bind_defaults_to_loopback():
    assert parse_bind("8765") == ("127.0.0.1", 8765)
    assert parse_bind(":8765") == ("127.0.0.1", 8765)
    assert parse_bind("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    with pytest.raises(EdgeRuntimeError, match="--http"):
        parse_bind("localhost:http")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_binding_beyond_loopback_needs_allow_remote():
    for host in ("0.0.0.0", "::", "192.0.2.7", "camera.local"):
        with pytest.raises(EdgeRuntimeError, match="--http-allow-remote"):
            check_bind(host, allow_remote=False)
        check_bind(host, allow_remote=True)
    with pytest.raises(EdgeRuntimeError, match="--http-allow-remote"):  # refused before binding anything
        HttpOptions("0.0.0.0:0")
    assert HttpOptions("0.0.0.0:0", allow_remote=True).address == ("0.0.0.0", 0)
    check_bind("localhost", allow_remote=False)


def test_histogram_and_counters_in_prometheus_text():
    metrics = Metrics(info={"model": "m.tflite", "detector": "haar"})
    metrics.frame_done(2, {"detect": 3.0, "total": 30.0})
    metrics.frame_done(0, {"detect": 700.0, "total": 800.0})
    metrics.inc("dropped_frames", 5)
    text = metrics.render()
    assert metric(text, "fer_edge_frames_total") == 2 and metric(text, "fer_edge_faces_total") == 2
    assert metric(text, "fer_edge_dropped_frames_total") == 5
    bucket = "fer_edge_stage_latency_seconds_bucket"
    assert metric(text, bucket, stage="detect", le="0.005") == 1
    assert metric(text, bucket, stage="detect", le="0.5") == 1
    assert metric(text, bucket, stage="detect", le="1.0") == 2
    assert metric(text, bucket, stage="detect", le="+Inf") == 2
    assert metric(text, "fer_edge_stage_latency_seconds_count", stage="total") == 2
    assert metric(text, "fer_edge_stage_latency_seconds_sum", stage="total") == pytest.approx(0.83)
    assert metric(text, "fer_edge_info", detector="haar", model="m.tflite") == 1
    assert "# TYPE fer_edge_stage_latency_seconds histogram" in text


def test_endpoints_while_the_daemon_runs(tiny_model, tmp_path):
    clip = make_clip(tmp_path / "clip.avi", frames=300, size=(160, 90))  # 10 s as a live camera
    source = VideoSource(str(clip), realtime=True)
    config = DaemonConfig(SourceOptions(source.name), output=OutputOptions(str(tmp_path / "out.jsonl")),
                          http=HttpOptions("0"))
    daemon = Daemon(config, recognizer=FaceRecognizer(tiny_model, num_threads=1), source=source)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while (daemon.sink("http") is None or daemon.sink("http").address is None) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        host, port = daemon.sink("http").address
        assert host == "127.0.0.1"  # loopback unless told otherwise
        base = f"http://{host}:{port}"
        while (daemon.metrics.snapshot()["frames"] < 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        status, kind, body = get(base + "/healthz")
        assert status == 200 and kind == "application/json"
        health = json.loads(body)
        assert health["status"] == "ok" and health["state"] == "running" and health["frames"] >= 3
        status, kind, body = get(base + "/latest")
        latest = json.loads(body)
        assert status == 200 and latest["source"] == str(clip) and latest["frame"] >= 2
        assert "faces" in latest and "latency_ms" in latest
        status, kind, text = get(base + "/metrics")
        assert status == 200 and kind.startswith("text/plain; version=0.0.4")
        assert metric(text, "fer_edge_frames_total") >= 3
        assert metric(text, "fer_edge_stage_latency_seconds_count", stage="total") >= 3
        assert "fer_edge_dropped_frames_total" in text
        assert get(base + "/nope")[0] == 404
    finally:
        daemon.stop()
        thread.join(30)
    with pytest.raises(OSError):  # the port is released
        urllib.request.urlopen(base + "/healthz", timeout=2)


def test_latest_before_any_frame_and_stalled_health():
    metrics = Metrics()
    board = StatusBoard(metrics, stale_after=0.2)
    server = StatusServer(board, "127.0.0.1", 0)
    try:
        base = "http://{}:{}".format(*server.address)
        assert get(base + "/latest")[0] == 404
        assert get(base + "/healthz")[0] == 200  # starting up
        time.sleep(0.3)
        status, _, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["status"] == "stalled"
        metrics.frame_done(0, {"total": 1.0})
        assert get(base + "/healthz")[0] == 200
    finally:
        server.close()


def test_a_port_in_use_is_a_clear_error_before_anything_is_written(tiny_model, tmp_path):
    board = StatusBoard(Metrics())
    server = StatusServer(board, "127.0.0.1", 0)
    out = tmp_path / "out.jsonl"
    out.write_text("earlier results\n")
    source = VideoSource(str(make_clip(tmp_path / "clip.avi", frames=3)))
    config = DaemonConfig(SourceOptions(source.name), output=OutputOptions(str(out)),
                          http=HttpOptions(f"127.0.0.1:{server.address[1]}"))
    daemon = Daemon(config, recognizer=FaceRecognizer(tiny_model, num_threads=1), source=source)
    try:
        with pytest.raises(EdgeRuntimeError, match="choose another --http"):
            daemon.prepare()
    finally:
        server.close()
    assert out.read_text() == "earlier results\n" and source._cap is None  # untouched, released


def test_the_default_stale_threshold_is_below_the_stream_timeout():
    assert STALE_AFTER < STREAM_TIMEOUT
    assert DaemonConfig(SourceOptions("0")).stale_after == STALE_AFTER
    slow = SourceOptions("0", max_fps=0.1)
    assert DaemonConfig(slow).stale_after == pytest.approx(30.0)  # 3 frame intervals
    assert DaemonConfig(slow, http=HttpOptions(stale_after=12.0)).stale_after == 12.0
    with pytest.raises(EdgeRuntimeError, match="--stale-after 5 is not longer than one frame"):
        DaemonConfig(slow, http=HttpOptions(stale_after=5.0))


def test_health_says_waiting_or_reconnecting_and_turns_503_after_stale_after():
    metrics = Metrics()
    board = StatusBoard(metrics, stale_after=0.3)
    metrics.set_state("waiting")
    healthy, details = board.health()
    assert healthy and details["status"] == "waiting" and details["stale_after"] == 0.3
    time.sleep(0.4)
    healthy, details = board.health()
    assert not healthy and details["status"] == "waiting"
    metrics.set_state("running")
    metrics.frame_done(1, {"total": 1.0})
    healthy, details = board.health()
    assert healthy and details["status"] == "ok"
    metrics.set_state("reconnecting")
    assert board.health()[0] and board.health()[1]["status"] == "reconnecting"
    time.sleep(0.4)
    assert not board.health()[0]


@pytest.fixture
def server():
    started = []

    def start(**options) -> tuple[StatusServer, str]:
        srv = StatusServer(StatusBoard(Metrics()), "127.0.0.1", 0, **options)
        started.append(srv)
        return srv, "http://{}:{}".format(*srv.address)

    yield start
    for srv in started:
        srv.close()


def connect(srv: StatusServer) -> socket.socket:
    sock = socket.create_connection(srv.address, timeout=5)
    return sock


def test_clients_that_go_away_are_logged_at_debug_without_tracebacks(server, capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="edge_runtime.outputs.status_http")
    srv, base = server()
    for i in range(20):
        sock = connect(srv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"GET /metrics HTTP/1.0\r\n\r\n")
        sock.close()
    assert get(base + "/metrics")[0] == 200  # still serving
    time.sleep(0.3)
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("went away" in r.getMessage() for r in caplog.records)


def test_an_idle_connection_is_closed_after_the_timeout(server):
    srv, _ = server(connection_timeout=0.3)
    sock = connect(srv)
    started = time.monotonic()
    assert sock.recv(100) == b""  # the server hung up: no thread held forever
    assert time.monotonic() - started < 2
    sock.close()


def test_connections_beyond_the_bound_get_503_at_once(server):
    srv, base = server(connection_timeout=1.0, max_connections=2)
    idle = [connect(srv), connect(srv)]
    time.sleep(0.2)  # both accepted, each holding a handler thread
    started = time.monotonic()
    status, _, body = get(base + "/healthz")
    assert status == 503 and "too many connections" in body and time.monotonic() - started < 1
    time.sleep(1.2)  # the idle ones time out and free their slots
    assert get(base + "/healthz")[0] == 200
    for sock in idle:
        sock.close()


def test_fifty_concurrent_clients_are_each_answered_within_three_seconds(server):
    """More clients than the listen backlog of socketserver's default (5): none waits on SYN retries."""
    srv, base = server()
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def client() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
                    code = response.status
            except urllib.error.HTTPError as error:
                code = error.code
            with lock:
                answers.append((code, time.monotonic() - started))

    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(answers) > 100
    assert {code for code, _ in answers} <= {200, 503}
    assert max(seconds for _, seconds in answers) < 3.0
