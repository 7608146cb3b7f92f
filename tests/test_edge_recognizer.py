"""FaceRecognizer and ExpressionClassifier: model + card loading, checks, consistent answers, any frame."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from edge_runtime import FaceRecognizer, ModelError
from edge_runtime.model.card import ModelCardError
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.recognition.recognizer import RecognizeTrace
from tests.edge_support import PHOTOS, copy_model, need


@pytest.fixture(scope="module")
def recognizer(tiny_model) -> FaceRecognizer:
    return FaceRecognizer(tiny_model, num_threads=1)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(need(PHOTOS / "two_people.jpg")))


def test_labels_and_input_come_from_the_card(recognizer, tiny_model):
    assert recognizer.labels == ("happy", "neutral", "sad", "surprise")
    assert recognizer.card.input.height == 48 and recognizer.card.path == tiny_model.with_suffix(".json")
    assert recognizer.runtime_name == "ai_edge_litert"


def test_runtime_choice_and_threads_are_logged(tiny_model, caplog):
    with caplog.at_level(logging.INFO, logger="edge_runtime"):
        FaceRecognizer(tiny_model, num_threads=1)
    assert "ai_edge_litert" in caplog.text and "threads=1" in caplog.text


def reference_probabilities(model_path, crop: np.ndarray) -> np.ndarray:
    """The model's probabilities for a grayscale crop, computed without edge_runtime: OpenCV resize,
    quantization from the card's JSON, a plain LiteRT interpreter."""
    import json

    from ai_edge_litert.interpreter import Interpreter

    card = json.loads(model_path.with_suffix(".json").read_text())
    size = (card["input"]["width"], card["input"]["height"])
    shrinking = crop.shape[1] > size[0] or crop.shape[0] > size[1]
    pixels = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    q_in, q_out = card["input"]["quantization"], card["output"]["quantization"]
    tensor = np.clip(np.round(pixels.astype(np.float64) / q_in["scale"]) + q_in["zero_point"], -128, 127)
    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor.astype(np.int8)[None, :, :, None])
    interpreter.invoke()
    raw = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    return (raw.astype(np.float64) - q_out["zero_point"]) * q_out["scale"]


def test_same_answer_alone_in_a_batch_and_via_recognize(recognizer, photo, tiny_model):
    faces = recognizer.recognize(photo)
    assert len(faces) == 2
    crops = [recognizer.crop(photo, face.box) for face in faces]
    alone = [recognizer.classify_face(crop) for crop in crops]
    batch = recognizer.classify_faces([crops[1], crops[0], crops[1]])
    expected = [reference_probabilities(tiny_model, crops[i]) for i in (1, 0, 1)]
    for expression, reference in zip(batch, expected, strict=True):
        np.testing.assert_allclose([expression.scores[k] for k in recognizer.labels], reference, atol=1e-6)
    for face, expression in zip(faces, alone, strict=True):
        assert face.scores == expression.scores and face.label == expression.label
        assert set(face.scores) == set(recognizer.labels)
        assert abs(sum(face.scores.values()) - 1.0) < 0.05
        assert face.label == max(face.scores, key=face.scores.get)
    assert faces[0].scores != faces[1].scores  # different faces, different answers


def test_trace_hands_back_the_detections_crops_and_stage_times(recognizer, photo):
    trace = RecognizeTrace()
    timings: dict[str, float] = {}
    faces = recognizer.recognize(photo, timings, trace=trace)
    assert len(trace.detections) >= len(faces) == len(trace.crops) == 2
    for face, crop in zip(faces, trace.crops.values(), strict=True):
        assert np.array_equal(crop, recognizer.crop(photo, face.box))
    assert set(trace.stage_ns) == {"preprocess", "detect", "crop", "classify"}
    assert all(ns >= 0 for ns in trace.stage_ns.values())
    assert timings["classify"] * 1e6 == pytest.approx(trace.stage_ns["crop"] + trace.stage_ns["classify"], abs=1)
    assert timings["detect"] * 1e6 == pytest.approx(trace.stage_ns["detect"], abs=1)


def test_int8_and_float32_variants_agree(tiny_models, photo):
    int8 = FaceRecognizer(tiny_models["int8"], num_threads=1)
    float32 = FaceRecognizer(tiny_models["float32"], num_threads=1)
    crop = int8.crop(photo, int8.recognize(photo)[0].box)
    a = np.array(list(int8.classify_face(crop).scores.values()))
    b = np.array(list(float32.classify_face(crop).scores.values()))
    assert np.abs(a - b).max() < 0.03, (a, b)


def test_bgr_and_bgra_frames_and_both_grayscale_layouts_give_the_same_faces(recognizer, photo):
    # BlazeFace (the default) sees colour where the frame has it, so colour and gray frames are
    # compared among themselves; Haar sees gray only, so all four layouts agree with it.
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    haar = FaceRecognizer(recognizer.classifier.model_path, detector="haar")
    for rec, groups in ((recognizer, [(photo, cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)), (gray, gray[:, :, None])]),
                        (haar, [(photo, cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA), gray, gray[:, :, None])])):
        for frames in groups:
            results = [rec.recognize(frame) for frame in frames]
            assert len(results[0]) == 2
            for other in results[1:]:
                assert [(f.box, f.scores) for f in other] == [(f.box, f.scores) for f in results[0]]


