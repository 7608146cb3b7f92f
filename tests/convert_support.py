"""Test helpers for convert/: a tiny synthetic FER-like dataset and a tiny Keras model trained on it
in seconds, saved with its card exactly as training would save it, and its conversion.

Import the fixtures into a test module (``from tests.convert_support import converted  # noqa: F401``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

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


def keras_card(name: str, labels: tuple[str, ...]) -> dict:
    """The card training writes beside a ``.keras`` model (the fields convert reads)."""
    return {
        "schema_version": 1, "name": name, "variant": "keras", "file": f"{name}.keras",
        "labels": list(labels),
        "input": {"height": 48, "width": 48, "channels": 1, "color": "grayscale", "dtype": "float32",
                  "value_range": [0, 255]},
        "output": {"dtype": "float32", "kind": "probabilities"},
        "face_crop": {"margin": 0.1},
        "training": {"config": {"arch": "tiny-test"}},
        "metrics": {"split": "test", "accuracy": 1.0, "n": 60},
    }


def train_tiny_model(data: Path, out_dir: Path, name: str = "tiny", labels: tuple[str, ...] = LABELS) -> Path:
    """Train a tiny CNN (raw 0..255 pixels in, Rescaling inside) for a few seconds; save it and its card."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1), name="pixels")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(4)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(len(labels), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    images, targets = load_folder(data, "train", labels)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images[..., None].astype("float32"), targets, epochs=8, batch_size=32, verbose=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.keras"
    model.save(path)
    (out_dir / f"{name}.json").write_text(json.dumps(keras_card(name, labels)))
    return path


@dataclass
class Setup:
    """The tiny dataset, the trained tiny model and where its conversion was written."""

    data: Path
    model: Path
    out: Path
    cards: list[dict]


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
    from convert.pipeline import Options, convert_model

    data, model = tiny_setup
    out = tmp_path_factory.mktemp("convert_out")
    cards = convert_model(model, data, out, Options(calibration_samples=64, max_int8_drop_pt=5.0))
    return Setup(data, model, out, cards)
