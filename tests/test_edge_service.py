"""The daemon as a service, over real processes, real HTTP on loopback and a real MJPEG camera server:
a camera that comes late, dies and comes back; stops that are prompt while a stream hangs; the systemd
unit against the exit codes; and a soak at full speed (memory, descriptors, rotation, SIGHUP)."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge_runtime.service import cli
from tests.edge_stream_support import MjpegCamera, clip_jpegs, free_port, line_count, stop_process, wait_until
from tests.edge_support import ROOT, VIDEO, need

SECRET = "s3cret"
UNIT = ROOT / "deploy" / "fer-edge.service"


def start_daemon(*args: str) -> subprocess.Popen:
    """The daemon as deploy/fer-edge.service runs it: at ``--log-level info``."""
    return subprocess.Popen([sys.executable, "-m", "edge_runtime", "--log-level", "info", *args], cwd=ROOT,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def health(base: str) -> tuple[int, dict]:
    status, body = fetch(base + "/healthz")
    return status, json.loads(body) if body else {}


def done_counts(stderr: str) -> dict[str, int]:
    """The counts of the daemon's final "done:" log line."""
    match = re.search(r"done: (\d+) frames, \d+ faces, (\d+) dropped \(processing behind\), "
                      r"(\d+) skipped \(--max-fps\), (\d+) reconnects", stderr)
    assert match, stderr[-2000:]
    return dict(zip(("frames", "dropped", "skipped", "reconnects"), map(int, match.groups()), strict=True))


@pytest.mark.slow
def test_a_late_camera_that_dies_and_comes_back(tiny_model, tmp_path):
    camera = MjpegCamera(clip_jpegs(), fps=10, user="user", password=SECRET)  # not up yet
    out = tmp_path / "out.jsonl"
    base = f"http://127.0.0.1:{free_port()}"
    proc = start_daemon("--source", camera.url(f"user:{SECRET}@"), "--model", str(tiny_model), "--output", str(out),
                        "--http", base.removeprefix("http://"), "--stale-after", "1.5", "--threads", "1")
    try:
        wait_until(lambda: health(base)[0], 60, "the status server")
        status, details = health(base)
        assert status == 200 and details["status"] == "waiting"
        wait_until(lambda: health(base)[0] == 503, 5, "/healthz to turn 503 while waiting")
        assert health(base)[1]["status"] == "waiting" and proc.poll() is None and line_count(out) == 0

        camera.start()
        wait_until(lambda: line_count(out) >= 10, 30, "frames from the camera")
        status, details = health(base)
        assert status == 200 and details["status"] == "ok" and details["reconnects"] == 0
        latest, metrics = fetch(base + "/latest")[1], fetch(base + "/metrics")[1]

        camera.stop()  # the camera dies...
        wait_until(lambda: health(base)[1].get("status") == "reconnecting", 10, "the daemon to notice")
        wait_until(lambda: health(base)[0] == 503, 5, "/healthz to turn 503 while reconnecting")
        lines_before = line_count(out)
        time.sleep(1.0)
        camera.start()  # ...and comes back on the same port
        back = time.monotonic()
        wait_until(lambda: line_count(out) > lines_before, 15, "frames after the camera came back")
        # down about 3 s: retries 0.5, 1, 2, 4 s apart, so the one after the comeback is at most 4 s later
        assert time.monotonic() - back < 4.0 + 1.5
        wait_until(lambda: line_count(out) >= lines_before + 10, 30, "more frames")
        assert health(base)[0] == 200
        stopped_in, _, stderr = stop_process(proc, signal.SIGTERM, timeout=5)
    finally:
        camera.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and stopped_in < 2.0, (proc.returncode, stopped_in, stderr[-2000:])
    records = [json.loads(line) for line in out.read_text().splitlines()]  # every line complete
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames)), "frame numbers repeat or go back"
    assert [r["reconnects"] for r in records] == sorted(r["reconnects"] for r in records)
    assert records[0]["reconnects"] == 0 and records[-1]["reconnects"] == 1
    counts = done_counts(stderr)
    assert counts["frames"] == len(records) and counts["reconnects"] == 1  # no line lost
    assert len(records) + counts["dropped"] + counts["skipped"] >= frames[-1] + 1  # every gap is counted
    redacted = camera.url("user:***@")
    assert {r["source"] for r in records} == {redacted}
    assert json.loads(latest)["source"] == redacted and f'source="{redacted}"' in metrics
    for text in (out.read_text(), stderr, latest, metrics):
        assert SECRET not in text
    assert "Traceback" not in stderr


@pytest.mark.parametrize("mode", ["not_up", "hang_open", "hang_read"])
def test_stop_is_prompt_while_a_stream_is_awaited_or_hangs(tiny_model, tmp_path, mode):
    camera = MjpegCamera(clip_jpegs(5), mode=mode)
    if mode != "not_up":
        camera.start()
    out = tmp_path / "out.jsonl"
    base = f"http://127.0.0.1:{free_port()}"
    proc = start_daemon("--source", camera.url(), "--model", str(tiny_model), "--output", str(out), "--threads", "1",
                        "--http", base.removeprefix("http://"))
    try:
        if mode == "not_up":  # retrying with backoff
            wait_until(lambda: health(base)[1].get("status") == "waiting", 60, "the daemon to wait")
        elif mode == "hang_open":  # the daemon sent its request and waits for an answer that never comes
            wait_until(lambda: camera.connections, 60, "the daemon to connect")
            status, details = health(base)  # real HTTP while the first open hangs: waiting, not "ok"
            assert status == 200 and details["status"] == "waiting" and details["state"] == "waiting", details
        else:  # one frame came, the next read blocks
            wait_until(lambda: line_count(out) >= 1, 60, "the first frame")
        time.sleep(0.5)
        assert proc.poll() is None
        stopped_in, _, stderr = stop_process(proc, signal.SIGTERM, timeout=5)
    finally:
        camera.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and stopped_in < 2.0, (proc.returncode, stopped_in, stderr[-2000:])
    assert "received SIGTERM" in stderr and "Traceback" not in stderr
    assert len([json.loads(line) for line in out.read_text().splitlines()]) == (mode == "hang_read")


