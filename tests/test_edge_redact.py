"""Credentials are redacted from URLs in every text the daemon writes: sources, metrics, logs."""

from __future__ import annotations

import logging

import pytest

from edge_runtime.outputs.metrics import Metrics
from edge_runtime.redact import RedactingFormatter, redact
from edge_runtime.service.cli import build_parser
from edge_runtime.sources.capture import open_source


@pytest.mark.parametrize(("text", "expected"), [
    ("rtsp://admin:s3cret@192.0.2.1:554/stream1", "rtsp://admin:***@192.0.2.1:554/stream1"),
    ("http://user:p@ss:w0rd@cam.local/video.mjpg", "http://user:***@cam.local/video.mjpg"),
    ("cannot open camera/stream http://u:s3cret@h/x (is it connected?)",
     "cannot open camera/stream http://u:***@h/x (is it connected?)"),
    ("two: rtsp://a:s3cret@h1/x and rtsps://b:s3cret@h2/y", "two: rtsp://a:***@h1/x and rtsps://b:***@h2/y"),
    ("http://cam/snap.cgi?user=admin&password=s3cret&res=1", "http://cam/snap.cgi?user=admin&password=***&res=1"),
    ("rtsp://cam/live?token=s3cret", "rtsp://cam/live?token=***"),
    ("http://127.0.0.1:8765/healthz", "http://127.0.0.1:8765/healthz"),  # a port is not a password
    ("picamera2", "picamera2"),
    ("/videos/a:b@c.mp4", "/videos/a:b@c.mp4"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_stream_source_name_and_metrics_labels_carry_no_password():
    source = open_source("rtsp://admin:s3cret@192.0.2.1/stream")
    assert source.name == "rtsp://admin:***@192.0.2.1/stream"
    assert source.target == "rtsp://admin:s3cret@192.0.2.1/stream"  # still used to connect
    text = Metrics(info={"source": "http://u:s3cret@h/x"}).render()
    assert "s3cret" not in text and 'source="http://u:***@h/x"' in text


def test_log_lines_and_tracebacks_are_redacted():
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise RuntimeError("lost rtsp://admin:s3cret@cam/1")
    except RuntimeError as exc:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "reading %s failed", ("rtsp://a:s3cret@cam/1",),
                                   (type(exc), exc, exc.__traceback__))
    text = formatter.format(record)
    assert "s3cret" not in text and "rtsp://a:***@cam/1" in text and "Traceback" in text


def test_argument_errors_are_redacted(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--source", "x", "--max-fps", "http://u:s3cret@h/"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--max-fps" in err and "http://u:***@h/" in err and "s3cret" not in err