@pytest.mark.parametrize("shape", [(1, 1), (3, 5, 3), (20, 20, 4), (47, 48), (2, 900)])
def test_tiny_frames_give_no_faces_and_no_error(recognizer, shape):
    assert recognizer.recognize(np.full(shape, 128, np.uint8)) == []
    assert recognizer.classify_face(np.full(shape, 128, np.uint8)).label in recognizer.labels


def test_huge_frames_are_detected_on_a_downscaled_copy(recognizer, photo):
    huge = cv2.resize(photo, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)  # 4504x2644
    faces = recognizer.recognize(huge)
    small = recognizer.recognize(photo)
    assert len(faces) == len(small) == 2
    for big, ref in zip(sorted(faces, key=lambda f: f.box), sorted(small, key=lambda f: f.box), strict=True):
        tolerance = 0.05 * 4 * ref.box[2]
        assert all(abs(b - 4 * r) <= tolerance for b, r in zip(big.box, ref.box, strict=True)), big.box


def test_min_confidence_turns_unsure_labels_into_none(tiny_model, photo):
    unsure = FaceRecognizer(tiny_model, num_threads=1, min_confidence=0.99)
    faces = unsure.recognize(photo)
    assert faces and all(face.label is None for face in faces)
    assert faces[0].to_dict()["label"] is None


def test_margin_precedence_argument_card_detector_default(tiny_model, tmp_path):
    assert FaceRecognizer(tiny_model).margin == 0.05  # the measured default
    assert FaceRecognizer(tiny_model, margin=0.2).margin == 0.2
    edited = copy_model(tiny_model, tmp_path, lambda c: c.update(face_crop={"margin": 0.15}))
    assert FaceRecognizer(edited).margin == 0.15
    per = copy_model(tiny_model, tmp_path / "per",
                     lambda c: c.update(face_crop={"margin": 0.15, "by_detector": {"blazeface": 0.05}}))
    assert FaceRecognizer(per).margin == 0.05
    with pytest.raises(ValueError, match="margin"):
        FaceRecognizer(tiny_model, margin=-0.1)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match=r"not found.*--model"):
        FaceRecognizer(tmp_path / "nope.tflite")


def test_missing_default_model_tells_the_user_to_pass_model(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_MODELS", str(tmp_path / "models"))  # the default model is looked up on use
    with pytest.raises(ModelError, match=r"fer4_int8.tflite does not exist yet.*pass --model"):
        ExpressionClassifier()


def test_missing_card_is_a_clear_error(tiny_model, tmp_path):
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelCardError, match="card .* not found"):
        FaceRecognizer(lone)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(labels=["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]),
     "4 outputs, the card lists 7 labels"),
    (lambda c: c["input"].update(height=64, width=64), "input shape"),
    (lambda c: c["input"]["quantization"].update(zero_point=0), "input quantization"),
    (lambda c: c["input"].update(dtype="float32"), "input dtype"),
    (lambda c: c["output"]["quantization"].update(scale=0.5), "output quantization"),
    (lambda c: c.update(sha256="0" * 64), "sha256"),
])
def test_a_card_that_does_not_match_its_model_is_refused(tiny_model, tmp_path, edit, message):
    model = copy_model(tiny_model, tmp_path, edit)
    with pytest.raises(ModelError, match="does not match its card") as info:
        FaceRecognizer(model)
    assert message in str(info.value)


def test_a_file_that_is_not_a_model_is_refused(tiny_model, tmp_path):
    bogus = copy_model(tiny_model, tmp_path, lambda c: c.pop("sha256"))
    bogus.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="cannot load model"):
        FaceRecognizer(bogus)


def test_flip_tta_averages_the_face_and_its_mirror_image(tiny_model, photo):
    flipping = FaceRecognizer(tiny_model, num_threads=1, tta="flip")
    faces = flipping.recognize(photo)
    assert len(faces) == 2
    for face in faces:
        crop = cv2.resize(flipping.crop(photo, face.box), (48, 48), interpolation=cv2.INTER_AREA)
        expected = (reference_probabilities(tiny_model, crop) + reference_probabilities(tiny_model, crop[:, ::-1])) / 2
        np.testing.assert_allclose([face.scores[k] for k in flipping.labels], expected, atol=1e-6)
        mirrored = flipping.classify_face(np.ascontiguousarray(crop[:, ::-1]))
        np.testing.assert_allclose(list(mirrored.scores.values()), list(face.scores.values()), atol=1e-6)


def test_flip_tta_on_an_ensemble_runs_each_face_once(photo, caplog):
    """fer4_accurate averages the mirror image inside its graph: a second run would change nothing."""
    from edge_runtime.model.classifier import ExpressionClassifier

    once = ExpressionClassifier("fer4_accurate", num_threads=1)
    flipping = ExpressionClassifier("fer4_accurate", num_threads=1, tta="flip")
    assert flipping.tta == "none" and "already averages each face with its mirror image" in caplog.text
    crop = cv2.resize(photo[:200, :200], (48, 48), interpolation=cv2.INTER_AREA)
    flipped = (once.probabilities(crop) + once.probabilities(np.ascontiguousarray(crop[:, ::-1]))) / 2
    np.testing.assert_allclose(flipping.probabilities(crop), flipped, atol=0.02)   # what a second run would give
    assert ExpressionClassifier(tta="flip").tta == "flip"               # a single model still flips


def test_unknown_tta_is_refused(tiny_model):
    with pytest.raises(ValueError, match="tta 'rotate': choose one of none, flip"):
        FaceRecognizer(tiny_model, num_threads=1, tta="rotate")
