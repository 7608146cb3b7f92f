"""convert.mobile: the tiny model's mobile variant (uint8 RGB in, uint8 probabilities out), checked with LiteRT."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from edge_runtime.model.card import load_card
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.model.contract import check_card
from edge_runtime.model.litert import make_interpreter
from edge_runtime.model.metadata import embedded_labels
from tests.convert_support import LABELS, load_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mobile(converted, tmp_path_factory):
    """The tiny model's mobile variant, written beside a copy of its int8 variant."""
    from convert.conversion import Options
    from convert.mobile import convert_mobile

    out = tmp_path_factory.mktemp("mobile_out")
    for suffix in (".tflite", ".json"):
        shutil.copy(converted.out / f"tiny_int8{suffix}", out)
    card = convert_mobile(converted.model, converted.data, out,
                          Options(calibration_samples=64, max_int8_drop_pt=5.0))
    return out, card


def _run(path, x: np.ndarray) -> np.ndarray:
    interpreter = make_interpreter(str(path), num_threads=1)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    scale, zero = out["quantization"]
    return (interpreter.get_tensor(out["index"]).astype(np.float32) - zero) * scale


def test_mobile_takes_uint8_rgb_pixels_and_returns_uint8_probabilities(mobile):
    out, card = mobile
    interpreter = make_interpreter(str(out / "tiny_mobile.tflite"), num_threads=1)
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape"]) == [1, 48, 48, 3] and inp["dtype"] == np.uint8
    assert inp["quantization"] == (1.0, 0), "MediaPipe feeds raw pixels"
    assert outp["dtype"] == np.uint8 and list(outp["shape"]) == [1, len(LABELS)]
    parsed = load_card(out / "tiny_mobile.json")
    assert parsed.variant == "mobile" and (parsed.input.channels, parsed.input.color) == (3, "rgb")
    assert check_card(parsed, interpreter, parsed.model_path) == []
    assert embedded_labels(parsed.model_path) == LABELS


def test_mobile_agrees_with_int8_on_the_test_faces(mobile, converted):
    out, _ = mobile
    images, labels = load_folder(converted.data, "test")
    mobile_top1 = [int(np.argmax(_run(out / "tiny_mobile.tflite", cv2.cvtColor(im, cv2.COLOR_GRAY2RGB)[None])))
                   for im in images]
    int8_top1 = [int(np.argmax(_run(out / "tiny_int8.tflite", (im.astype(np.int16) - 128).astype(np.int8)[None,
                                                                                                      ..., None])))
                 for im in images]
    agreement = np.mean(np.array(mobile_top1) == np.array(int8_top1))
    assert agreement >= 0.9
    assert abs(np.mean(np.array(mobile_top1) == labels) - np.mean(np.array(int8_top1) == labels)) <= 0.1


def test_colour_is_weighted_like_bt601_grey(mobile):
    """A colour face scores like its BT.601 grey (0.299 R + 0.587 G + 0.114 B) in the int8 variant."""
    out, _ = mobile
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    grey = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    mobile_scores = _run(out / "tiny_mobile.tflite", rgb[None])
    int8_scores = _run(out / "tiny_int8.tflite", (grey - 128).astype(np.int8)[None, ..., None])
    assert np.abs(mobile_scores - int8_scores).max() <= 0.08


def test_runtime_classifies_a_bgr_crop_with_the_mobile_variant(mobile):
    out, _ = mobile
    classifier = ExpressionClassifier(out / "tiny_mobile.tflite", num_threads=1)
    scores = classifier.probabilities(np.full((60, 60, 3), 128, np.uint8))
    assert scores.shape == (len(LABELS),) and abs(float(scores.sum()) - 1) < 0.02


def test_cli_gives_one_error_line_for_a_missing_model(tmp_path, capsys):
    from convert.mobile import main

    assert main(["--model", str(tmp_path / "missing.keras"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m convert.mobile: error: ") and "missing.keras" in err[0]
