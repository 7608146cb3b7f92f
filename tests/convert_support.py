"""Test helpers for convert/: a tiny synthetic FER-like dataset and a tiny Keras model trained on it
in seconds (tests/model_support.py), saved with the card training writes, and its conversion.

Its fixtures reach every test module through ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.model.card import CardMetrics, ModelCard, write_card
from tests.model_support import keras_card, tiny_cnn

LABELS = ("happy", "sad", "surprise")
TRAIN_PER_CLASS = 60
TEST_PER_CLASS = 20


def face_like(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 uint8 image whose bright region tells its class (top, bottom or left half)."""
    image = rng.normal(70, 25, (48, 48))
    region = [np.s_[:24, :], np.s_[24:, :], np.s_[:, :24]][label]
    image[region] += rng.uniform(100, 150)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_dataset(root: Path, labels: tuple[str, ...] = LABELS, seed: int = 0,
                 train_per_class: int = TRAIN_PER_CLASS, test_per_class: int = TEST_PER_CLASS) -> Path:
    """Write ``root/{train,test}/<label>/*.png`` (folder-per-class, like FER2013)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for index, label in enumerate(labels):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{split}_{i:04d}.png"), face_like(index, rng))
    return root


def load_folder(root: Path, split: str, labels: tuple[str, ...] = LABELS) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 48, 48) uint8 and labels of one split, read back independently of convert/."""
    images, targets = [], []
    for index, label in enumerate(labels):
        for path in sorted((root / split / label).glob("*.png")):
            images.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
            targets.append(index)
    return np.stack(images), np.array(targets)


def train_tiny_model(data: Path, out_dir: Path, name: str = "tiny", labels: tuple[str, ...] = LABELS) -> Path:
    """Train the batchnorm tiny CNN for a few seconds; save it with the card training writes."""
    import keras

    model = tiny_cnn(len(labels), "batchnorm")
    images, targets = load_folder(data, "train", labels)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images[..., None].astype("float32"), targets, epochs=8, batch_size=32, verbose=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.keras"
    model.save(path)
    card = keras_card(name, labels, model, folder=out_dir)
    write_card(replace(card, metrics=CardMetrics(split="test", accuracy=1.0, n=60)))
    return path


@dataclass
class Setup:
    """The tiny dataset, the trained tiny model and where its conversion was written."""

    data: Path
    model: Path
    out: Path
    cards: list[ModelCard]


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, tiny .keras model with its card), made once per session."""
    root = tmp_path_factory.mktemp("convert_tiny")
    data = make_dataset(root / "data")
    model = train_tiny_model(data, root / "models")
    return data, model


@pytest.fixture(scope="session")
def converted(tiny_setup, tmp_path_factory) -> Setup:
    """The tiny model converted to all four variants (tolerance widened: one test image is 1.7 pt)."""
    from convert.conversion import Options, convert_model

    data, model = tiny_setup
    out = tmp_path_factory.mktemp("convert_out")
    cards = convert_model(model, data, out, Options(calibration_samples=64, max_int8_drop_pt=5.0))
    return Setup(data, model, out, cards)
