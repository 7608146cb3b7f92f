"""The edge runtime on emulated aarch64 (Raspberry Pi 4 and Pi 5 CPUs) gives the same answers as on x86.

The end-to-end check (tools/arm64, ``python -m tools.arm64``) needs ../shared, root (to build the emulated Python
the first time) and the package archives; it skips with the reason otherwise. The other tests check
the comparison rules and the device pins, and run anywhere.
"""

from __future__ import annotations

import copy
import os
import tomllib

import numpy as np
import pytest

from edge_runtime.paths import shared_dir
from tests.edge_support import ROOT
from tools.arm64 import build, check, compare, options, report, settings

pytestmark = pytest.mark.arm64

STEP = 1 / 256


def record(box=(10, 20, 30, 30), label="happy", happy=0.7500, sad=0.2500, score=8.5, frame=0):
    return {"source": "a.jpg", "frame": frame, "faces": [
        {"box": list(box), "label": label, "scores": {"happy": happy, "sad": sad}, "detector_score": score}]}


def test_identical_records_count_as_identical():
    result = compare.compare_records([record()], [record()], STEP, "t")
    assert (result["faces"], result["identical"], result["within_tolerance"]) == (1, 1, 1)
    assert result["problems"] == []


def test_one_pixel_and_one_step_are_within_tolerance_but_not_identical():
    other = record(box=(11, 20, 30, 29), happy=0.7461, sad=0.2539)  # one int8 step, rounded to 4 decimals
    result = compare.compare_records([record()], [other], STEP, "t")
    assert (result["identical"], result["within_tolerance"], result["max_box_px"]) == (0, 1, 1)
    assert result["max_score_steps"] == pytest.approx(1.0, abs=0.03)
    assert result["problems"] == []


@pytest.mark.parametrize("other, why", [
    (record(box=(12, 20, 30, 30)), "2 px"),
    (record(label="sad"), "label"),
    (record(happy=0.7422, sad=0.2578), "2 steps"),
    (record(score=8.7), "detector score"),
])
def test_differences_beyond_tolerance_are_reported(other, why):
    result = compare.compare_records([record()], [other], STEP, "t")
    assert result["within_tolerance"] == 0, why
    assert len(result["problems"]) == 1 and "x86" in result["problems"][0]


def test_missing_faces_and_frames_are_reported_and_faces_are_paired_by_box():
    two = record()
    two["faces"].append({**two["faces"][0], "box": [200, 20, 30, 30]})
    swapped = copy.deepcopy(two)
    swapped["faces"].reverse()  # the same faces in another order: not a difference
    assert compare.compare_records([two], [swapped], STEP, "t")["identical"] == 2
    assert compare.compare_records([two], [record()], STEP, "t")["problems"]
    assert compare.compare_records([record(), record(frame=1)], [record()], STEP, "t")["problems"]


def test_frames_decoded_differently_are_judged_by_overlap_and_label_unless_the_box_moved():
    face = record(box=(10, 20, 60, 60))
    shifted = record(box=(12, 22, 60, 60), happy=0.70, sad=0.30, score=9.9)  # 2 px, 12 steps, other weight
    result = compare.compare_records([face], [shifted], STEP, "t", pixels_differ=lambda rec: True)
    decoded = result["decoded_differently"]
    assert result["faces"] == 0 and (decoded["faces"], decoded["within_tolerance"]) == (1, 1)
    assert decoded["max_box_px"] == 2 and decoded["max_score_steps"] > 10 and result["problems"] == []
    far = record(box=(20, 30, 60, 60))  # IoU 0.53: not the same face
    assert compare.compare_records([face], [far], STEP, "t", pixels_differ=lambda rec: True)["problems"]
    flipped = record(label="sad", box=(10, 20, 60, 60))  # same box, other label: the pixels alone flipped it
    assert compare.compare_records([face], [flipped], STEP, "t", pixels_differ=lambda rec: True)["problems"]
    # A box that moved is another crop: a flipped near tie is counted, not a problem.
    moved = record(box=(10, 20, 61, 61), label="sad", happy=0.45, sad=0.55)
    result = compare.compare_records([face], [moved], STEP, "t", pixels_differ=lambda rec: True)
    assert result["problems"] == [] and result["decoded_differently"]["label_flips_box_moved"] == 1
    assert not result["decoded_differently"]["labels_equal"]
    # On identical pixels a label flip is always a problem, moved box or not.
    assert compare.compare_records([face], [moved], STEP, "t")["problems"]


