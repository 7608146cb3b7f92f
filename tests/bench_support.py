"""Test helpers for benchmarks/: a tiny 4-class model in the four .tflite variants with their cards,
a tiny fake peer (64x64x1 -> 7 probabilities) and a tiny folder-per-class test split.

Import the fixtures into a test module (``from bench_support import bench_setup  # noqa: F401``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

LABELS = ("happy", "neutral", "sad", "surprise")
PEER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
VARIANTS = ("float32", "float16", "dynamic", "int8")
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
    """A tiny CNN taking raw 0..255 pixels (Rescaling inside), trained for a moment on face_like images."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1), name="pixels")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(4)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(len(labels), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    targets = np.repeat(np.arange(len(labels)), 40)
    images = np.stack([face_like(int(t), rng) for t in targets])[..., None].astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(images, targets, epochs=3, batch_size=32, verbose=0)
    return model


def convert_variant(saved_model: Path, variant: str) -> bytes:
    """Convert a SavedModel to one of the four variants with the project's converter."""
    from convert.quantize import convert

    rng = np.random.default_rng(2)

    def representative():
        for i in range(32):
            yield [face_like(i % len(LABELS), rng)[None, :, :, None].astype(np.float32)]

    return convert(saved_model, variant, representative if variant == "int8" else None)


def io_quantization(model_bytes: bytes) -> tuple[dict | None, dict | None]:
    """The (input, output) quantization of a .tflite, as card dicts (None for float tensors)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    out = []
    for detail in (interpreter.get_input_details()[0], interpreter.get_output_details()[0]):
        scale, zero_point = detail["quantization"]
        out.append({"scale": float(scale), "zero_point": int(zero_point)} if scale else None)
    return out[0], out[1]


def card_for(name: str, variant: str, model_bytes: bytes, labels: tuple[str, ...],
             metrics: dict) -> dict:
    """A model card in the project's schema (edge_runtime/model_card.py)."""
    dtype = "int8" if variant == "int8" else "float32"
    in_q, out_q = io_quantization(model_bytes)
    card = {
        "schema_version": 1, "name": name, "variant": variant, "file": f"{name}_{variant}.tflite",
        "labels": list(labels),
        "input": {"height": 48, "width": 48, "channels": 1, "color": "grayscale", "dtype": dtype,
                  "value_range": [0, 255]},
        "output": {"dtype": dtype, "kind": "probabilities"},
        "face_crop": {"margin": 0.1},
        "size_bytes": len(model_bytes),
        "metrics": metrics,
    }
    if in_q:
        card["input"]["quantization"] = in_q
    if out_q:
        card["output"]["quantization"] = out_q
    return card


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
    saved = root / "saved_model"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    models = root / "models"
    models.mkdir()
    recorded = {}
    for i, variant in enumerate(VARIANTS):
        blob = convert_variant(saved, variant)
        metrics = {"split": "test", "accuracy": 0.9 - 0.01 * i, "accuracy_delta_pt": -1.0 * i, "n": 44}
        card = card_for("tiny", variant, blob, LABELS, metrics)
        (models / card["file"]).write_bytes(blob)
        (models / f"tiny_{variant}.json").write_text(json.dumps(card))
        recorded[variant] = metrics
    bias = np.full(7, -5.0)
    bias[[PEER_ORDER.index("angry"), PEER_ORDER.index("sad"), PEER_ORDER.index("happy")]] = [3.0, 2.0, 1.0]
    return BenchSetup(models=models, data=data, peer=fake_peer(root / "peer.tflite"),
                      biased_peer=fake_peer(root / "biased_peer.tflite", bias),
                      test_images=images, test_targets=targets, keras_accuracy=keras_accuracy,
                      recorded=recorded)
