"""Keras model -> TFLite flatbuffers: the four variants users compare.

- ``float32``: plain conversion, the accuracy reference.
- ``float16``: weights stored as float16 (half the size), computed in float32.
- ``dynamic``: dynamic-range quantization, int8 weights, float activations.
- ``int8``: full-integer post-training quantization (int8 weights per channel, int8
  activations calibrated on a representative dataset, int8 input and output tensors).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from edge_runtime.model.card import MOBILE_VARIANT
from edge_runtime.model.card import TFLITE_VARIANTS as VARIANTS

log = logging.getLogger(__name__)

METHODS = {
    "float32": "none",
    "float16": "float16 weights",
    "dynamic": "dynamic-range (int8 weights)",
    "int8": "post-training full-integer (int8 weights and activations, int8 I/O)",
    "mobile": "post-training full-integer (int8 weights and activations, uint8 I/O)",
}
DESCRIPTIONS = {
    "float32": "float32 weights and activations",
    "float16": "float16 weights, float32 activations and I/O",
    "dynamic": "dynamic-range quantization: int8 weights, float32 activations and I/O",
    "int8": "full-integer post-training quantization: int8 weights (per channel) and activations, "
            "int8 input and output tensors",
    "mobile": "for MediaPipe Tasks and the TFLite Task Library: uint8 RGB input, grey conversion inside the "
              "graph, int8 weights (per channel) and activations, uint8 probabilities",
}


def export_saved_model(model, directory: str | Path) -> Path:
    """Export a Keras model's inference function as a TF SavedModel (batch dimension left open)."""
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return Path(directory)


def convert(saved_model_dir: str | Path, variant: str,
            representative_dataset: Callable | None = None) -> bytes:
    """Convert the SavedModel into the TFLite ``variant``; ``int8`` and ``mobile`` need ``representative_dataset``.

    ``mobile`` is the int8 conversion with uint8 input and output tensors (of a model that takes RGB,
    see :mod:`convert.mobile`).
    """
    import tensorflow as tf

    if variant not in (*VARIANTS, MOBILE_VARIANT):
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant in ("int8", MOBILE_VARIANT):
        if representative_dataset is None:
            raise ValueError(f"the {variant} variant needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        # Only int8 builtins: conversion fails rather than leaving a float op behind.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.int8 if variant == "int8" else tf.uint8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    log.info("converting %s to %s", saved_model_dir, variant)
    return converter.convert()
