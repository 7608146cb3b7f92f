"""Real mobile clients: MediaPipe Tasks (Python and Web) and the TFLite Task Library read every shipped model's metadata
and run the mobile variants, agreeing with the runtime on the FER2013 test faces.

Each runs in a venv of its own. MediaPipe (``make setup-mobile`` -> ``.venv-mobile``, or
``FER_MOBILE_PYTHON``) brings ``opencv-contrib-python`` 5, which clashes with the
``opencv-python-headless<5`` of our venv; tests/mediapipe_client.py is the client it runs. tflite-support
(``make setup-tasklib`` -> ``.venv-tasklib``, or ``FER_TASKLIB_PYTHON``; it needs the system library
libusb-1.0-0) pins protobuf 3.20, which clashes with TensorFlow's; tests/tasklib_client.py is its client.
MediaPipe for Web (``@mediapipe/tasks-vision``, ``make setup-web``) runs in headless Chromium
(tests/web_client.py).
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

from edge_runtime.model.card import load_card
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.recognition.recognizer import FaceRecognizer
from tests import web_client

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"
CLIENT = Path(__file__).with_name("mediapipe_client.py")
TASKLIB_CLIENT = Path(__file__).with_name("tasklib_client.py")
EXAMPLE = ROOT / "examples" / "mediapipe_face_to_expression.py"
MOBILE = sorted(MODELS_DIR.glob("*_mobile.tflite"))
STAMPED = sorted(MODELS_DIR.glob("*.tflite")) + sorted((MODELS_DIR / "baseline").glob("*.tflite"))
MOBILE_PYTHON = Path(os.environ.get("FER_MOBILE_PYTHON", ROOT / ".venv-mobile" / "bin" / "python"))
TASKLIB_PYTHON = Path(os.environ.get("FER_TASKLIB_PYTHON", ROOT / ".venv-tasklib" / "bin" / "python"))


def client_python(python: Path, module: str, setup: str) -> Path:
    """``python`` if it can import ``module``, else skip naming the set-up command."""
    if not python.is_file():
        pytest.skip(f"no venv at {python}: run `{setup}`")
    probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import {module} ({probe.stderr.strip().splitlines()[-1:]}): run `{setup}`")
    return python


@pytest.fixture(scope="module")
def mediapipe_python() -> Path:
    """The Python of the venv that has MediaPipe Tasks (skip when it is not set up)."""
    return client_python(MOBILE_PYTHON, "mediapipe.tasks.python.vision", "make setup-mobile")


@pytest.fixture(scope="module")
def tasklib_python() -> Path:
    """The Python of the venv that has tflite-support's Task Library (skip when it is not set up)."""
    return client_python(TASKLIB_PYTHON, "tflite_support.task.vision",
                         "make setup-tasklib (needs `apt-get install libusb-1.0-0`)")


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
    assert (meta["author"], meta["license"]) == (card.author, card.license)
    assert meta["version"] == card.tflite_metadata["version"] and meta["description"]
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


def check_agreement(client: str, model: Path, shared: Path, top1_of) -> None:
    """The client's top-1 on every test face of the model's classes against the runtime's.

    ``top1_of(paths, faces)`` is the client's answer: category names by index and top-1 indices.
    """
    card = load_card(model)
    paths, truth = _test_faces(shared / "data" / "fer2013", card.labels)
    faces = np.stack([cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in paths])
    answer = top1_of(paths, faces)
    assert answer["names"] == list(card.labels), "the client takes the labels from the model's metadata"
    theirs = np.array(answer["top1"])
    classifier = ExpressionClassifier(model, num_threads=2)
    ours = np.array([int(np.argmax(classifier.probabilities(face))) for face in faces])
    agreement = float((theirs == ours).mean())
    acc_theirs, acc_ours = float((theirs == truth).mean()), float((ours == truth).mean())
    print(f"\n{client} {model.name}: {len(paths)} FER2013 test faces (folder labels); top-1 agreement "
          f"{agreement:.4f}; accuracy client {acc_theirs:.4f}, edge_runtime {acc_ours:.4f}", file=sys.stderr)
    assert agreement >= 0.99
    assert abs(acc_theirs - acc_ours) <= 0.005


@pytest.mark.slow
@pytest.mark.parametrize("model", MOBILE, ids=lambda path: path.name)
def test_mediapipe_agrees_with_the_runtime_on_real_test_faces(model: Path, mediapipe_python: Path,
                                                              shared_dir: Path):
    check_agreement("mediapipe", model, shared_dir,
                    lambda paths, _: run(mediapipe_python, CLIENT, {"model": str(model), "images": paths}))


@pytest.mark.slow
@pytest.mark.parametrize("model", MOBILE, ids=lambda path: path.name)
def test_task_library_agrees_with_the_runtime_on_real_test_faces(model: Path, tasklib_python: Path,
                                                                 shared_dir: Path):
    check_agreement("task-library", model, shared_dir,
                    lambda paths, _: run(tasklib_python, TASKLIB_CLIENT, {"model": str(model), "images": paths}))


@pytest.mark.slow
@pytest.mark.parametrize("model", MOBILE, ids=lambda path: path.name)
def test_mediapipe_for_web_in_chromium_agrees_with_the_runtime(model: Path, shared_dir: Path):
    if web_client.chromium() is None or not web_client.PACKAGE.is_dir():
        pytest.skip("MediaPipe for Web needs Chromium (apt-get install chromium) and `make setup-web`")
    check_agreement("web", model, shared_dir, lambda _, faces: web_client.classify_in_browser(model, faces))


def test_tflite_support_reads_every_models_metadata(tasklib_python: Path):
    answer = run(tasklib_python, TASKLIB_CLIENT, {"metadata": [str(p) for p in STAMPED]})
    for path in STAMPED:
        card, got = load_card(path), answer[str(path)]
        assert got["files"] == ["labels.txt"] and got["labels"] == list(card.labels), path.name
        meta = got["metadata"]
        assert meta["name"] == f"{card.name} {card.variant}" and meta["license"] == card.license
        tensor = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]
        color = tensor["content"]["content_properties"]["color_space"]
        assert color == ("RGB" if card.input.channels == 3 else "GRAYSCALE"), path.name


@pytest.mark.slow
def test_example_finds_both_faces_and_the_runtimes_expressions(mediapipe_python: Path, shared_dir: Path):
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
        assert theirs["expression"] == mine.label, (theirs, mine.label)


@pytest.mark.slow
def test_example_prints_only_its_json_and_the_native_logs_on_request(mediapipe_python: Path, shared_dir: Path):
    """MediaPipe's native start-up lines (written to fd 2 by C++) are silenced; ``--native-logs`` shows them."""
    photo = shared_dir / "media" / "photos" / "obama_and_biden.jpg"
    quiet = subprocess.run([str(mediapipe_python), str(EXAMPLE), str(photo)], capture_output=True, text=True,
                           timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stderr == ""
    (line,) = quiet.stdout.splitlines()
    assert json.loads(line)["image"] == str(photo)
    loud = subprocess.run([str(mediapipe_python), str(EXAMPLE), str(photo), "--native-logs"], capture_output=True,
                          text=True, timeout=600)
    assert loud.returncode == 0 and loud.stdout == quiet.stdout
    assert "XNNPACK" in loud.stderr, "the check above would pass on a MediaPipe that logs nothing"
    missing = subprocess.run([str(mediapipe_python), str(EXAMPLE), str(photo), "--model", "/nonexistent.tflite"],
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and missing.stderr.strip() == "error: /nonexistent.tflite not found"
