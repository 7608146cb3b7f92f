"""The daemon end to end: `python -m edge_runtime` on real media, its JSONL output, its errors and exit codes,
signals. The in-process loop (stale frames, reconnects, --loop, the Pi camera, memory) is in
test_daemon_loop.py."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.recognition.tracking import IoUTracker, iou
from edge_runtime.redact import RedactingFormatter
from edge_runtime.service import cli
from tests.edge_support import (
    PHOTOS,
    ROOT,
    VIDEO,
    copy_model,
    make_clip,
    need,
    read_jsonl,
    run_cli,
)


def check_record(record: dict, labels: tuple[str, ...], video: bool) -> None:
    """The JSONL schema of one processed frame."""
    assert isinstance(record["source"], str) and isinstance(record["frame"], int)
    assert isinstance(record["reconnects"], int) and record["reconnects"] >= 0
    assert datetime.fromisoformat(record["time"]).tzinfo is not None
    assert record["width"] > 0 and record["height"] > 0
    assert {"detect", "classify", "total"} <= set(record["latency_ms"])
    assert all(isinstance(v, float | int) and v >= 0 for v in record["latency_ms"].values())
    for face in record["faces"]:
        x, y, w, h = face["box"]
        assert all(isinstance(v, int) for v in face["box"]) and w > 0 and h > 0
        assert 0 <= x and x + w <= record["width"] and 0 <= y and y + h <= record["height"]
        assert list(face["scores"]) == list(labels)
        assert all(0.0 <= p <= 1.0 for p in face["scores"].values())
        assert face["label"] is None or face["label"] == max(face["scores"], key=face["scores"].get)
        assert isinstance(face["detector_score"], float | int)
        assert ("track_id" in face) == video


def labels_of(model: Path) -> tuple[str, ...]:
    return tuple(json.loads(model.with_suffix(".json").read_text())["labels"])


def assert_tracks_stable(records: list[dict]) -> None:
    """A face that overlaps (IoU >= 0.5) a face of the previous frame keeps its track id."""
    for previous, current in zip(records, records[1:], strict=False):
        for face in current["faces"]:
            for before in previous["faces"]:
                if iou(tuple(face["box"]), tuple(before["box"])) >= 0.5:
                    assert face["track_id"] == before["track_id"], (previous["frame"], current["frame"])


def singer_segment(records: list[dict], first: int, last: int) -> tuple[float, float]:
    """(share of frames first..last with a face, share of those frames held by the most common track)."""
    segment = [r for r in records if first <= r["frame"] <= last]
    with_face = [r for r in segment if r["faces"]]
    ids = Counter(f["track_id"] for r in with_face for f in r["faces"])
    top = ids.most_common(1)[0][0] if ids else None
    held = sum(any(f["track_id"] == top for f in r["faces"]) for r in with_face)
    return len(with_face) / len(segment), held / max(1, len(with_face))


# --- the real pipeline on the shared media ---------------------------------------------------------

def test_photos_directory(pipeline_model, tmp_path):
    out = tmp_path / "photos.jsonl"
    done = run_cli("--source", str(need(PHOTOS)), "--model", str(pipeline_model), "--output", str(out),
                   "--threads", "1", "--log-level", "info")
    assert done.returncode == 0, done.stderr
    records = read_jsonl(out)
    assert [r["source"] for r in records] == [str(p) for p in sorted(PHOTOS.iterdir())]
    assert [r["frame"] for r in records] == list(range(len(records)))
    for record in records:
        check_record(record, labels_of(pipeline_model), video=False)
    faces = {Path(r["source"]).name: len(r["faces"]) for r in records}
    assert sum(n > 0 for n in faces.values()) >= len(faces) - 1  # all but the partial face
    assert faces["two_people.jpg"] == 2 and faces["obama_and_biden.jpg"] == 2
    assert "ai_edge_litert" in done.stderr  # the runtime choice is logged


def test_video_with_blazeface_tracks_faces(pipeline_model):
    done = run_cli("--source", str(need(VIDEO)), "--model", str(pipeline_model), "--detector", "blazeface",
                   "--output", "-", "--threads", "1", "--log-level", "warning")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(275))
    for record in records:
        check_record(record, labels_of(pipeline_model), video=True)
        assert record["source"] == str(VIDEO)
    assert records[100]["video_time_ms"] == pytest.approx(100 * 1000 / 29.97, abs=1)
    assert_tracks_stable(records)
    found, held = singer_segment(records, 90, 200)  # the singer faces the camera
    assert found >= 0.95 and held >= 0.9, (found, held)


@pytest.mark.slow
def test_video_with_haar_the_default(pipeline_model):
    done = run_cli("--source", str(need(VIDEO)), "--model", str(pipeline_model), "--output", "-",
                   "--threads", "1", "--log-level", "warning", timeout=600)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 275
    assert_tracks_stable(records)
    found, held = singer_segment(records, 140, 190)
    assert found >= 0.8 and held >= 0.7, (found, held)


def test_still_images_are_not_smoothed(tiny_model, tmp_path):
    folder = tmp_path / "same"
    folder.mkdir()
    for name in ("1.jpg", "2.jpg"):
        shutil.copy(need(PHOTOS / "obama-240p.jpg"), folder / name)
    done = run_cli("--source", str(folder), "--model", str(tiny_model), "--smoothing", "0.1")
    assert done.returncode == 0, done.stderr
    first, second = [json.loads(line) for line in done.stdout.splitlines()]
    assert first["faces"] and first["faces"] == second["faces"]
    assert "track_id" not in first["faces"][0]


def test_mixed_directory_skips_what_is_not_an_image(tiny_model, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(need(PHOTOS / "obama-240p.jpg"), folder / "a.jpg")
    shutil.copy(PHOTOS / "obama_small.jpg", folder / "b.png")  # a JPEG named .png
    (folder / "notes.txt").write_text("hello")
    (folder / "fake.jpg").write_text("not a jpeg")
    done = run_cli("--source", str(folder), "--model", str(tiny_model))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(r["source"]).name for r in records] == ["a.jpg", "b.png"]
    assert all(len(r["faces"]) == 1 for r in records)
    assert "skipping" in done.stderr and "fake.jpg" in done.stderr and "notes.txt" in done.stderr


# --- errors: one line, exit code 2 -----------------------------------------------------------------

def one_line_error(done: subprocess.CompletedProcess, *fragments: str, code: int = 2, alone: bool = True) -> None:
    """One ``error:`` line; ``alone``: and nothing else on stderr (at the default log level)."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("python -m edge_runtime: error: ")]
    assert len(errors) == 1 and (not alone or done.stderr.splitlines() == errors), done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert done.stdout == ""


