"""A real mobile client: MediaPipe Tasks loads every shipped model's metadata and runs the mobile variants.

MediaPipe runs in its own venv (``make setup-mobile`` -> ``.venv-mobile``; override with
``FER_MOBILE_PYTHON``): it brings ``opencv-contrib-python`` 5, which clashes with the
``opencv-python-headless<5`` of our venv. tests/mediapipe_client.py is the client it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.classifier import ExpressionClassifier
from edge_runtime.model_card import load_card
from edge_runtime.recognizer import FaceRecognizer

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"
CLIENT = Path(__file__).with_name("mediapipe_client.py")
EXAMPLE = ROOT / "examples" / "mediapipe_face_to_expression.py"
MOBILE = sorted(MODELS_DIR.glob("*_mobile.tflite"))
STAMPED = sorted(MODELS_DIR.glob("*.tflite")) + sorted((MODELS_DIR / "baseline").glob("*.tflite"))
MOBILE_PYTHON = Path(os.environ.get("FER_MOBILE_PYTHON", ROOT / ".venv-mobile" / "bin" / "python"))


@pytest.fixture(scope="module")
def mediapipe_python() -> Path:
    """The Python of the venv that has MediaPipe Tasks (skip when it is not set up)."""
    if not MOBILE_PYTHON.is_file():
        pytest.skip(f"no MediaPipe venv at {MOBILE_PYTHON}: run `make setup-mobile` (or set FER_MOBILE_PYTHON)")
    probe = subprocess.run([str(MOBILE_PYTHON), "-c", "import mediapipe.tasks.python.vision"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"{MOBILE_PYTHON} cannot import MediaPipe Tasks: run `make setup-mobile`")
    return MOBILE_PYTHON


def run(python: Path, script: Path, request: dict | None = None, *args: str) -> dict:
    """Run ``script`` with ``python``; its last stdout line is JSON."""
    done = subprocess.run([str(python), str(script), *args], input=json.dumps(request) if request else None,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_there_is_a_mobile_variant_of_every_model():
    families = {p.name[:-len("_int8.tflite")] for p in MODELS_DIR.glob("*_int8.tflite")}
    assert families and {p.name[:-len("_mobile.tflite")] for p in MOBILE} == families


@pytest.mark.parametrize("model", STAMPED, ids=lambda path: path.name)
def test_mediapipe_reads_the_metadata_the_card_states(model: Path, mediapipe_python: Path):
    card = load_card(model)
    meta = run(mediapipe_python, CLIENT, {"metadata": str(model)})
    assert meta["name"] == f"{card.name} {card.variant}"
    assert (meta["author"], meta["license"]) == (card.raw["author"], card.raw["license"])
    assert meta["version"] == card.raw["tflite_metadata"]["version"] and meta["description"]
    assert meta["input_color_space"] == ("RGB" if card.input.channels == 3 else "GRAYSCALE")
    assert meta["output_files"] == [["labels.txt", 2]]          # 2: TENSOR_AXIS_LABELS
    assert meta["output_range"] == [0.0, 1.0]
    if card.input.dtype == "float32":                          # value = (pixel - mean) / std
        low, high = card.input.value_range
        mean, std = meta["normalization"][0][0], meta["normalization"][1][0]
        assert (0 - mean) / std == pytest.approx(low) and (255 - mean) / std == pytest.approx(high)
    else:
        assert meta["normalization"] is None


def _test_faces(data: Path, labels: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    paths, truth = [], []
    for index, label in enumerate(labels):
        files = sorted(str(p) for p in (data / "test" / label).glob("*.jpg"))
        paths += files
        truth += [index] * len(files)
    return paths, np.array(truth)


@pytest.mark.slow
@pytest.mark.parametrize("model", MOBILE, ids=lambda path: path.name)
def test_mediapipe_agrees_with_the_runtime_on_real_test_faces(model: Path, mediapipe_python: Path,
                                                              shared_dir: Path):
    card = load_card(model)
    paths, truth = _test_faces(shared_dir / "data" / "fer2013", card.labels)
    answer = run(mediapipe_python, CLIENT, {"model": str(model), "images": paths})
    assert answer["names"] == list(card.labels), "MediaPipe takes the labels from the model's metadata"
    theirs = np.array(answer["top1"])
    assert [card.labels[i] for i in theirs] == answer["top1_names"]
    classifier = ExpressionClassifier(model, num_threads=2)
    ours = np.array([int(np.argmax(classifier.probabilities(cv2.imread(p, cv2.IMREAD_GRAYSCALE))))
                     for p in paths])
    agreement = float((theirs == ours).mean())
    acc_theirs, acc_ours = float((theirs == truth).mean()), float((ours == truth).mean())
    print(f"\n{model.name}: {len(paths)} FER2013 test faces (folder labels); top-1 agreement "
          f"{agreement:.4f}; accuracy MediaPipe {acc_theirs:.4f}, edge_runtime {acc_ours:.4f}", file=sys.stderr)
    assert agreement >= 0.99
    assert abs(acc_theirs - acc_ours) <= 0.005


@pytest.mark.slow
def test_example_finds_both_faces_and_agrees_with_the_runtime(mediapipe_python: Path, shared_dir: Path):
    photo = shared_dir / "media" / "photos" / "obama_and_biden.jpg"
    model = MODELS_DIR / "fer4_mobile.tflite"
    if not model.is_file():
        pytest.skip(f"{model} is not there")
    result = run(mediapipe_python, EXAMPLE, None, str(photo), "--model", str(model))
    faces = result["faces"]
    assert len(faces) == 2, faces
    recognizer = FaceRecognizer(model, num_threads=2)
    ours = sorted(recognizer.recognize(cv2.imread(str(photo))), key=lambda face: face.box[0])
    assert len(ours) == 2
    for theirs, mine in zip(faces, ours, strict=True):
        (x, y, w, h), (mx, my, mw, mh) = theirs["box"], mine.box
        ix = max(0, min(x + w, mx + mw) - max(x, mx))
        iy = max(0, min(y + h, my + mh) - max(y, my))
        inter = ix * iy
        assert inter / (w * h + mw * mh - inter) > 0.3, (theirs["box"], mine.box)
        assert theirs["expression"] in load_card(model).labels
