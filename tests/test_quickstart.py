"""The README's quick start and examples: the make targets run what the README says, the benchmark
command works on the bundled models and prints its compact table, and every example command parses."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.latency import build_parser as bench_parser
from edge_runtime.service.cli import build_parser as run_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OWN_DOCS = ("detectors.md", "crop-margin.md", "models.md", "training.md", "arm64.md", "pi-latency.md")
DOCS = [README] + [(ROOT / "docs" / name).read_text(encoding="utf-8") for name in OWN_DOCS]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, *options: str) -> str:
    """What ``make -n [OPTIONS] TARGET`` would run (nothing is executed)."""
    done = subprocess.run(["make", "-n", *options, target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def code_lines(text: str) -> list[str]:
    """The lines inside fenced code blocks, with backslash continuations joined."""
    lines, inside = [], False
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line)
    return lines


def example_commands(prefix: list[str]) -> list[list[str]]:
    """The arguments after ``prefix`` of every such command in the README's and docs' code blocks."""
    commands = []
    for line in (line for text in DOCS for line in code_lines(text)):
        if " ".join(prefix) not in line:
            continue
        words = shlex.split(line.split(" #")[0])
        for start in range(len(words)):
            if words[start:start + len(prefix)] == prefix:
                commands.append(words[start + len(prefix):])
    return commands


def test_the_quick_start_is_the_two_make_targets():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make benchmark", "make test"]


@needs_make
def test_make_benchmark_installs_the_edge_and_plot_extras_and_runs_the_latency_benchmark():
    commands = dry_run("benchmark", "--always-make")
    assert '-m pip install --quiet ".[edge,plot]"' in commands and " -e " not in commands  # a regular install
    assert re.search(r"-m benchmarks\.latency .*--out out/benchmarks", commands)


@needs_make
def test_make_benchmark_installs_again_only_when_the_wheel_inputs_changed(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    os.utime(venv / "bin" / "python", (0, 0))
    stamp = venv / ".edge-installed"
    stamp.touch()
    later = time.time() + 3600
    os.utime(stamp, (later, later))                  # installed after every input's last change
    assert "pip install" not in dry_run("benchmark", f"VENV={venv}")
    os.utime(stamp, (1, 1))                          # pyproject.toml and the sources are newer than the install
    assert '-m pip install --quiet ".[edge,plot]"' in dry_run("benchmark", f"VENV={venv}")


@needs_make
def test_make_test_runs_ruff_and_pytest_and_make_clean_removes_the_build():
    commands = dry_run("test")
    assert "-m ruff check ." in commands and "-m pytest -q" in commands
    removed = dry_run("clean").split()
    assert {".venv", "out", "build", "dist", "*.egg-info", ".pytest_cache"} <= set(removed)


def test_the_benchmark_prints_a_compact_table_and_writes_the_full_one(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.latency", "--runs", "6", "--rounds", "1",
                           "--warmup", "1", "--threads", "1", "--no-peer", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cpu, *lines = done.stdout.splitlines()
    assert cpu.startswith("CPU: ") and "int8 dot product" in cpu     # the CPU decides int8's speed-up
    assert lines[0].split()[:4] == ["model", "variant", "accuracy", "%"]
    variants = [line.split()[:2] for line in lines[1:] if line.startswith("fer")]
    assert ["fer4", "int8"] in variants and ["fer7", "int8"] in variants
    assert all(len(line) <= 100 for line in lines[:len(variants) + 1])
    assert f"full table (p90/p99, faces/s, accuracy against the peer): {tmp_path / 'latency.md'}" in lines
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert len(progress) <= 3 and progress[-1].endswith(" done")
    timed = [line for line in done.stderr.splitlines() if "done in" in line]
    assert len(timed) == 1 and re.fullmatch(r"done in \d+ s on .+", timed[0]), done.stderr  # one time, the total
    result = json.loads((tmp_path / "latency.json").read_text())
    assert {r["variant"] for r in result["rows"]} == {"float32", "int8", "int8+flip", "mobile"}
    assert "p50 / p90 / p99 ms, 1 thread" in (tmp_path / "latency.md").read_text()


def test_every_documented_run_command_parses():
    commands = example_commands(["fer-edge", "run"]) + example_commands(["-m", "edge_runtime"])
    assert len(commands) >= 6
    for args in commands:
        run_parser().parse_args(args)  # exits (fails the test) on an unknown option


def test_every_documented_bench_command_parses():
    commands = example_commands(["fer-edge", "bench"]) + example_commands(["-m", "benchmarks.latency"])
    assert commands
    for args in commands:
        bench_parser().parse_args(args)
