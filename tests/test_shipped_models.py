"""Every .tflite shipped in models/ loads with the runtime and matches its card (whatever models are there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.model.card import SHIPPED_TFLITE_VARIANTS, file_sha256, load_card
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.model.contract import check_card
from edge_runtime.model.litert import make_interpreter
from edge_runtime.model.metadata import embedded_labels

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(MODELS_DIR.glob("*.tflite"))


@pytest.mark.parametrize("model", SHIPPED, ids=lambda path: path.name)
def test_shipped_model_matches_its_card(model: Path):
    card = load_card(model)
    assert card.file == model.name and card.model_path == model
    assert card.variant in SHIPPED_TFLITE_VARIANTS and model.stem.endswith(f"_{card.variant}")
    assert card.sha256 == file_sha256(model) and card.size_bytes == model.stat().st_size
    assert check_card(card, make_interpreter(str(model), num_threads=1), model) == []


@pytest.mark.parametrize("model", SHIPPED, ids=lambda path: path.name)
def test_shipped_model_gives_one_probability_per_label(model: Path):
    classifier = ExpressionClassifier(model, num_threads=1)
    faces = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    for face in faces:
        probabilities = classifier.probabilities(face)
        assert probabilities.shape == (len(classifier.labels),) and np.all(probabilities >= 0)
        assert abs(float(probabilities.sum()) - 1.0) < 0.02


@pytest.mark.parametrize("model", [*SHIPPED, *sorted((MODELS_DIR / "baseline").glob("*.tflite"))],
                         ids=lambda path: path.name)
def test_shipped_model_carries_its_cards_labels_as_tflite_metadata(model: Path):
    card = load_card(model)
    assert embedded_labels(model) == card.labels, "stamp it: python -m convert.metadata " + str(model)
    assert card.tflite_metadata is not None and card.tflite_metadata["labels_file"] == "labels.txt"
    assert card.sha256 == file_sha256(model)


@pytest.mark.parametrize("model", sorted(MODELS_DIR.glob("*_mobile.tflite")), ids=lambda path: path.name)
def test_mobile_variant_comes_from_the_same_keras_model_as_int8(model: Path):
    mobile, int8 = load_card(model), load_card(model.with_name(model.name.replace("_mobile", "_int8")))
    assert mobile.source_model["sha256"] == int8.source_model["sha256"], (
        f"re-make it: python -m convert.mobile --model models/{mobile.name}.keras")
