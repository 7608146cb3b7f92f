"""Properties that keep the fault paths found: whatever a user types or feeds in, one clear line, or a
recovery, never a traceback or a hang.

- every numeric option of every command: nan, inf and huge values are one ``error:`` line, exit 2;
- the daemon's numeric options, any value: refused with one line, or a configuration whose derived
  values (rotation size, frame interval, health threshold) are finite;
- random bytes, and truncated images and videos, as sources: a :class:`SourceError` or frames;
- random and truncated model cards: a :class:`ModelCardError`; profiles: a :class:`ProfileError`;
- random HTTP request lines: an HTTP answer (or a close), and the server still serves.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import redirect_stderr
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.command_line import bounded_int, finite_float
from edge_runtime.errors import FerEdgeError, SourceError
from edge_runtime.model.card import ModelCardError, load_card
from edge_runtime.outputs.metrics import Metrics
from edge_runtime.outputs.status_http import StatusBoard, StatusServer
from edge_runtime.recognition.calibration import ProfileError, load_profile, make_profile, to_json
from edge_runtime.service import cli
from edge_runtime.service.config import ConfigError
from edge_runtime.sources.capture import open_source
from tests.edge_support import ROOT, make_clip

#: Every command line of the package: each module whose ``build_parser`` makes a CommandParser (the
#: ``fer-edge`` dispatcher has no options of its own).
COMMANDS = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts)
                  for folder in ("edge_runtime", "train", "convert", "benchmarks", "tools")
                  for path in (ROOT / folder).rglob("*.py")
                  if "def build_parser(" in (text := path.read_text()) and "CommandParser(" in text)
NOT_FINITE = ("nan", "NaN", "inf", "-inf", "1e300", "-1e300", str(10**12))
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def numeric_options(parser) -> list[str]:
    """The long flag of every option whose value is a number."""
    return [action.option_strings[-1] for action in parser._actions
            if action.option_strings and action.type in (finite_float, bounded_int)]


def one_error_line(parse, argv: list[str]) -> str:
    """Run ``parse(argv)``, which must exit 2 having printed one line; that line."""
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        parse(argv)
    lines = err.getvalue().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1, err.getvalue()
    return lines[0]


@pytest.mark.parametrize("module", COMMANDS)
def test_every_numeric_option_of_every_command_refuses_nan_inf_and_huge_values(module):
    parser = importlib.import_module(module).build_parser()
    for option in numeric_options(parser):
        for value in NOT_FINITE:
            line = one_error_line(parser.parse_args, [option, value])
            assert option in line and "error:" in line, line


DAEMON_PARSER = cli.build_parser()
DAEMON_NUMERIC = numeric_options(DAEMON_PARSER)


def test_the_daemon_numeric_options_are_all_checked():
    assert {"--max-fps", "--rotate-mb", "--keep", "--threads", "--margin", "--stale-after"} <= set(DAEMON_NUMERIC)
#: Options some others need before they are looked at.
COMPANIONS = {"--keep": ["--output", "r.jsonl", "--rotate-mb", "1"], "--rotate-mb": ["--output", "r.jsonl"],
              "--live-fps": ["--http", "0", "--live"], "--stale-after": ["--http", "0"],
              "--mqtt-every": ["--mqtt", "mqtt://broker"], "--mqtt-heartbeat": ["--mqtt", "mqtt://broker"]}
ANY_NUMBER = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 1e300, 2**63, 1e-300]),
                       st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70))


@FAST
@given(option=st.sampled_from(DAEMON_NUMERIC), value=ANY_NUMBER)
def test_a_daemon_option_is_refused_in_one_line_or_gives_finite_settings(option, value):
    text = repr(value) if isinstance(value, float) else str(value)
    argv = ["--source", "photo.jpg", *COMPANIONS.get(option, []), option, text]
    try:
        args = DAEMON_PARSER.parse_args(argv)
        config = cli.config_from_args(args)
    except SystemExit as exc:
        assert exc.code == 2
        return
    except ConfigError as exc:
        assert "\n" not in str(exc) and option.lstrip("-").split("-")[0] in str(exc), str(exc)
        return
    assert math.isfinite(config.stale_after) and config.stale_after > 0
    assert math.isfinite(config.source.frame_interval)
    assert config.output.rotate_bytes is None or 0 < config.output.rotate_bytes < 2**63


@pytest.mark.parametrize("argv", [
    ["--rotate-mb", "nan", "--output", "OUT"], ["--stale-after", "nan", "--http", "0"], ["--margin", "nan"],
    ["--max-fps", "nan"], ["--max-fps", "inf"], ["--wait-for-source", "nan"], ["--threads", "1000"],
    ["--keep", "1000000000", "--rotate-mb", "1", "--output", "OUT"], ["--sorce", "x.jpg"],
])
def test_the_reported_option_values_are_one_line_and_exit_2_through_the_real_command(argv, tmp_path):
    argv = [str(tmp_path / "r.jsonl") if a == "OUT" else a for a in argv]
    source = [] if "--sorce" in argv else ["--source", str(tmp_path / "photo.jpg")]
    done = subprocess.run([sys.executable, "-m", "edge_runtime", *source, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("python -m edge_runtime: error: ") and argv[0].split("=")[0] in line, line


def read_all(spec: Path, limit: int = 50) -> int:
    """Open ``spec`` and read up to ``limit`` frames; how many came. Raises SourceError only."""
    frames = 0
    with open_source(str(spec)) as source:
        while frames < limit and source.read() is not None:
            frames += 1
    return frames


@FAST
@given(data=st.binary(min_size=1, max_size=4096))
def test_random_bytes_as_a_source_are_a_source_error_or_frames(data, tmp_path):
    path = tmp_path / "random.bin"
    path.write_bytes(data)
    try:
        read_all(path)
    except SourceError as exc:
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict[str, bytes]:
    """A real JPEG, PNG and MJPG video, whole."""
    folder = tmp_path_factory.mktemp("whole")
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    return {".jpg": cv2.imencode(".jpg", image)[1].tobytes(), ".png": cv2.imencode(".png", image)[1].tobytes(),
            ".avi": make_clip(folder / "clip.avi", frames=8).read_bytes()}


@FAST
@given(kind=st.sampled_from([".jpg", ".png", ".avi"]), keep=st.floats(0.0, 0.999))
def test_a_truncated_image_or_video_is_a_source_error_or_fewer_frames(encoded, kind, keep, tmp_path):
    whole = encoded[kind]
    path = tmp_path / f"cut{kind}"
    path.write_bytes(whole[:max(1, int(len(whole) * keep))])
    try:
        frames = read_all(path)
    except SourceError as exc:
        assert "\n" not in str(exc)
    else:
        assert frames <= (8 if kind == ".avi" else 1)


@FAST
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                      st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8),
                                   lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                                       st.sampled_from(["schema_version", "labels", "input", "output", "file",
                                                        "variant", "quantization", "name"]), inner, max_size=6),
                                   max_leaves=12).map(json.dumps)))
def test_a_random_model_card_is_one_card_error(text, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(ModelCardError) as info:
        load_card(path)
    assert "\n" not in str(info.value)


@FAST
@given(cut=st.floats(0.0, 0.99))
def test_a_truncated_shipped_card_is_one_card_error(cut, tmp_path):
    whole = (ROOT / "models" / "fer4_int8.json").read_bytes()
    path = tmp_path / "fer4_int8.json"
    path.write_bytes(whole[:int(len(whole) * cut)])
    with pytest.raises(FerEdgeError) as info:
        load_card(path)
    assert "\n" not in str(info.value)


PROFILE_KEYS = ["name", "model_sha256", "labels", "log_scores", "floor", "frames", "created", "tta", "version"]


@FAST
@given(data=st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(PROFILE_KEYS), inner,
                                                                              max_size=9),
                 max_leaves=16).map(lambda v: json.dumps(v).encode())))
def test_a_random_profile_is_one_profile_error(data, tmp_path):
    path = tmp_path / "profile.json"
    path.write_bytes(data)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert "\n" not in str(info.value)


@FAST
@given(cut=st.floats(0.0, 0.99))
def test_a_truncated_profile_is_one_profile_error(cut, tmp_path):
    whole = json.dumps(to_json(make_profile(np.full((1, 4), 0.25), ("a", "b", "c", "d"), "ab" * 32, "me"))).encode()
    path = tmp_path / "profile.json"
    path.write_bytes(whole[:int(len(whole) * cut)])
    with pytest.raises(ProfileError):
        load_profile(path)


@pytest.fixture(scope="module")
def status_server():
    server = StatusServer(StatusBoard(Metrics()), "127.0.0.1", 0, connection_timeout=0.5)
    yield server
    server.close()


@FAST
@given(line=st.binary(max_size=300))
def test_a_random_request_line_gets_an_answer_or_a_close_and_the_server_keeps_serving(status_server, line):
    with socket.create_connection(status_server.address, timeout=5) as sock:
        sock.sendall(line + b"\r\n\r\n")
        started = time.monotonic()
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        assert time.monotonic() - started < 3
    assert answer == b"" or answer.startswith(b"HTTP/")
    with urllib.request.urlopen("http://{}:{}/metrics".format(*status_server.address), timeout=5) as response:
        assert response.status == 200