def unit_options() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def test_the_systemd_unit_never_gives_up_and_matches_the_exit_codes():
    unit = unit_options()
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["UMask"] == "0027"
    assert service["RestartPreventExitStatus"].split() == [str(cli.EXIT_BAD_INPUT)]
    assert service["ExecReload"].endswith("kill -HUP $MAINPID")
    assert int(service["TimeoutStopSec"]) >= 5  # the daemon stops within 2 s
    argv = shlex.split(service["ExecStart"].replace("\\\n", " "))
    assert argv[0] == "/opt/fer-edge/.venv/bin/fer-edge" and argv[1] == "run", "the installed console script"
    assert service["WorkingDirectory"] == "/var/lib/fer-edge", "not the source tree: the installed package runs"
    args = cli.build_parser().parse_args(argv[2:])  # every option exists
    assert args.model is None, "the model bundled with the installed package"
    assert args.rotate_mb and args.append and args.output.startswith("/var/lib/fer-edge/")
    assert args.wait_for_source is None  # a late camera is waited for, not a restart loop
    assert args.http.startswith("127.0.0.1:") and not args.http_allow_remote
    assert service["EnvironmentFile"] == "-/etc/fer-edge.env", "optional; where FER_EDGE_MQTT is set"
    assert args.mqtt is None and not args.live, "MQTT only from the environment file, no live view by default"


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                           reason="systemd-analyze not installed (apt-get install -y systemd)")


def unit_in(folder: Path) -> Path:
    """The unit with its ExecStart pointed at an executable in ``folder`` (verify checks that it exists)."""
    (folder / "fer-edge").write_text("#!/bin/sh\n")
    (folder / "fer-edge").chmod(0o755)
    unit = folder / "fer-edge.service"
    unit.write_text(UNIT.read_text().replace("/opt/fer-edge/.venv/bin/fer-edge", str(folder / "fer-edge")))
    return unit


@needs_systemd_analyze
def test_systemd_analyze_verifies_the_unit(tmp_path):
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit_in(tmp_path))], capture_output=True, text=True,
                          timeout=60)
    complaints = [line for line in done.stderr.splitlines() if "fer-edge.service" in line]
    assert done.returncode == 0 and not complaints, done.stderr


@needs_systemd_analyze
def test_the_unit_is_hardened_yet_keeps_the_camera_and_loopback_http(tmp_path):
    done = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit_in(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for fer-edge\.service: ([0-9.]+)", done.stdout)
    assert score, done.stdout[-2000:] + done.stderr
    assert float(score.group(1)) <= 4.0, done.stdout
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(re.sub(r"^(DeviceAllow)=", lambda m: f"{m.group(1)}.{m.start()}=", UNIT.read_text(),
                              flags=re.M))  # one key per DeviceAllow= line
    service = parser["Service"]
    allowed = {v.split()[0] for k, v in service.items() if k.startswith("DeviceAllow.")}
    assert {"char-video4linux", "char-media", "char-dma_heap"} <= allowed, "the Pi camera's devices"
    assert service["PrivateDevices"] == "no" and service["DevicePolicy"] == "closed"
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(service["RestrictAddressFamilies"].split())
    assert "video" in service["SupplementaryGroups"].split()


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def fd_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


@pytest.mark.slow
def test_soak_a_looping_video_at_full_speed_for_60_s(pipeline_model, tmp_path):
    out = tmp_path / "out" / "results.jsonl"
    out.parent.mkdir()
    base = f"http://127.0.0.1:{free_port()}"
    proc = start_daemon("--source", str(need(VIDEO)), "--loop", "--model", str(pipeline_model), "--output", str(out),
                        "--rotate-mb", "0.25", "--keep", "100", "--http", base.removeprefix("http://"),
                        "--threads", "1", "--log-level", "warning")
    moved = out.with_name("results.jsonl.moved")
    samples: list[tuple[float, int, int]] = []
    try:
        wait_until(lambda: line_count(out) > 0, 60, "the first frame")
        started = time.monotonic()
        while time.monotonic() - started < 60:
            time.sleep(2.0)
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert health(base)[0] == 200
            samples.append((time.monotonic() - started, rss_kib(proc.pid), fd_count(proc.pid)))
            if not moved.exists() and time.monotonic() - started > 30:
                out.rename(moved)  # what logrotate does, then SIGHUP
                proc.send_signal(signal.SIGHUP)
        stopped_in, _, stderr = stop_process(proc, signal.SIGTERM, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and stopped_in < 2.0, stderr[-2000:]
    assert "Traceback" not in stderr and "WARNING" not in stderr, stderr[-2000:]
    files = sorted(out.parent.iterdir())
    assert moved in files and out in files and len(files) > 4  # reopened after SIGHUP, rotated several times
    frames = sorted(json.loads(line)["frame"] for f in files for line in f.read_text().splitlines())
    assert frames == list(range(len(frames))) and len(frames) > 3 * 275  # no line lost or repeated, >3 loops
    warm = [s for s in samples if s[0] >= 15]  # after the first loops and rotations
    growth = (max(s[1] for s in warm[-3:]) - warm[0][1]) / warm[0][1]
    assert growth < 0.05, samples
    assert max(s[2] for s in warm) <= warm[0][2] + 1, samples  # open files stable (+1: an HTTP request)
