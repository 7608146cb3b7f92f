"""convert/: a tiny Keras model, trained in the test session, converted to the four variants;
the written .tflite files and cards are checked with LiteRT, independently of convert's own code."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from convert import verify
from edge_runtime.model.card import Quantization, card_text, load_card
from edge_runtime.model.litert import make_interpreter
from edge_runtime.model.metadata import embedded_labels
from tests.convert_support import LABELS, TEST_PER_CLASS, TRAIN_PER_CLASS, load_folder
from tests.model_support import run_card

pytestmark = pytest.mark.slow
VARIANTS = ("float32", "float16", "dynamic", "int8")


def run_one_by_one(model_path, images: np.ndarray) -> np.ndarray:
    """Probabilities from the .tflite, one image at a time, quantizing as the card's reader would."""
    interpreter = make_interpreter(str(model_path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    probs = []
    for image in images:
        x = image[None, ..., None].astype(np.float32)
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0].astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        probs.append(y)
    return np.array(probs)


def test_writes_four_variants_each_with_its_card(converted):
    names = sorted(p.name for p in converted.out.iterdir())
    assert names == sorted([f"tiny_{v}.tflite" for v in VARIANTS] + [f"tiny_{v}.json" for v in VARIANTS])
    assert [c.variant for c in converted.cards] == list(VARIANTS)
    for card in converted.cards:                         # the cards returned are the cards written
        assert card_text(card) == card.path.read_text() and card.path.parent == converted.out


def test_int8_has_int8_input_and_output_tensors(converted):
    interpreter = make_interpreter(str(converted.out / "tiny_int8.tflite"))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert inp["quantization"] == (1.0, -128)            # int8 = pixel - 128
    assert out["quantization"][0] > 0
    for variant in ("float32", "float16", "dynamic"):
        interpreter = make_interpreter(str(converted.out / f"tiny_{variant}.tflite"))
        assert interpreter.get_input_details()[0]["dtype"] == np.float32


@pytest.mark.parametrize("variant", VARIANTS)
def test_card_fields_and_checksums(converted, variant):
    card_path = converted.out / f"tiny_{variant}.json"
    raw = json.loads(card_path.read_text())
    card = load_card(card_path)                          # what the runtime reads
    model_bytes = card.model_path.read_bytes()
    assert raw["schema_version"] == 1 and raw["name"] == "tiny" and raw["variant"] == variant
    assert raw["file"] == f"tiny_{variant}.tflite"
    assert raw["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert raw["size_bytes"] == len(model_bytes)
    assert embedded_labels(card.model_path) == LABELS, "TFLite metadata carries the labels"
    assert raw["source_model"]["file"] == "tiny.keras"
    assert raw["source_model"]["sha256"] == hashlib.sha256(converted.model.read_bytes()).hexdigest()
    assert card.labels == LABELS
    assert (card.input.height, card.input.width, card.input.channels) == (48, 48, 1)
    assert card.input.value_range == (0, 255)
    assert raw["face_crop"] == {"margin": 0.1} and raw["training"]["config"]["arch"] == "tiny-test"
    assert raw["created"] and raw["tools"]["tensorflow"] and raw["tools"]["ai-edge-litert"]
    assert raw["ops"]["counts"]["CONV_2D"] >= 1 and raw["ops"]["not_builtin"] == []
    metrics = raw["metrics"]
    assert metrics["split"] == "test" and metrics["n"] == len(LABELS) * TEST_PER_CLASS
    expected_delta = (metrics["accuracy"] - metrics["float32_accuracy"]) * 100
    assert metrics["accuracy_delta_pt"] == pytest.approx(expected_delta, abs=1e-2)
    assert 0.0 <= metrics["agreement_with_float32"] <= 1.0
    expected_dtype = "int8" if variant == "int8" else "float32"
    assert raw["input"]["dtype"] == raw["output"]["dtype"] == expected_dtype
    assert ("quantization" in raw["input"]) == (variant == "int8")


def test_int8_card_records_quantization_calibration_and_xnnpack_ops(converted):
    raw = json.loads((converted.out / "tiny_int8.json").read_text())
    assert raw["input"]["quantization"] == {"scale": 1.0, "zero_point": -128}
    assert raw["quantization"]["input_is_pixel_minus_128"] is True
    assert raw["quantization"]["weights"] == "int8 per channel"
    cal = raw["calibration"]
    assert cal["split"] == "train" and cal["samples"] == 64 and cal["seed"] == 0
    assert sum(cal["per_class"].values()) == 64 and set(cal["per_class"]) == set(LABELS)
    assert max(cal["per_class"].values()) - min(cal["per_class"].values()) <= 1   # balanced data
    assert cal["pixel_range"] == [0, 255] and len(cal["attempts"]) >= 1
    assert cal["decided_on"] == "validation"             # calibration is tuned on held-out train, not test
    assert {"validation_accuracy", "validation_delta_pt"} <= set(cal["attempts"][0])
    assert raw["ops"]["float_ops"] == {}                 # full-integer
    xnn = raw["ops"]["xnnpack"]
    assert xnn["applied"] and xnn["delegated_nodes"] >= 1
    assert "CONV_2D" not in xnn["not_delegated"] and "FULLY_CONNECTED" not in xnn["not_delegated"]
    assert set(xnn["not_delegated"]) <= set(raw["ops"]["counts"])
    assert raw["size_bytes"] <= 2 * 1024 * 1024


@pytest.mark.parametrize("variant", VARIANTS)
def test_card_accuracy_is_that_of_this_very_tflite(converted, variant):
    images, labels = load_folder(converted.data, "test")
    probs = run_one_by_one(converted.out / f"tiny_{variant}.tflite", images)
    card = json.loads((converted.out / f"tiny_{variant}.json").read_text())
    assert card["metrics"]["accuracy"] == pytest.approx((probs.argmax(1) == labels).mean(), abs=1e-4)
    assert card["metrics"]["accuracy"] >= 0.9           # the tiny task is easy: the model learned it


def test_int8_agrees_with_float32_on_most_inputs(converted):
    test_images, _ = load_folder(converted.data, "test")
    train_images, _ = load_folder(converted.data, "train")
    noise = np.random.default_rng(1).integers(0, 256, (200, 48, 48), dtype=np.uint8)  # off the training data
    images = np.concatenate([test_images, train_images, noise])
    p32 = run_one_by_one(converted.out / "tiny_float32.tflite", images)
    p8 = run_one_by_one(converted.out / "tiny_int8.tflite", images)
    assert (p32.argmax(1) == p8.argmax(1)).mean() >= 0.95
    assert np.abs(p32 - p8).mean() < 0.05                 # probabilities too, not only the top class


def test_float32_tflite_matches_the_keras_model(converted):
    import keras

    images, _ = load_folder(converted.data, "test")
    model = keras.models.load_model(converted.model, compile=False)
    expected = model.predict(images[..., None].astype(np.float32), verbose=0)
    probs = run_one_by_one(converted.out / "tiny_float32.tflite", images)
    np.testing.assert_allclose(probs, expected, atol=1e-4)


def test_batched_predict_equals_one_by_one(converted):
    images, _ = load_folder(converted.data, "test")
    interpreter = verify.load(str(converted.out / "tiny_int8.tflite"))
    batched = verify.predict(interpreter, images, batch_size=16)  # 60 images: last batch padded
    np.testing.assert_allclose(batched, run_one_by_one(converted.out / "tiny_int8.tflite", images), atol=1e-6)


def test_contract_check_rejects_a_card_that_does_not_fit(converted):
    card = load_card(converted.out / "tiny_int8.json")
    int8 = verify.load(str(converted.out / "tiny_int8.tflite"))
    verify.check_contract(int8, card)                    # the real pair passes
    wrong_labels = replace(card, labels=(*card.labels, "angry"))
    wrong_quant = replace(card, input=replace(card.input, quantization=Quantization(card.input.quantization.scale, 0)))
    wrong_size = replace(card, input=replace(card.input, height=64))
    for bad in (wrong_labels, wrong_quant, wrong_size):
        with pytest.raises(verify.ContractError):
            verify.check_contract(int8, bad)
    float32 = verify.load(str(converted.out / "tiny_float32.tflite"))
    with pytest.raises(verify.ContractError, match="dtype"):
        verify.check_contract(float32, card)             # an int8 card on a float model


def test_data_used_matches_the_fixture_sizes(converted):
    card = json.loads((converted.out / "tiny_int8.json").read_text())
    assert card["calibration"]["samples"] <= len(LABELS) * TRAIN_PER_CLASS
    assert card["calibration"]["data"] == str(converted.data)


def _faces(n_per_class: int, seed: int):
    from edge_runtime.labelled_faces.loading import FaceSet

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(LABELS)), n_per_class)
    images = rng.integers(0, 256, size=(labels.size, 48, 48), dtype=np.uint8)
    return FaceSet(images, labels, [f"{seed}-{i}" for i in range(labels.size)], LABELS)


