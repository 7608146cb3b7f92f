"""The daemon loop in process: the latest frame wins, a lost camera is reopened, --loop, the Pi camera
through a fake Picamera2, frames kept off disk, flat memory."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
import tracemalloc
import types

import cv2
import numpy as np
import pytest

from edge_runtime import Daemon, DaemonConfig, FaceRecognizer
from edge_runtime.service.config import OutputOptions, SourceOptions
from edge_runtime.sources.capture import VideoSource
from tests.edge_support import (
    PHOTOS,
    VIDEO,
    FakePicamera2,
    make_clip,
    need,
    open_fds,
    read_jsonl,
    run_cli,
)

# --- in-process: latest frame wins, reconnect, Pi camera, memory ---------------------------------

@pytest.fixture(scope="module")
def recognizer(tiny_model) -> FaceRecognizer:
    return FaceRecognizer(tiny_model, num_threads=1)


def run_daemon(recognizer, source, tmp_path, **options) -> tuple[Daemon, list[dict]]:
    out = tmp_path / "out.jsonl"
    config = DaemonConfig(SourceOptions(source.name, **options), output=OutputOptions(str(out)))
    daemon = Daemon(config, recognizer=recognizer, source=source)
    assert daemon.run() == 0
    return daemon, read_jsonl(out)


def test_max_fps_skips_stale_frames_instead_of_queuing(recognizer, tmp_path):
    clip = make_clip(tmp_path / "clip.avi", frames=90, size=(320, 180))  # 3 s at 30 fps
    source = VideoSource(str(clip), realtime=True)
    started = time.monotonic()
    daemon, records = run_daemon(recognizer, source, tmp_path, max_fps=5.0, max_frames=8)
    elapsed = time.monotonic() - started
    frames = [r["frame"] for r in records]
    assert len(frames) == 8 and frames == sorted(frames)
    assert frames[-1] - frames[0] >= 20, frames  # about 6 camera frames per processed one
    counts = daemon.metrics.snapshot()
    assert counts["skipped_frames"] >= 15, counts  # passed over on purpose to keep to --max-fps
    assert counts["dropped_frames"] <= 2, counts   # processing (a tiny model) never fell behind
    # the frame processed is the newest one: its index keeps up with the camera clock
    assert frames[-1] >= 30 * elapsed * 0.6 - 10, (frames, elapsed)
    assert np.median([r["latency_ms"]["wait"] for r in records]) < 200


def test_a_camera_that_disappears_is_reopened_with_backoff_without_leaking(recognizer, tmp_path):
    clip = make_clip(tmp_path / "cam.avi", frames=6, size=(64, 48))
    # a "camera": a live source that ends (like an unplugged device) and must be reopened
    source = VideoSource(str(clip), live=True, reconnect=True)
    config = DaemonConfig(SourceOptions(source.name, backoff_initial=0.02, backoff_max=0.1),
                          output=OutputOptions(str(tmp_path / "out.jsonl")))
    daemon = Daemon(config, recognizer=recognizer, source=source)
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=daemon.run()))
    thread.start()
    try:
        def reconnects() -> int:
            return daemon.metrics.snapshot()["source_reconnects"] if daemon.metrics else 0

        def wait_for(n: int) -> None:
            deadline = time.monotonic() + 60
            while reconnects() < n and time.monotonic() < deadline:
                time.sleep(0.01)
            assert reconnects() >= n

        wait_for(3)
        fds = open_fds()
        wait_for(23)
        assert open_fds() <= fds + 1  # 20 more reopen cycles, no leaked descriptors
        hidden = clip.with_suffix(".gone")
        clip.rename(hidden)  # the device vanishes: reopening fails, with growing delays
        time.sleep(0.5)
        before = reconnects()
        time.sleep(0.3)
        assert reconnects() == before
        hidden.rename(clip)  # and comes back
        wait_for(before + 2)
    finally:
        daemon.stop()
        thread.join(30)
    assert result == {"code": 0} and source._cap is None
    assert daemon.metrics.state == "stopping"
    records = read_jsonl(tmp_path / "out.jsonl")
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames))  # increasing over the daemon's life, never reused
    reconnects = [r["reconnects"] for r in records]
    assert reconnects == sorted(reconnects) and reconnects[-1] >= 20


def test_loop_replays_a_video_with_frame_numbers_that_keep_counting(tiny_model, tmp_path):
    clip = make_clip(tmp_path / "clip.avi", frames=12, size=(320, 180))
    done = run_cli("--source", str(clip), "--loop", "--max-frames", "30", "--model", str(tiny_model))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(30))
    times = [r["video_time_ms"] for r in records]
    assert times[12] == times[24] == times[0] == 0 and times[11] > 300
    ids = [{face["track_id"] for face in r["faces"]} for r in records]
    if VIDEO.is_file():                     # the real clip has a face in every frame; synthetic frames have none
        assert all(ids[10:14]) and ids[10] == ids[11]
        assert ids[12].isdisjoint(ids[11])  # each pass starts new tracks: no face continues across the cut


def test_picamera2_source_through_a_fake_picamera2(recognizer, tmp_path, monkeypatch):
    photo = cv2.imread(str(need(PHOTOS / "obama-240p.jpg")))[:, :426]
    FakePicamera2.instances.clear()
    FakePicamera2.default_frames = [photo]
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    out = tmp_path / "pi.jsonl"
    config = DaemonConfig(SourceOptions("picamera2", max_frames=5, size=(426, 240)), output=OutputOptions(str(out)))
    daemon = Daemon(config, recognizer=recognizer)
    assert daemon.run() == 0
    records = read_jsonl(out)
    assert len(records) == 5 and all(r["source"] == "picamera2" for r in records)  # as given
    assert all((r["width"], r["height"]) == (426, 240) and len(r["faces"]) == 1 for r in records)
    assert len({r["faces"][0]["track_id"] for r in records}) == 1
    (camera,) = FakePicamera2.instances
    assert camera.closed and camera.config["lores"]["format"] == "YUV420"


def test_frames_are_not_written_to_disk_unless_annotate_asks(tiny_model, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    clip = make_clip(tmp_path / "clip.avi", frames=5, size=(320, 180))
    done = run_cli("--source", str(clip), "--model", str(tiny_model), "--output", str(work / "o.jsonl"))
    assert done.returncode == 0 and sorted(p.name for p in work.iterdir()) == ["o.jsonl"]
    done = run_cli("--source", str(clip), "--model", str(tiny_model), "--output", "-",
                   "--annotate", str(work / "debug.avi"))
    assert done.returncode == 0, done.stderr
    cap = cv2.VideoCapture(str(work / "debug.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(need(PHOTOS / "obama-240p.jpg"), folder / "x.jpg")
    done = run_cli("--source", str(folder), "--model", str(tiny_model), "--annotate", str(work / "ann"))
    assert done.returncode == 0, done.stderr
    annotated = cv2.imread(str(work / "ann" / "x.jpg"))
    assert annotated.shape == (240, 427, 3)
    assert not np.array_equal(annotated, cv2.imread(str(folder / "x.jpg")))  # boxes drawn


@pytest.mark.slow
def test_memory_stays_flat_over_a_long_run(recognizer, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="edge_runtime")  # captured log records would pile up
    clip = make_clip(tmp_path / "loop.avi", frames=30, size=(160, 90))
    source = VideoSource(str(clip), live=True, reconnect=True)  # replays forever
    config = DaemonConfig(SourceOptions(source.name, backoff_initial=0.001),
                          output=OutputOptions(str(tmp_path / "out.jsonl")))
    daemon = Daemon(config, recognizer=recognizer, source=source)
    thread = threading.Thread(target=daemon.run)
    tracemalloc.start(16)
    try:
        thread.start()

        def wait_frames(n: int) -> None:
            deadline = time.monotonic() + 300
            while (daemon.metrics is None or daemon.metrics.snapshot()["frames"] < n) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)

        def resident() -> tracemalloc.Snapshot:
            # Only what the runtime's code allocated (threads other tests left behind in this process
            # do not count), and the least of a few samples: a frame in flight holds the detectors'
            # input buffers (a few hundred KiB) for a moment, which is not growth.
            samples = []
            for _ in range(5):
                samples.append(tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(True, "*edge_runtime*", all_frames=True)]))
                time.sleep(0.02)
            return min(samples, key=size)

        wait_frames(200)
        early = resident()
        wait_frames(800)
        late = resident()
    finally:
        daemon.stop()
        thread.join(30)
        tracemalloc.stop()
    assert daemon.metrics.snapshot()["frames"] >= 800
    growth = size(late) - size(early)
    assert growth < 512 * 1024, (growth, [str(s) for s in late.compare_to(early, "lineno")[:5]])


def size(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes held by the traces of ``snapshot``."""
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_frames_faster_than_processing_are_dropped_not_skipped(recognizer, tmp_path):
    clip = tmp_path / "fast.avi"  # 400 frames/s played in real time: faster than any processing here
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 400.0, (320, 180))
    cap = cv2.VideoCapture(str(make_clip(tmp_path / "clip.avi", frames=200, size=(320, 180))))
    while (read := cap.read())[0]:
        writer.write(read[1])
    cap.release()
    writer.release()
    daemon, records = run_daemon(recognizer, VideoSource(str(clip), realtime=True), tmp_path)
    counts = daemon.metrics.snapshot()
    assert counts["skipped_frames"] == 0, counts  # no --max-fps: nothing is skipped on purpose
    assert counts["dropped_frames"] >= 50 and len(records) + counts["dropped_frames"] >= 190, counts