def test_compare_arrays_counts_identical_and_measures_differences():
    a = {"s|1": np.arange(6, dtype=np.int8), "s|2": np.zeros(3, np.float32), "t|1": np.ones((2, 5))}
    b = {"s|1": np.arange(6, dtype=np.int8), "s|2": np.array([0, 0.5, 0], np.float32), "t|1": np.ones((1, 5))}
    stages = compare.compare_arrays(a, b)
    assert stages["s"]["items"] == 2 and stages["s"]["identical"] == 1
    assert stages["s"]["max_abs_diff"] == 0.5 and stages["s"]["elements_differing"] == 1
    assert stages["t"]["shape_differs"] == 1 and stages["t"]["identical"] == 0


def test_page_size_check_reads_the_build_scripts_verdict(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("    16K-page check (Pi 5): 12 LOAD segments, 1 files not 16K-compatible\n"
                   "      NOT 16K-OK: /x/site/bad.so\n")
    assert build.page_size_check(log) == {"load_segments": 12, "files_not_16k_compatible": 1,
                                                "not_ok": ["/x/site/bad.so"]}
    assert build.page_size_check(tmp_path / "missing.log") is None


def test_device_pins_match_pyproject_edge_extra():
    requirements = build.edge_requirements()
    assert {r.split(">")[0].split("=")[0].split(";")[0].strip() for r in requirements} >= {"numpy"}
    assert build.pin_problems(requirements, settings.PINS_FILE.read_text()) == []
    mqtt = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["mqtt"]
    assert build.pin_problems(mqtt, settings.PINS_FILE.read_text()) == [], "the mqtt extra is pinned too"


def test_device_pins_are_complete_over_the_installed_dependency_tree():
    """Every dependency of a pinned package is pinned (read from the installed packages' metadata)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = build.parse_pins(settings.PINS_FILE.read_text())
    assert {"protobuf", "ml-dtypes", "flatbuffers", "tqdm", "paho-mqtt"} <= set(pins)
    environment = {"python_version": "3.11", "python_full_version": "3.11.2", "platform_machine": "aarch64",
                   "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    checked, missing = 0, []
    for name in pins:
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        checked += 1
        for text in needs:
            req = Requirement(text)
            if (req.marker is None or req.marker.evaluate(environment)) and canonicalize_name(req.name) not in pins:
                missing.append(f"{name} needs {text}")
    if not checked:
        pytest.skip("none of the pinned packages is installed here (pip install -e '.[edge,mqtt]')")
    assert not missing, missing


def test_pin_problems_catch_a_pin_outside_the_range_a_missing_pin_and_a_loose_one():
    requirements = ["numpy>=1.24", "opencv-python-headless>=4.8,<5"]
    assert build.pin_problems(requirements, "numpy==2.0.0\nopencv-python-headless==4.10.0.84\n") == []
    problems = build.pin_problems(requirements, "numpy==1.21.0\nopencv_python_headless==5.0.0\n")
    assert len(problems) == 2 and "numpy==1.21.0" in problems[0]
    assert "has no pin" in build.pin_problems(requirements, "numpy==2.0.0\n")[0]
    assert "pin it with ==" in build.pin_problems(requirements, "numpy>=2\nopencv-python-headless==4.9\n")[0]


@pytest.mark.slow
def test_edge_runtime_on_emulated_pi4_and_pi5_gives_the_same_answers_as_x86(pipeline_model, tmp_path):
    shared = shared_dir()
    if not (shared / "media").is_dir():
        pytest.skip(f"../shared not found at {shared} (set FER_SHARED to its path to run the arm64 check)")
    if os.geteuid() != 0 and not (build.default_arm64_dir() / "py" / "py-arm64").is_file():
        pytest.skip("not root: building the emulated aarch64 Python needs apt-get (run as root, or set "
                    "FER_ARM64_DIR to a finished build)")
    opts = options.CheckOptions(model=pipeline_model, workdir=tmp_path / "runs",
                                    summary=tmp_path / "arm64-summary.json", shared=shared)
    try:
        summary = check.run_check(opts, log=lambda message: print(message, flush=True))
    except settings.CheckUnavailable as exc:
        pytest.skip(str(exc))
    print(report.format_summary(summary))
    print(f"summary: {opts.summary}")
    assert opts.summary.is_file()
    assert summary["ok"], "\n".join(summary["problems"])
    for side in ("pi4", "pi5"):
        entry = summary["sides"][side]
        assert entry["facts"]["machine"] == "aarch64" and entry["facts"]["runtime"] == "ai_edge_litert"
        assert not entry["facts"]["tensorflow_installed"] and not entry["facts"]["tensorflow_imported"]
        for detector in settings.DETECTORS:
            result = entry["daemon"][detector]
            assert result["faces"] >= 4, f"{side} {detector}: too few faces to compare ({result['faces']})"
            frames = result["frames"] + result["decoded_differently"]["frames"]
            assert frames == len(opts.photos) + opts.frames, f"{side} {detector}: {frames} frames compared"
            assert result["within_tolerance"] == result["faces"] and result["labels_equal"]