def test_int8_check_uses_the_training_runs_own_validation_split():
    """With the run's options on the card, calibration draws from the images training fitted on
    and the int8 check uses that run's validation images: the same split training carved."""
    from convert.conversion import split_holdout
    from train.splits import carve_training_split

    train, test = _faces(30, 0), _faces(10, 1)
    train.images[1] = train.images[0]                    # a duplicate, dropped by the run's options
    test.images[0] = train.images[5]                     # a leaked image, likewise
    config = {"drop": ["duplicates", "conflicts", "leaked"], "val_fraction": 0.2, "seed": 3,
              "split_method": "by-content"}
    fit, holdout = split_holdout(train, test, run_card(LABELS, config), seed=0)
    run_fit, run_val, _ = carve_training_split(train, test, ("duplicates", "conflicts", "leaked"), 0.2, 3)
    assert holdout.ids == run_val.ids and fit.ids == run_fit.ids
    del config["split_method"]                           # a run from before split methods: shuffled
    _, legacy = split_holdout(train, test, run_card(LABELS, config), seed=0)
    _, run_legacy, _ = carve_training_split(train, test, ("duplicates", "conflicts", "leaked"), 0.2, 3, "shuffle")
    assert legacy.ids == run_legacy.ids != run_val.ids
    assert not set(fit.ids) & set(holdout.ids)
    assert len(fit) + len(holdout) == len(train) - 2     # one duplicate and one leaked image dropped


def test_without_a_recorded_split_a_tenth_of_train_is_held_out():
    from convert.conversion import split_holdout

    train, test = _faces(30, 0), _faces(10, 1)
    fit, holdout = split_holdout(train, test, run_card(LABELS, {"arch": "tiny"}), seed=0)
    assert len(holdout) == 9 and len(fit) == 81 and not set(fit.ids) & set(holdout.ids)
    assert np.bincount(holdout.labels).tolist() == [3, 3, 3]
