"""Every output behind one Sink interface: the built outputs satisfy it, a result is encoded once, an output
of your own receives every result, and setup problems (a bad detector model, a missing picamera2, a text file
named .jpg) are one error line and exit 2, never retried (a camera that refuses the login:
test_edge_login_check.py)."""

from __future__ import annotations

import json

from edge_runtime import Daemon, DaemonConfig, FaceRecognizer
from edge_runtime.outputs.metrics import Metrics
from edge_runtime.outputs.sink import Sink, SinkBase
from edge_runtime.results import FrameResult
from edge_runtime.service.config import HttpOptions, MqttOptions, OutputOptions, SourceOptions
from edge_runtime.service.sinks import build_sinks
from edge_runtime.sources.capture import VideoSource
from tests.edge_support import make_clip, read_jsonl, run_cli

PROG_ERROR = "python -m edge_runtime: error: "


class Collecting(SinkBase):
    """An output of our own: keeps every result it is handed."""

    name = "collect"

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def handle(self, result: FrameResult) -> None:
        self.results.append(result)

    def close(self, deadline: float) -> None:
        self.closed = True


def test_the_built_outputs_are_sinks_started_in_order_with_the_results_file_last(tmp_path):
    config = DaemonConfig(SourceOptions("0"), output=OutputOptions(str(tmp_path / "r.jsonl"),
                                                                   annotate=str(tmp_path / "ann")),
                          http=HttpOptions("0", live=True), mqtt=MqttOptions("mqtt://127.0.0.1:1"))
    sinks = build_sinks(config, Metrics(), ("happy", "sad")).start_order([Collecting()])
    assert [s.name for s in sinks] == ["live", "http", "mqtt", "annotate", "collect", "jsonl"]
    assert all(isinstance(s, Sink) for s in sinks)
    assert not (tmp_path / "r.jsonl").exists(), "built, not started: nothing written yet"


def test_an_output_of_your_own_gets_every_result_encoded_once(tiny_model, tmp_path):
    source = VideoSource(str(make_clip(tmp_path / "clip.avi", frames=6)))
    out = tmp_path / "out.jsonl"
    mine = Collecting()
    daemon = Daemon(DaemonConfig(SourceOptions(source.name), output=OutputOptions(str(out))),
                    recognizer=FaceRecognizer(tiny_model, num_threads=1), source=source, extra_sinks=[mine])
    assert daemon.run() == 0
    written = (out.read_text()).splitlines()
    assert mine.started and mine.closed and len(mine.results) == len(written) == 6
    assert [r.line for r in mine.results] == written, "the JSONL line is the result's one encoding"
    assert all(json.loads(r.line) == r.data == r.record.to_dict() for r in mine.results)
    assert [r.record.frame for r in mine.results] == [r["frame"] for r in read_jsonl(out)] == list(range(6))


def test_a_file_that_is_not_a_haar_cascade_is_one_error_line(tmp_path, tiny_model):
    bogus = tmp_path / "notmodel.tflite"
    bogus.write_text("not a model\n")
    photo = tmp_path / "photo.avi"
    make_clip(photo, frames=1)
    done = run_cli("--source", str(photo), "--model", str(tiny_model), "--detector", "haar",
                   "--detector-model", str(bogus))
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert errors == [f"{PROG_ERROR}cannot load the Haar cascade {bogus}; pass an OpenCV cascade .xml file"]


def test_a_missing_picamera2_is_exit_2_not_a_camera_to_wait_for(tiny_model):
    done = run_cli("--source", "picamera2", "--model", str(tiny_model), timeout=120)
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert done.returncode == 2 and len(errors) == 1 and "picamera2 is not installed" in errors[0], done.stderr
    assert "retrying" not in done.stderr


def test_a_text_file_named_jpg_is_named_as_such_without_decoder_noise(tmp_path, tiny_model):
    fake = tmp_path / "photo.jpg"
    fake.write_text("hello\n")
    done = run_cli("--source", str(fake), "--model", str(tiny_model))
    assert done.returncode == 2 and "No JPEG data" not in done.stderr and "mjpeg" not in done.stderr, done.stderr
    (error,) = [line for line in done.stderr.splitlines() if "error:" in line]
    assert "is named like an image but its content is not an image" in error


