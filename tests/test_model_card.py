"""The typed model card, read and written by one schema, and the one copy of the int8 arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.model.card import (
    VARIANTS,
    CardMetrics,
    ModelCardError,
    Quantization,
    card_json,
    card_text,
    dequantize,
    load_card,
    parse_card,
    quantize,
    write_card,
)
from edge_runtime.model.card_schema import to_json
from train.records import training_record

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
#: Every shipped model card (the evaluation and data reports beside them are not cards).
SHIPPED_CARDS = sorted(p for p in MODELS_DIR.rglob("*.json")
                       if not p.name.endswith((".eval.json", ".data_report.json")))

CARD = {
    "schema_version": 1, "name": "fer7", "variant": "int8", "file": "fer7_int8.tflite",
    "labels": ["happy", "sad"],
    "input": {"height": 48, "width": 48, "channels": 1, "color": "grayscale", "dtype": "int8", "value_range": [0, 255],
              "quantization": {"scale": 1.0, "zero_point": -128}},
    "output": {"dtype": "int8", "kind": "logits", "quantization": {"scale": 0.5, "zero_point": 3}},
    "face_crop": {"margin": 0.1, "by_detector": {"haar": 0.05}},
    "metrics": {"split": "test", "n": 10, "accuracy": 0.7, "accuracy_ferplus": 0.8, "label_source": "fer2013"},
    "training": {"prior_adjustment": {"tau": 0.5, "prior": {"happy": 0.6, "sad": 0.4}}}, "sha256": "ab" * 32,
    "size_bytes": 12,
}


def test_quantize_rounds_half_to_even_and_clips_to_the_type():
    q = Quantization(scale=0.5, zero_point=-3)
    values = np.array([-100.0, 0.0, 0.25, 0.75, 10.0, 100.0], np.float32)
    # x / 0.5 = -200, 0, 0.5, 1.5, 20, 200; rounded half to even (0.5 -> 0, 1.5 -> 2); - 3; clipped to int8
    assert quantize(values, q, np.int8).tolist() == [-128, -3, -3, -1, 17, 127]
    assert quantize(values, q, np.int8).dtype == np.int8


def test_dequantize_inverts_quantize_on_representable_values():
    q = Quantization(scale=0.25, zero_point=10)
    ints = np.array([-128, 10, 11, 127], np.int8)
    assert dequantize(ints, q).tolist() == [-34.5, 0.0, 0.25, 29.25]
    assert dequantize(ints, q).dtype == np.float32
    assert quantize(dequantize(ints, q), q, np.int8).tolist() == ints.tolist()


def test_card_types_every_field():
    card = parse_card(dict(CARD), Path("/m/fer7_int8.json"))
    assert card.model_path == Path("/m/fer7_int8.tflite")
    assert card.input.quantization == Quantization(1.0, -128)
    assert card.output.kind == "logits" and card.output.quantization == Quantization(0.5, 3)
    assert card.face_crop.margin_for("haar") == 0.05 and card.face_crop.margin_for("blazeface") == 0.1
    assert (card.metrics.split, card.metrics.n, card.metrics.accuracy) == ("test", 10, 0.7)
    assert isinstance(card.metrics, CardMetrics) and card.metrics.label_source == "fer2013"
    assert card.metrics.get("accuracy_ferplus") == 0.8 and card.metrics.extra == {"accuracy_ferplus": 0.8}
    assert card.training == CARD["training"], "the runtime keeps training's record as written"
    assert (card.sha256, card.size_bytes) == ("ab" * 32, 12)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("file"), "missing or has a bad field"),
    (lambda c: c["input"].update(channels=3), "grayscale"),
    (lambda c: c["input"].update(color="rgb"), "channels 3 with color rgb"),
    (lambda c: c.update(labels=["a", "a"]), "distinct"),
    (lambda c: c["face_crop"].update(by_detector={"haar": "wide"}), "bad field"),
    (lambda c: c["input"].update(height="48"), r"input\.height must be a whole number"),
    (lambda c: c.update(face_margin=0.1), "face_margin is not a field of a card"),
])
def test_bad_cards_are_refused_with_the_reason(edit, message):
    raw = json.loads(json.dumps(CARD))
    edit(raw)
    with pytest.raises(ModelCardError, match=message) as caught:
        parse_card(raw, Path("card.json"))
    assert isinstance(caught.value, EdgeRuntimeError), "edge_runtime has one error base class"


def test_the_runtime_reads_past_any_training_or_conversion_record():
    """A new training or conversion field never changes what the runtime accepts."""
    raw = json.loads(json.dumps(CARD))
    raw["training"]["a_new_training_flag"] = {"anything": [1, 2]}
    raw["calibration"] = {"a_new_calibration_field": True}
    card = parse_card(raw, Path("card.json"))
    assert card.training["a_new_training_flag"] == {"anything": [1, 2]}
    assert card_json(card)["calibration"] == {"a_new_calibration_field": True}


def test_training_types_its_own_record_and_refuses_a_bad_one():
    card = parse_card(json.loads(json.dumps(CARD)), Path("card.json"))
    adjustment = training_record(card).prior_adjustment
    assert adjustment.tau == 0.5 and adjustment.prior["sad"] == 0.4
    raw = json.loads(json.dumps(CARD))
    raw["training"].update(guard={"model": "g.keras"})
    with pytest.raises(ModelCardError, match=r"training\.guard\.sha256 is missing"):
        training_record(parse_card(raw, Path("card.json")))


def test_a_retired_training_field_of_older_cards_is_read_past_and_not_written_back(tmp_path):
    raw = json.loads(json.dumps(CARD))
    raw["training"]["last_session_seconds"] = 412.5       # written by older training code
    record = training_record(parse_card(raw, tmp_path / "fer7_int8.json"))
    assert record == training_record(parse_card(json.loads(json.dumps(CARD)), tmp_path / "fer7_int8.json"))
    assert "last_session_seconds" not in to_json(record)
    raw["training"]["session_seconds"] = 1.0              # a key no card ever had is still refused
    with pytest.raises(ModelCardError, match=r"training\.session_seconds is not a field of training"):
        training_record(parse_card(raw, tmp_path / "fer7_int8.json"))


def test_an_rgb_card_states_three_channels_and_rgb():
    raw = {**CARD, "variant": "mobile", "input": {**CARD["input"], "channels": 3, "color": "rgb", "dtype": "uint8",
                                                  "quantization": {"scale": 1.0, "zero_point": 0}}}
    card = parse_card(raw, Path("/m/fer7_mobile.json"))
    assert (card.input.channels, card.input.color, card.input.dtype) == (3, "rgb", "uint8")
    assert card.input.quantization == Quantization(1.0, 0)


@pytest.mark.parametrize("field, value", [
    ("schema_version", 2), ("schema_version", "1"), ("schema_version", None), ("variant", "int4"), ("variant", None),
])
def test_an_unknown_schema_version_or_variant_is_one_clear_error(tmp_path, field, value):
    raw = {**CARD, field: value} if value is not None else {k: v for k, v in CARD.items() if k != field}
    path = tmp_path / "fer7_int8.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelCardError) as caught:
        load_card(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and f"{field} {value!r}" in message
    accepted = "accepted: 1" if field == "schema_version" else ", ".join(VARIANTS)
    assert accepted in message and "re-create it with `python -m convert`" in message


def test_a_written_card_reads_back_the_same(tmp_path):
    card = parse_card(json.loads(json.dumps(CARD)), tmp_path / "fer7_int8.json")
    written = write_card(card)
    assert load_card(written.path) == card and json.loads(written.path.read_text()) == CARD
    elsewhere = write_card(card, tmp_path / "copy" / "fer7_int8.json")
    assert elsewhere.path == tmp_path / "copy" / "fer7_int8.json" and elsewhere.model_path.parent == tmp_path / "copy"
    assert not list(tmp_path.rglob(".*")), "written through a temporary file, renamed"


def test_optional_fields_are_left_out_and_set_ones_kept_even_when_null():
    card = parse_card({k: v for k, v in CARD.items() if k not in ("face_crop", "metrics", "training")},
                      Path("m.json"))
    assert "face_crop" not in card_json(card) and "metrics" not in card_json(card)
    record = {"file": "a.keras", "sha256": "0" * 64, "name": "a", "labels": ["happy", "sad"], "command": None,
              "epochs_run": None, "test_accuracy": None, "init_from": None}
    raw = {**CARD, "training": {"init_from": record}}
    assert card_json(parse_card(raw, Path("m.json")))["training"] == {"init_from": record}


@pytest.mark.parametrize("path", SHIPPED_CARDS, ids=lambda path: path.name)
def test_every_shipped_card_fits_the_schema_and_is_written_back_unchanged(path: Path):
    card = load_card(path)
    assert card_text(card) == path.read_text(), f"re-write it: write_card(load_card({str(path)!r}))"
    assert card_json(card) == json.loads(path.read_text())
    assert card.file == path.with_suffix(card.model_path.suffix).name and card.model_path.is_file()


def test_every_shipped_model_has_its_card():
    assert SHIPPED_CARDS, "models/ holds the shipped models and their cards"
    models = sorted(p for p in MODELS_DIR.rglob("*") if p.suffix in (".keras", ".tflite"))
    assert [m.with_suffix(".json") for m in models] == SHIPPED_CARDS
