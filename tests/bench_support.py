"""Test helpers for benchmarks/: a tiny 4-class model in the four .tflite variants with their cards
(made by the production converter and card builder, tests/model_support.py),
a tiny fake peer (64x64x1 -> 7 probabilities) and a tiny folder-per-class test split.

Its fixtures reach every test module through ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.model.card import TFLITE_VARIANTS
from tests.model_support import convert_to, keras_card, tiny_cnn, write_variant

LABELS = ("happy", "neutral", "sad", "surprise")
PEER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
VARIANTS = TFLITE_VARIANTS
TEST_COUNTS = (14, 12, 10, 8)  # test faces per class of LABELS (unequal, so that label mix-ups show)


def face_like(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 uint8 image whose bright quadrant tells its class."""
    image = rng.normal(90, 50, (48, 48))
    rows, cols = divmod(label, 2)
    image[rows * 24:(rows + 1) * 24, cols * 24:(cols + 1) * 24] += 12
    return np.clip(image, 0, 255).astype(np.uint8)


def make_split(root: Path, split: str, counts: tuple[int, ...], seed: int,
               labels: tuple[str, ...] = LABELS) -> tuple[np.ndarray, np.ndarray]:
    """Write ``root/<split>/<label>/*.png``; return the images and class indices written."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for index, (label, count) in enumerate(zip(labels, counts, strict=True)):
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = face_like(index, rng)
            cv2.imwrite(str(folder / f"{split}_{i:03d}.png"), image)
            images.append(image)
            targets.append(index)
    return np.stack(images), np.array(targets)


def tiny_keras_model(labels: tuple[str, ...] = LABELS):
    """The plain tiny CNN, trained for a moment on face_like images."""
    import keras

    model = tiny_cnn(len(labels), "plain")
    rng = np.random.default_rng(1)
    targets = np.repeat(np.arange(len(labels)), 40)
    images = np.stack([face_like(int(t), rng) for t in targets])[..., None].astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(images, targets, epochs=3, batch_size=32, verbose=0)
    return model


def representative():
    """Calibration images for the int8 variant: face_like images of every class."""
    rng = np.random.default_rng(2)
    for i in range(32):
        yield [face_like(i % len(LABELS), rng)[None, :, :, None].astype(np.float32)]


def fake_peer(path: Path, bias: np.ndarray | None = None) -> Path:
    """A tiny float 64x64x1 -> 7 softmax .tflite standing in for fer's model.

    With ``bias`` its output ignores the image: ``softmax(bias)`` (to test the label mapping).
    """
    import keras
    import tensorflow as tf
    from keras import layers

    keras.utils.set_random_seed(3)
    inputs = keras.Input((64, 64, 1), batch_size=1)
    x = layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    dense = layers.Dense(7, activation="softmax")
    model = keras.Model(inputs, dense(x))
    if bias is not None:
        kernel = np.zeros_like(dense.get_weights()[0])
        dense.set_weights([kernel, np.asarray(bias, np.float32)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())
    return path


@dataclass
class BenchSetup:
    """Where the tiny models, peers and data are, and the Keras model's test accuracy."""

    models: Path          # tiny_{float32,float16,dynamic,int8}.tflite + cards
    data: Path            # data/test/<label>/*.png
    peer: Path            # a fake peer that looks at the image
    biased_peer: Path     # a fake peer always answering angry > sad > happy > others
    test_images: np.ndarray
    test_targets: np.ndarray
    keras_accuracy: float
    recorded: dict[str, dict]


@pytest.fixture(scope="session")
def bench_setup(tmp_path_factory) -> BenchSetup:
    """The tiny model in four variants with cards, two fake peers and a test split; made once."""
    root = tmp_path_factory.mktemp("bench")
    data = root / "data"
    images, targets = make_split(data, "test", TEST_COUNTS, seed=5)
    model = tiny_keras_model()
    probs = model.predict(images[..., None].astype("float32"), verbose=0)
    keras_accuracy = float((probs.argmax(1) == targets).mean())
    models = root / "models"
    models.mkdir()
    card = keras_card("tiny", LABELS, model)
    recorded = {}
    for i, (variant, blob) in enumerate(convert_to(model, root, VARIANTS, representative).items()):
        metrics = {"split": "test", "accuracy": 0.9 - 0.01 * i, "accuracy_delta_pt": -1.0 * i, "n": 44}
        write_variant(models, card, variant, blob, metrics)
        recorded[variant] = metrics
    bias = np.full(7, -5.0)
    bias[[PEER_ORDER.index("angry"), PEER_ORDER.index("sad"), PEER_ORDER.index("happy")]] = [3.0, 2.0, 1.0]
    return BenchSetup(models=models, data=data, peer=fake_peer(root / "peer.tflite"),
                      biased_peer=fake_peer(root / "biased_peer.tflite", bias),
                      test_images=images, test_targets=targets, keras_accuracy=keras_accuracy,
                      recorded=recorded)
