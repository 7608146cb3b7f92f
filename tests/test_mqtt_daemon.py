"""``python -m edge_runtime --mqtt`` end to end: the real daemon, a real Mosquitto on a free loopback port
and a real paho subscriber (tests/mqtt_support.py). State, retained discovery and availability as Home
Assistant sees them; SIGTERM says offline; a refused login is one error line; a broker that is down
neither slows the frame loop nor is given up on.

Needs: apt-get install -y mosquitto; pip install 'paho-mqtt>=2,<3'; ../shared/media/video (the clip).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from edge_runtime.outputs.mqtt import dominant_label
from edge_runtime.outputs.mqtt_policy import rounded
from tests.edge_stream_support import MjpegCamera, clip_jpegs, free_port, line_count, stop_process, wait_until
from tests.edge_support import ROOT, VIDEO, make_clip, need, read_jsonl, run_cli
from tests.mqtt_support import Broker, Subscriber

CAMERA_SECRET, MQTT_SECRET = "cam-s3cret", "mqtt-s3cret"


@pytest.fixture(scope="module", autouse=True)
def paho():
    return pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install 'fer-edge[mqtt]')")


class Daemon:
    """``python -m edge_runtime ARGS`` as a process, its stderr in a file (a pipe could fill up)."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.output, self.log = folder / "results.jsonl", folder / "stderr.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge_runtime", *args, "--output", str(self.output)],
                                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True,
                                         env={**os.environ, **(env or {})})

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def sigterm(self) -> tuple[float, int]:
        """(seconds until it exited, exit code)."""
        took, _, _ = stop_process(self.proc, signal.SIGTERM, timeout=10)
        return took, self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def states(sub: Subscriber, device: str) -> list[dict]:
    return [json.loads(p) for p in sub.on(f"fer-edge/{device}/state")]


