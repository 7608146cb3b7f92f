"""benchmarks.camera_pipeline: the camera path on a real (decoded) video with the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.camera_pipeline import STAGES, main, process_frame
from edge_runtime import FaceRecognizer, IoUTracker, open_source
from edge_runtime.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
VIDEO = shared_dir() / "media" / "video" / "short_hamilton_clip.mp4"
needs_video = pytest.mark.skipif(not VIDEO.is_file(), reason=f"shared video {VIDEO} not present")
ROW_FIELDS = ("detector", "threads", "model", "variant", "frames", "faces", "fps", "frame_p50_ms",
              "frame_p90_ms", "frame_p99_ms", "classify_ms_per_face", "stages",
              *[f"{s}_ms" for s in STAGES])


@pytest.fixture(scope="module")
def noise_video(tmp_path_factory) -> Path:
    """A 12-frame MJPG video of noise (decoded for real, no faces in it)."""
    path = tmp_path_factory.mktemp("video") / "noise.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(12):
        writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    writer.release()
    return path


def test_noise_video_every_field(bench_setup, noise_video, tmp_path):
    code = main(["--source", str(noise_video), "--model", str(bench_setup.models / "tiny_int8.tflite"),
                 "--detectors", "haar", "--threads", "1", "--warmup-frames", "2", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "pipeline.json").read_text())
    assert result["device"]["cpu_model"] and result["settings"]["stages"] == list(STAGES)
    (row,) = result["rows"]
    assert not [f for f in ROW_FIELDS if f not in row]
    assert row["frames"] == 10 and row["detector"] == "haar" and row["variant"] == "int8"
    assert row["fps"] > 0 and row["decode_ms"] > 0 and row["detect_ms"] > 0
    assert (tmp_path / "pipeline.png").read_bytes()[:4] == b"\x89PNG"
    assert "| haar | 1 | 10 |" in (tmp_path / "pipeline.md").read_text()


@needs_video
def test_real_video_both_detectors_both_thread_counts(bench_setup, tmp_path):
    code = main(["--source", str(VIDEO), "--model", str(bench_setup.models / "tiny_int8.tflite"),
                 "--threads", "1,2", "--warmup-frames", "2", "--max-frames", "8", "--out", str(tmp_path)])
    assert code == 0
    rows = json.loads((tmp_path / "pipeline.json").read_text())["rows"]
    assert [(r["detector"], r["threads"]) for r in rows] == [("haar", 1), ("haar", 2),
                                                             ("blazeface", 1), ("blazeface", 2)]
    for row in rows:
        assert row["frames"] == 8
        stage_sum = sum(row[f"{s}_ms"] for s in STAGES)
        assert stage_sum <= row["frame_mean_ms"] * 1.001 + 1e-3   # stages are parts of the frame time
        assert 1000 / row["fps"] >= row["frame_mean_ms"] * 0.99     # wall clock covers every frame
        assert (row["classify_ms_per_face"] is None) == (row["faces"] == 0)
    assert all(r["faces"] > 0 for r in rows if r["detector"] == "haar")  # faces in frames 2-9


@needs_video
@pytest.mark.parametrize("detector, first", [("haar", 0), ("blazeface", 21)])  # frames with faces
def test_stages_give_the_recognizers_answers(bench_setup, detector, first):
    recognizer = FaceRecognizer(bench_setup.models / "tiny_int8.tflite", detector=detector, num_threads=1)
    with open_source(str(VIDEO)) as source:
        frames = [source.read().image for _ in range(first + 3)][first:]
    found = 0
    for image in frames:
        times: dict[str, int] = {}
        ours = process_frame(recognizer, IoUTracker(recognizer.labels), image, times)
        theirs = recognizer.recognize(image)
        assert [(f.box, f.label) for f in ours] == [(f.box, f.label) for f in theirs]
        assert [f.scores for f in ours] == [f.scores for f in theirs]
        assert set(times) == set(STAGES[1:])
        found += len(ours)
    assert found > 0


@pytest.mark.parametrize("args, message", [
    (["--source", "/nonexistent/clip.mp4"], "--source /nonexistent/clip.mp4: not found"),
    (["--detectors", "yolo"], "--detectors 'yolo'"),
])
def test_bad_input_gives_one_clear_line(bench_setup, args, message):
    model = str(bench_setup.models / "tiny_int8.tflite")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.camera_pipeline", "--model", model, "--threads", "1",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    head = "python -m benchmarks.camera_pipeline: error: "
    errors = [line for line in proc.stderr.splitlines() if line.startswith(head)]
    assert len(errors) == 1 and message in errors[0], proc.stderr


def test_missing_model_is_a_clear_error(noise_video, capsys):
    assert main(["--source", str(noise_video), "--model", "/nonexistent/fer4_int8.tflite",
                 "--detectors", "haar", "--threads", "1"]) == 2
    assert "model file /nonexistent/fer4_int8.tflite not found" in capsys.readouterr().err
