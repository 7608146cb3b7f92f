"""The daemon's fault paths through the real command: a stream that accepts and never answers, a full
disk, a results file cut off mid-line, a missing --annotate folder, images too large to decode whole."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.errors import SourceError
from edge_runtime.sources.image_decode import decode_image, image_size
from tests.edge_support import PHOTOS, need, run_cli


def only_error_line(done, code: int, *fragments: str) -> str:
    assert done.returncode == code, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("python -m edge_runtime: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers them."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/video"
    stop.set()
    thread.join(2)
    for sock in held:
        sock.close()
    server.close()


def test_wait_for_source_holds_against_a_stream_that_never_answers(silent_server, tiny_model):
    started = time.monotonic()
    done = run_cli("--source", silent_server, "--model", str(tiny_model), "--wait-for-source", "2", timeout=120)
    elapsed = time.monotonic() - started
    only_error_line(done, 3, "gave up after --wait-for-source 2 s")
    assert elapsed < 6, f"exit 3 took {elapsed:.1f} s for --wait-for-source 2"


def test_a_full_disk_is_one_line_naming_the_output_and_exit_2(tiny_model):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    done = run_cli("--source", str(need(PHOTOS) / "biden.jpg"), "--model", str(tiny_model), "--output", "/dev/full")
    only_error_line(done, 2, "--output /dev/full", "disk is full")


def test_append_after_a_cut_off_line_starts_a_new_line_and_continues_the_frame_count(tiny_model, tmp_path):
    out = tmp_path / "app.jsonl"
    out.write_text('{"frame":0}\n{"frame":7}\n{"frame":8,"trunc')
    done = run_cli("--source", str(need(PHOTOS)), "--model", str(tiny_model), "--output", str(out), "--append",
                   "--max-frames", "2")
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert lines[:3] == ['{"frame":0}', '{"frame":7}', '{"frame":8,"trunc']  # nothing written is lost
    assert [json.loads(line)["frame"] for line in lines[3:]] == [8, 9]  # after the last complete line


def test_a_missing_annotate_folder_is_refused_and_not_created(tiny_model, tmp_path):
    target = tmp_path / "missing" / "deeper" / "x.mp4"
    done = run_cli("--source", str(need(PHOTOS) / "biden.jpg"), "--model", str(tiny_model), "--annotate", str(target))
    only_error_line(done, 2, "--annotate", "does not exist; create it first")
    assert not (tmp_path / "missing").exists()


def encoded(suffix: str, width: int, height: int) -> np.ndarray:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(suffix, image)[1]


def test_image_headers_give_the_size_before_decoding():
    assert image_size(encoded(".jpg", 320, 200).tobytes()) == ("jpeg", 320, 200)
    assert image_size(encoded(".png", 33, 47).tobytes()) == ("png", 33, 47)
    assert image_size(encoded(".bmp", 12, 9).tobytes()) == ("bmp", 12, 9)
    assert image_size(b"not an image") is None


def test_a_large_jpeg_is_decoded_reduced_and_another_large_format_refused():
    small = decode_image(encoded(".jpg", 400, 300), "small.jpg", max_pixels=200_000)
    assert small.shape == (300, 400, 3)  # under the limit: whole
    reduced = decode_image(encoded(".jpg", 1600, 1200), "big.jpg", max_pixels=200_000)
    assert reduced.shape == (300, 400, 3)  # 1.92 MP: at 1/4 scale, the first that fits
    with pytest.raises(SourceError, match=r"big.png is 1600x1200 \(2 megapixels\).*resize it"):
        decode_image(encoded(".png", 1600, 1200), "big.png", max_pixels=200_000)