def test_state_discovery_and_availability_from_the_daemon_and_offline_on_sigterm(pipeline_model, tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", users={"cam": MQTT_SECRET})
    camera = MjpegCamera(clip_jpegs(), fps=15, user="viewer", password=CAMERA_SECRET).start()
    broker.start()
    sub = Subscriber(broker.port, ["fer-edge/#", "homeassistant/#"], username="cam", password=MQTT_SECRET)
    http = free_port()
    daemon = Daemon(tmp_path / "run", "--source", camera.url(f"viewer:{CAMERA_SECRET}@"), "--model",
                    str(pipeline_model), "--threads", "1", "--device-name", "Hall Cam", "--mqtt-every", "0.5",
                    "--http", f"127.0.0.1:{http}",
                    env={"FER_EDGE_MQTT": f"mqtt://cam:{MQTT_SECRET}@127.0.0.1:{broker.port}"})
    try:
        sub.wait_for(lambda m: sum(t == "fer-edge/hall_cam/state" for t, _, _ in m) >= 6, timeout=60)
        assert metric(http, "fer_edge_mqtt_connected") == 1 and metric(http, "fer_edge_mqtt_published_total") >= 6
        late = Subscriber(broker.port, ["fer-edge/hall_cam/availability", "homeassistant/#"], username="cam",
                          password=MQTT_SECRET)
        labels = json.loads(pipeline_model.with_suffix(".json").read_text())["labels"]
        retained = {t: p for t, p, r in late.wait_for(lambda m: len(m) >= 3 + len(labels)) if r}
        late.close()
        took, code = daemon.sigterm()
        sub.wait_for(lambda m: m[-1][:2] == ("fer-edge/hall_cam/availability", "offline"), timeout=5)
    finally:
        daemon.kill()
        sub.close()
        camera.stop()
        broker.stop()
    assert code == 0 and took < 2.0, (took, daemon.stderr()[-2000:])
    assert retained["fer-edge/hall_cam/availability"] == "online"
    configs = {t: json.loads(p) for t, p in retained.items() if t.startswith("homeassistant/")}
    assert sorted(configs) == sorted(f"homeassistant/sensor/hall_cam/{o}/config" for o in
                                     ["expression", "faces", *(f"score_{label}" for label in labels)])
    assert {c["state_topic"] for c in configs.values()} == {"fer-edge/hall_cam/state"}
    assert configs["homeassistant/sensor/hall_cam/expression/config"]["options"] == [*labels, "uncertain", "no_face"]
    lines = {r["frame"]: r for r in read_jsonl(daemon.output)}
    published = states(sub, "hall_cam")
    assert published and all(s == rounded(lines[s["frame"]]) for s in published), \
        "each state is the JSONL line, its scores rounded to 2 decimals"
    assert published[0]["source"] == f"http://viewer:***@127.0.0.1:{camera.port}/stream.mjpg"
    same = [(a, b) for a, b in zip(published, published[1:], strict=False)
            if (dominant_label(a), len(a["faces"])) == (dominant_label(b), len(b["faces"]))]
    assert same, "a steady expression between some states"
    for a, b in same:  # --mqtt-every 0.5: new scores alone at most every 0.5 s (frames are 67 ms apart)
        gap = (datetime.fromisoformat(b["time"]) - datetime.fromisoformat(a["time"])).total_seconds()
        assert gap > 0.4, (a["frame"], b["frame"], gap)
    everything = json.dumps(sub.messages) + daemon.stderr()
    assert CAMERA_SECRET not in everything and MQTT_SECRET not in everything


def test_a_refused_login_is_one_error_line_at_the_start_or_once_a_late_broker_is_up(tiny_model, tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", users={"cam": MQTT_SECRET})
    clip = make_clip(tmp_path / "clip.avi", frames=30)
    url = f"mqtt://cam:not-{MQTT_SECRET}@127.0.0.1:{broker.port}"
    args = ["--source", str(clip), "--loop", "--model", str(tiny_model), "--threads", "1", "--mqtt", url]
    refused = (f"python -m edge_runtime: error: the MQTT broker mqtt://127.0.0.1:{broker.port} refused the login "
               "(Not authorized); check the user and password in --mqtt")
    late = Daemon(tmp_path / "late", *args)
    try:
        wait_until(lambda: "not up yet" in late.stderr(), timeout=60, what="the daemon going on without the broker")
        wait_until(lambda: line_count(late.output) > 0, timeout=10, what="results while the broker is down")
        broker.start()
        late.proc.wait(timeout=15)  # paho retries 1, 2, 4 s after the first attempt
        started = time.monotonic()
        done = run_cli(*args, "--output", str(tmp_path / "start.jsonl"), timeout=60)
        took = time.monotonic() - started
    finally:
        late.kill()
        broker.stop()
    log = late.stderr()
    assert late.proc.returncode == 1, log[-2000:]  # restartable: the login may work after a restart
    assert [line for line in log.splitlines() if " error: " in line] == [refused], log[-2000:]
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == refused, done.stderr[-2000:]
    assert not (tmp_path / "start.jsonl").exists() and took < 30
    for text in (log, done.stderr):
        assert MQTT_SECRET not in text and "Traceback" not in text


@pytest.mark.slow
def test_a_broker_that_is_down_never_slows_the_frame_loop_and_is_waited_for(tiny_model, tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker")  # its port is free until start()
    common = ["--source", str(need(VIDEO)), "--loop", "--model", str(tiny_model), "--threads", "1"]
    http = free_port()
    plain = Daemon(tmp_path / "plain", *common)
    every_frame = ["--mqtt-every", "0", "--mqtt-heartbeat", "0.001"]  # a message per frame, to fill the queue
    down = Daemon(tmp_path / "down", *common, "--mqtt", broker.url, *every_frame, "--device-name", "down",
                  "--http", f"127.0.0.1:{http}")
    sub = None
    try:
        wait_until(lambda: min(line_count(plain.output), line_count(down.output)) >= 20, timeout=90,
                   what="both daemons running")
        before, t0 = (line_count(plain.output), line_count(down.output)), time.monotonic()
        time.sleep(2.5)  # both measured over the same window, sharing the same (busy) cores
        after, window = (line_count(plain.output), line_count(down.output)), time.monotonic() - t0
        rates = [(b - a) / window for a, b in zip(before, after, strict=True)]
        print(f"frames/s over {window:.1f} s: without --mqtt {rates[0]:.1f}, broker down {rates[1]:.1f}")
        assert metric(http, "fer_edge_mqtt_connected") == 0 and metric(http, "fer_edge_mqtt_published_total") == 0
        assert metric(http, "fer_edge_mqtt_dropped_total") > 0, "the queue of 64 overflowed, oldest dropped"
        plain.sigterm()
        broker.start()
        sub = Subscriber(broker.port, ["fer-edge/down/#"])
        sub.wait_for(lambda m: ("fer-edge/down/availability", "online") in [x[:2] for x in m]
                     and any(t == "fer-edge/down/state" for t, _, _ in m), timeout=40)  # retried at 1, 3, 7, 15, 31 s
        assert metric(http, "fer_edge_mqtt_connected") == 1
        took, code = down.sigterm()
        sub.wait_for(lambda m: m[-1][:2] == ("fer-edge/down/availability", "offline"), timeout=5)
    finally:
        for daemon in (plain, down):
            daemon.kill()
        if sub is not None:
            sub.close()
        broker.stop()
    assert code == 0 and took < 2.0, (took, down.stderr()[-2000:])
    assert rates[1] > 0.5 * rates[0], f"frames/s: {rates[0]:.1f} without --mqtt, {rates[1]:.1f} with the broker down"


def test_sigterm_is_prompt_while_connecting_to_a_broker_that_drops_packets(tiny_model, tmp_path):
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(3):  # a full accept queue: the kernel drops further SYNs, so connect() hangs for 5 s
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(full.getsockname())
        fillers.append(filler)
    daemon = Daemon(tmp_path, "--source", str(need(VIDEO)), "--loop", "--model", str(tiny_model), "--threads", "1",
                    "--mqtt", f"mqtt://127.0.0.1:{full.getsockname()[1]}", "--device-name", "dropped")
    try:
        wait_until(lambda: "not up yet" in daemon.stderr() and line_count(daemon.output) > 0, timeout=60,
                   what="the daemon running while the connection hangs")
        took, code = daemon.sigterm()
    finally:
        daemon.kill()
        for sock in (*fillers, full):
            sock.close()
    # The daemon's stop budget is 2 s; 0.5 s more covers signal delivery and interpreter exit
    # on a busy 2-core machine.
    assert code == 0 and took < 2.5, (took, daemon.stderr()[-2000:])
    assert "cannot connect" not in daemon.stderr(), "stopped while the first connect() still hung"


@pytest.mark.slow
def test_default_mqtt_publishes_changes_and_a_heartbeat_not_every_frame(pipeline_model, tmp_path):
    """The looping clip in real time at --max-fps 10 with the default MQTT options: a state goes out when the
    expression or the face count changes, new scores alone at most every 5 s; far fewer than the frames."""
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker")
    broker.start()
    sub = Subscriber(broker.port, ["fer-edge/rate/state"])
    daemon = Daemon(tmp_path / "run", "--source", str(need(VIDEO)), "--loop", "--realtime", "--max-fps", "10",
                    "--model", str(pipeline_model), "--threads", "1", "--device-name", "rate",
                    "--mqtt", f"mqtt://127.0.0.1:{broker.port}")
    try:
        wait_until(lambda: line_count(daemon.output) >= 150, 90, "15 s of frames")
        took, code = daemon.sigterm()
        time.sleep(0.5)
    finally:
        daemon.kill()
        sub.close()
        broker.stop()
    assert code == 0, daemon.stderr()[-2000:]
    frames = line_count(daemon.output)
    published = states(sub, "rate")
    assert published and len(published) < 0.6 * frames, (len(published), frames)
    for a, b in zip(published, published[1:], strict=False):
        gap = (datetime.fromisoformat(b["time"]) - datetime.fromisoformat(a["time"])).total_seconds()
        changed = (dominant_label(a), len(a["faces"])) != (dominant_label(b), len(b["faces"]))
        assert changed or gap >= 4.9, (a["frame"], b["frame"], gap)  # the scores alone: at most every 5 s
        assert all(round(v, 2) == v for f in b["faces"] for v in f["scores"].values())
