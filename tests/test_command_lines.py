"""Every command line of the package, run for real: a bad option is one ``error:`` line and exit code 2
(no usage block, no traceback, nothing on stdout), before any model or data is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks import latency

ROOT = Path(__file__).resolve().parents[1]

#: ``python -m MODULE ARGS`` with one mistake each: an option the parser rejects, or one the command checks.
MISTAKES = [
    ("train", "--epochs", "x"),
    ("train.evaluate", "--model", "m.keras", "--data", "d", "--bogus"),
    ("convert", "--bogus"),
    ("convert.mobile", "--model", "m.keras", "--threads", "x"),
    ("convert.metadata", "--log-level", "loud", "m.tflite"),
    ("benchmarks.latency", "--threads", "0"),
    ("benchmarks.camera_pipeline", "--warmup-frames", "x"),
    ("benchmarks.labels", "--model", "m.keras", "--threads", "x"),
    ("benchmarks.interpolation", "--start", "a.keras", "--end", "b.keras", "--data", "d", "--guard-margin", "x"),
    ("benchmarks.detectors", "--input", "sepia"),
    ("benchmarks.crop_margin", "--border", "x"),
    ("benchmarks.alignment", "--angles", "left"),
    ("benchmarks.yuv_cost", "--size", "641x480"),
    ("benchmarks.mqtt_rate", "--device", "hall", "--seconds", "soon"),
    ("tools.arm64", "--jobs", "x"),
    ("tools.arm64", "probe", "--frames", "x"),
]


def run(command: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Every command of :data:`MISTAKES`, run two at a time (each is a fresh Python)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(MISTAKES, pool.map(run, MISTAKES), strict=True))


@pytest.mark.parametrize("command", MISTAKES, ids=" ".join)
def test_a_bad_option_is_one_error_line_and_exit_2(command, results):
    done = results[command]
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "error:" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "usage:" not in done.stderr and not done.stdout


@pytest.mark.parametrize("command", [c for c in MISTAKES if c != ("benchmarks.latency", "--threads", "0")],
                         ids=" ".join)
def test_a_parser_error_names_the_command_and_its_help(command, results):
    module = command[0] + (" probe" if command[1:2] == ("probe",) else "")
    line = results[command].stderr.strip()
    assert line.startswith(f"python -m {module}: error: ") and line.endswith(f"(see python -m {module} --help)")


def test_an_option_the_command_checks_is_its_own_error_line(results):
    line = results[("benchmarks.latency", "--threads", "0")].stderr.strip()
    assert line == "python -m benchmarks.latency: error: --threads '0': thread counts must be 1 or more"


def test_the_latency_benchmark_speaks_as_the_command_that_ran_it(capsys):
    with pytest.raises(SystemExit) as exited:
        latency.main(["--runs", "x"], prog="fer-edge bench")
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("fer-edge bench: error: argument --runs: invalid int value: 'x' "
                                       "(see fer-edge bench --help)\n")
    assert latency.build_parser().prog == "python -m benchmarks.latency"


def test_fer_edge_run_names_itself_in_its_error_lines(capsys):
    from edge_runtime.service import console

    assert console.main(["run", "--source", "photo.jpg", "--max-fps", "0"]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert line == "fer-edge run: error: --max-fps must be > 0 (got 0)"
    with pytest.raises(SystemExit) as exit_info:
        console.main(["run", "--source", "photo.jpg", "--max-fps", "fast"])
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert exit_info.value.code == 2 and line.startswith("fer-edge run: error: argument --max-fps: invalid float")
    assert line.endswith("(see fer-edge run --help)")
