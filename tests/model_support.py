"""Tiny models for the tests, built, converted and carded by the production code.

- :func:`tiny_cnn`: the one tiny Keras CNN factory (raw 0..255 pixels in, ``Rescaling`` inside);
- :func:`keras_card`: the card training writes beside a ``.keras`` model (``train.model_card.keras_card``);
- :func:`convert_to`: a SavedModel converted by ``convert.quantize.convert``;
- :func:`write_variant`: a converted model written with the card ``python -m convert`` writes
  (``convert.cards.build_card``, ``edge_runtime.model.card.write_card``), so fixtures cannot drift from
  the production schema.

TensorFlow is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

TINY_ARCH = "tiny-test"
KINDS = ("plain", "batchnorm", "untrained")


def tiny_cnn(n_classes: int, kind: str = "plain", seed: int = 0) -> Any:
    """A tiny Keras CNN for 48x48x1 raw pixels, ending in a softmax over ``n_classes``.

    ``plain``: conv, pool, dense (to train for a moment). ``batchnorm``: adds BatchNormalization and a
    depthwise conv, the layers int8 conversion folds. ``untrained``: two convs and a dense layer with
    large random weights, so the untrained model gives confident, input-dependent answers.
    """
    import keras
    from keras import layers

    if kind not in KINDS:
        raise ValueError(f"unknown tiny CNN kind {kind!r}; choose from {', '.join(KINDS)}")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((48, 48, 1), name="pixels")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    if kind == "untrained":
        x = layers.Conv2D(8, 5, strides=2, activation="relu")(x)
        x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(n_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
        return keras.Model(inputs, layers.Softmax()(x))
    if kind == "batchnorm":
        x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    else:
        x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(4)(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))


def keras_card(name: str, labels: tuple[str, ...], model: Any, face_margin: float | None = 0.1,
               folder: Path = Path(".")) -> Any:
    """The card training writes for ``model`` (``train.model_card.keras_card``) as ``folder/<name>.json``,
    with a face crop margin."""
    from dataclasses import replace

    from edge_runtime.model.card import FaceCrop
    from train.model_card import keras_card as training_card
    from train.records import TrainingRecord

    card = training_card(folder / f"{name}.json", tuple(labels), model, TrainingRecord(config={"arch": TINY_ARCH}))
    return card if face_margin is None else replace(card, face_crop=FaceCrop(margin=face_margin))


def pinned_representative(images: Callable[[], Iterator[np.ndarray]]) -> Callable[[], Iterator[list]]:
    """A representative dataset of ``images`` (48x48 uint8), each holding a 0 and a 255 pixel, so the
    int8 input quantization covers every pixel value."""
    def representative() -> Iterator[list]:
        for image in images():
            sample = image.astype(np.float32)[None, :, :, None]
            sample[0, 0, 0, 0], sample[0, 0, 1, 0] = 0.0, 255.0
            yield [sample]

    return representative


def convert_to(model: Any, folder: Path, variants: tuple[str, ...],
               representative: Callable[[], Iterator[list]] | None = None) -> dict[str, bytes]:
    """``model`` exported to ``folder/saved_model`` and converted to each variant by the project's converter."""
    from convert.quantize import convert, export_saved_model

    saved = export_saved_model(model, folder / "saved_model")
    return {v: convert(saved, v, representative if v == "int8" else None) for v in variants}


def write_variant(folder: Path, card: Any, variant: str, model_bytes: bytes, metrics: dict | None = None) -> Path:
    """Write ``<name>_<variant>.tflite`` and the card ``python -m convert`` gives it (``metrics``: the card's
    JSON ``metrics``); the model's path."""
    from convert import cards, quantize, verify
    from convert.records import QuantizationRecord
    from edge_runtime.model.card import CardMetrics, write_card
    from edge_runtime.model.card_schema import from_json

    path = folder / f"{card.name}_{variant}.tflite"
    path.write_bytes(model_bytes)
    interpreter = verify.load(str(path), 1)
    facts = cards.VariantFacts(variant, path.name, model_bytes, verify.io_details(interpreter),
                               verify.op_report(interpreter), from_json(CardMetrics, metrics or {}, "metrics"),
                               QuantizationRecord(method=quantize.METHODS[variant]), calibration=None)
    write_card(cards.build_card(card, facts, folder=folder, source_file=card.file, source_sha256="0" * 64))
    return path


def run_card(labels: tuple[str, ...], config: dict) -> Any:
    """A Keras model's card that holds only its labels and the ``config`` of the run that trained it."""
    from edge_runtime.model.card import InputSpec, ModelCard
    return ModelCard(name="run", variant="keras", file="run.keras", labels=tuple(labels),
                     input=InputSpec(height=48, width=48, channels=1, dtype="float32"),
                     training={"config": config}, path=Path("run.json"))