def test_error_missing_model(tmp_path):
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    one_line_error(run_cli("--source", str(photo), "--model", str(tmp_path / "none.tflite")),
                   "not found", "--model")


def test_error_card_does_not_match_model(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path, lambda c: c.update(labels=["a", "b", "c"]))
    one_line_error(run_cli("--source", str(need(PHOTOS)), "--model", str(model)),
                   "does not match its card", "3 labels")


def test_error_empty_directory(tiny_model, tmp_path):
    one_line_error(run_cli("--source", str(tmp_path), "--model", str(tiny_model)), "has no files")


def test_error_corrupt_and_truncated_video(tiny_model, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(20000))
    one_line_error(run_cli("--source", str(garbage), "--model", str(tiny_model)), "cannot open video file")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(need(VIDEO).read_bytes()[:200_000])
    one_line_error(run_cli("--source", str(truncated), "--model", str(tiny_model)), "cannot open video file")


def test_truncated_video_that_still_decodes_is_processed_up_to_the_cut(tiny_model, tmp_path):
    clip = make_clip(tmp_path / "clip.avi", frames=20)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    done = run_cli("--source", str(cut), "--model", str(tiny_model))
    assert done.returncode == 0, done.stderr
    assert 0 < len(done.stdout.splitlines()) < 20 and "truncated or corrupt" in done.stderr


def test_a_camera_missing_at_start_exits_3_once_wait_for_source_runs_out(tiny_model):
    done = run_cli("--source", "99", "--model", str(tiny_model), "--wait-for-source", "0")
    one_line_error(done, "cannot open camera/stream 99", code=3)
    assert "retrying" not in done.stderr  # at once
    started = time.monotonic()
    done = run_cli("--source", "99", "--model", str(tiny_model), "--wait-for-source", "1.5")
    # the retries while waiting are warnings worth a journal line each
    one_line_error(done, "cannot open camera/stream 99", "gave up after --wait-for-source 1.5 s", code=3, alone=False)
    assert "waiting, retrying in 0.5 s" in done.stderr and "retrying in 1.0 s" in done.stderr
    assert time.monotonic() - started >= 1.5


