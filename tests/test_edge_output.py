"""The JSONL output: size-based rotation that never tears or loses a line, reopening on SIGHUP, 0640 files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outputs.jsonl import JsonlWriter, OutputConfig


def record(n: int) -> dict:
    return {"frame": n, "faces": [{"label": "happy", "scores": {"happy": 0.9}}] * (n % 3), "pad": "x" * (n % 40)}


def frames_in(path: Path) -> list[int]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), path  # no torn last line
    return [json.loads(line)["frame"] for line in text.splitlines()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_rotation_keeps_k_files_under_the_size_and_loses_no_line(tmp_path, umask_022):
    target = tmp_path / "out" / "results.jsonl"
    target.parent.mkdir()
    writer = JsonlWriter(OutputConfig(str(target), rotate_bytes=2000, keep=3))
    for n in range(300):
        writer.write(record(n))
    writer.close()
    files = [target.with_name(f"results.jsonl.{k}") for k in (3, 2, 1)] + [target]
    assert all(f.is_file() for f in files) and not target.with_name("results.jsonl.4").exists()
    assert writer.rotations > 3  # older files were dropped
    assert all(f.stat().st_size <= 2000 for f in files)
    frames = [n for f in files for n in frames_in(f)]
    assert frames == list(range(frames[0], 300)) and frames[0] > 0  # contiguous, oldest first
    assert all(mode(f) == 0o640 for f in files)


def test_a_line_longer_than_the_limit_gets_a_file_of_its_own(tmp_path):
    target = tmp_path / "r.jsonl"
    writer = JsonlWriter(OutputConfig(str(target), rotate_bytes=100, keep=2))
    writer.write({"frame": 0, "pad": "y" * 300})
    writer.write({"frame": 1})
    writer.close()
    assert frames_in(target.with_name("r.jsonl.1")) == [0] and frames_in(target) == [1]


def test_append_continues_the_file_and_rotation_counts_its_size(tmp_path):
    target = tmp_path / "r.jsonl"
    target.write_text(json.dumps({"frame": -1, "pad": "z" * 150}) + "\n")
    writer = JsonlWriter(OutputConfig(str(target), append=True, rotate_bytes=200, keep=1))
    writer.write(record(0))
    writer.close()
    assert frames_in(target.with_name("r.jsonl.1")) == [-1] and frames_in(target) == [0]
    writer = JsonlWriter(OutputConfig(str(target)))  # without --append: replaced
    writer.close()
    assert target.read_text() == ""


def test_reopen_after_logrotate_moved_the_file(tmp_path, umask_022):
    target = tmp_path / "results.jsonl"
    writer = JsonlWriter(OutputConfig(str(target), append=True))
    writer.write(record(0))
    moved = tmp_path / "results.jsonl-20261130"
    target.rename(moved)  # logrotate's "create" method
    writer.write(record(1))  # still the open file until the reopen
    writer.reopen()  # what SIGHUP does
    writer.write(record(2))
    writer.close()
    assert frames_in(moved) == [0, 1] and frames_in(target) == [2]
    assert mode(target) == 0o640


def test_output_errors_name_the_option(tmp_path):
    with pytest.raises(EdgeRuntimeError, match="cannot write --output .*directory"):
        JsonlWriter(OutputConfig(str(tmp_path)))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EdgeRuntimeError, match="cannot write --output"):
        JsonlWriter(OutputConfig(str(blocker / "x.jsonl")))
    missing = tmp_path / "not-made" / "x.jsonl"
    with pytest.raises(EdgeRuntimeError, match="the folder .*not-made does not exist; create it first"):
        JsonlWriter(OutputConfig(str(missing)))
    assert not missing.parent.exists(), "no folder is created behind the user's back"
