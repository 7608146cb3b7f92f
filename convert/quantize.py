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

from edge_runtime.model_card import TFLITE_VARIANTS as VARIANTS

log = logging.getLogger(__name__)

METHODS = {
    "float32": "none",
    "float16": "float16 weights",
    "dynamic": "dynamic-range (int8 weights)",
    "int8": "post-training full-integer (int8 weights and activations, int8 I/O)",
}
DESCRIPTIONS = {
    "float32": "float32 weights and activations",
    "float16": "float16 weights, float32 activations and I/O",
    "dynamic": "dynamic-range quantization: int8 weights, float32 activations and I/O",
    "int8": "full-integer post-training quantization: int8 weights (per channel) and activations, "
            "int8 input and output tensors",
}


def export_saved_model(model, directory: str | Path) -> Path:
    """Export a Keras model's inference function as a TF SavedModel (batch dimension left open)."""
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return Path(directory)


def convert(saved_model_dir: str | Path, variant: str,
            representative_dataset: Callable | None = None) -> bytes:
    """Convert the SavedModel into the TFLite ``variant``; ``int8`` needs ``representative_dataset``."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if representative_dataset is None:
            raise ValueError("the int8 variant needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        # Only int8 builtins: conversion fails rather than leaving a float op behind.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    log.info("converting %s to %s", saved_model_dir, variant)
    return converter.convert()
