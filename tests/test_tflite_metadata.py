"""TFLite Model Metadata written from the card (convert.metadata), read back by the runtime without TensorFlow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from convert import metadata
from edge_runtime.errors import ModelError
from edge_runtime.model.card import file_sha256
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.model.litert import make_interpreter
from edge_runtime.model.metadata import LABELS_FILE, embedded_files, embedded_labels

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SOURCE = MODELS_DIR / "fer7_int8.tflite"


@pytest.fixture()
def model_copy(tmp_path: Path) -> Path:
    """A copy of a shipped int8 model and its card."""
    if not SOURCE.is_file():
        pytest.skip(f"{SOURCE} is not there")
    shutil.copy(SOURCE, tmp_path / SOURCE.name)
    shutil.copy(SOURCE.with_suffix(".json"), tmp_path / SOURCE.with_suffix(".json").name)
    return tmp_path / SOURCE.name


def _outputs(path: Path, inputs: np.ndarray) -> np.ndarray:
    interpreter = make_interpreter(str(path), num_threads=1)
    index, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    results = []
    for x in inputs:
        interpreter.set_tensor(index, x[None])
        interpreter.invoke()
        results.append(interpreter.get_tensor(out)[0].copy())
    return np.stack(results)


def test_stamping_embeds_the_cards_labels_and_keeps_the_model(model_copy: Path):
    labels = json.loads(model_copy.with_suffix(".json").read_text())["labels"]
    inputs = np.random.default_rng(1).integers(-128, 128, (4, 48, 48, 1), dtype=np.int8)
    before = _outputs(model_copy, inputs)
    card = metadata.stamp_file(model_copy)
    assert embedded_labels(model_copy) == tuple(labels)
    assert embedded_files(model_copy)[LABELS_FILE].decode().split() == labels
    assert np.array_equal(_outputs(model_copy, inputs), before), "metadata must not change the graph"
    written = json.loads(model_copy.with_suffix(".json").read_text())
    assert written["sha256"] == file_sha256(model_copy) == card.sha256
    assert written["size_bytes"] == model_copy.stat().st_size
    assert (written["author"], written["license"]) == (metadata.DEFAULT_AUTHOR, "MIT")
    assert b"TFLITE_METADATA" in model_copy.read_bytes() and b"M001" in model_copy.read_bytes()


def test_stamping_again_replaces_the_stamp(model_copy: Path):
    metadata.stamp_file(model_copy)
    once = model_copy.read_bytes()
    metadata.stamp_file(model_copy)
    assert model_copy.read_bytes() == once


def test_runtime_refuses_metadata_labels_that_are_not_the_cards(model_copy: Path):
    metadata.stamp_file(model_copy)
    card_path = model_copy.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["labels"] = card["labels"][::-1]          # same count, another order: only the metadata tells
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="metadata labels"):
        ExpressionClassifier(model_copy, num_threads=1)


def test_a_model_without_metadata_has_no_embedded_labels(tmp_path: Path):
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    assert embedded_labels(plain) is None


def test_cli_gives_one_error_line_for_a_file_that_is_not_a_model(tmp_path: Path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert metadata.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m convert.metadata: error: ") and "notes.txt" in err[0]
