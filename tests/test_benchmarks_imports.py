"""``fer-edge bench`` on a device: ``benchmarks.latency`` loads nothing from train/ or convert/, nor TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.edge_support import ROOT

HEAVY = ("train", "convert", "tensorflow", "keras")


def loaded_packages(statement: str) -> list[str]:
    """The top-level packages of ``HEAVY`` that ``statement`` loads, in a fresh interpreter."""
    code = (f"import json, sys; {statement}; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_latency_benchmark_loads_no_training_or_conversion_code():
    assert loaded_packages("import benchmarks.latency") == []


def test_the_shared_face_data_loads_no_training_code():
    assert loaded_packages("import benchmarks.accuracy, edge_runtime.labelled_faces.scoring") == []


def test_the_check_sees_a_training_module():
    """The check itself: importing train's label code is reported."""
    assert loaded_packages("import train.label_sources") == ["train"]