def test_bad_inputs_get_one_line_naming_the_option(tiny_model, tmp_path):
    model = ["--model", str(tiny_model)]
    photos = ["--source", str(need(PHOTOS))]
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    one_line_error(run_cli("--source", str(empty), *model), "--source", "empty file (0 bytes)")
    one_line_error(run_cli("--source", "", *model), "--source is empty")
    one_line_error(run_cli(*photos, "--model", str(tiny_model.parent)), f"--model {tiny_model.parent} is a folder",
                   tiny_model.name)
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(run_cli(*photos, *model, "--annotate", str(blocker / "out")), "--annotate")
    one_line_error(run_cli(*photos, *model, "--annotate", str(tmp_path / "ann" / "out.gif")),
                   "--annotate", "cannot write .gif files")
    assert not (tmp_path / "ann").exists()
    one_line_error(run_cli(*photos, *model, "--rotate-mb", "1"), "--rotate-mb needs --output FILE")
    one_line_error(run_cli(*photos, *model, "--keep", "3"), "--keep needs --rotate-mb")
    one_line_error(run_cli(*photos, *model, "--output", str(tmp_path / "o.jsonl"), "--rotate-mb", "1", "--keep", "0"),
                   "--keep 0: keep between 1 and 1000")
    one_line_error(run_cli(*photos, *model, "--http", "0.0.0.0:0"), "--http-allow-remote")
    one_line_error(run_cli("--source", "rtsp://u:s3cret@192.0.2.1/x", *model, "--loop"),
                   "--loop replays a video file or a directory", "rtsp://u:***@192.0.2.1/x")
    one_line_error(run_cli(*photos, *model, "--max-fps", "0.5", "--stale-after", "1"), "--stale-after")


def test_the_source_can_come_from_the_environment_out_of_the_process_list(tiny_model, tmp_path):
    clip = make_clip(tmp_path / "clip.avi", frames=3)
    done = run_cli("--model", str(tiny_model), env={**os.environ, "FER_EDGE_SOURCE": str(clip)})
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["source"] for line in done.stdout.splitlines()] == [str(clip)] * 3
    env = {k: v for k, v in os.environ.items() if k != "FER_EDGE_SOURCE"}
    done = run_cli("--model", str(tiny_model), env=env)
    assert done.returncode == 2 and "--source" in done.stderr


def test_an_unexpected_error_logs_a_traceback_and_exits_1(tiny_model, tmp_path, monkeypatch, caplog, capsys):
    def broken(self, faces, scene=None):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(IoUTracker, "update", broken)
    clip = make_clip(tmp_path / "clip.avi", frames=3)
    try:
        code = cli.main(["--source", str(clip), "--model", str(tiny_model), "--output", str(tmp_path / "o.jsonl")])
    finally:
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers
                                        if not isinstance(h.formatter, RedactingFormatter)]
    assert code == 1  # restartable: not the "bad input" code systemd never restarts
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info and "a bug, not bad input" in str(errors[0].exc_info[1])
    assert "python -m edge_runtime: error: ValueError: a bug, not bad input" in capsys.readouterr().err


def test_error_bad_options(tiny_model, tmp_path):
    one_line_error(run_cli("--source", str(need(PHOTOS)), "--model", str(tiny_model), "--http", "host:port"),
                   "--http")
    blocked = tmp_path / "file"
    blocked.write_text("")
    one_line_error(run_cli("--source", str(PHOTOS), "--model", str(tiny_model), "--output",
                           str(blocked / "out.jsonl")), "cannot write --output")
    done = run_cli("--source", "x", "--detector", "yolo")
    assert done.returncode == 2 and "invalid choice" in done.stderr


# --- signals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tiny_model, tmp_path, sig):
    out = tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime", "--log-level", "info", "--source", str(need(VIDEO)),
                             "--realtime",
                             "--model", str(tiny_model), "--output", str(out), "--threads", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        signalled = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=20)
        stopped_in = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stopped_in < 2.0, stopped_in
    assert f"received {signal.Signals(sig).name}" in stderr and "Traceback" not in stderr
    records = read_jsonl(out)  # every line complete (flushed)
    assert 3 <= len(records) < 275
