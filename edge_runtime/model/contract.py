"""A model card against its loaded interpreter, and batched inference: the one copy of each.

:func:`check_card` lists every way a card and a loaded ``.tflite`` disagree (the runtime refuses
such a pair, ``convert`` refuses to write it, the benchmarks refuse to time it);
:func:`run_batched` runs many prepared inputs through one interpreter.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.model.card import SHIPPED_TFLITE_VARIANTS, ModelCard, Quantization, dequantize, file_sha256
from edge_runtime.model.metadata import MetadataReadError, embedded_labels

log = logging.getLogger(__name__)

#: Largest difference allowed between a card's quantization scale and the model's.
SCALE_TOLERANCE = 1e-9


def variant_dtype(variant: str) -> str:
    """The I/O tensor type of a .tflite variant: int8 for ``int8``, uint8 for ``mobile``, else float32."""
    return {"int8": "int8", "mobile": "uint8"}.get(variant, "float32")


def _dtype(detail: dict[str, Any]) -> str:
    return np.dtype(detail["dtype"]).name


def _quantization_problem(what: str, detail: dict[str, Any], stated: Quantization | None) -> str | None:
    got = Quantization.from_tensor(detail)
    if stated is None:
        return f"{what} quantization is {detail['quantization']}, the card states none"
    if got is None or abs(got.scale - stated.scale) > SCALE_TOLERANCE or got.zero_point != stated.zero_point:
        return (f"{what} quantization is {detail['quantization']}, the card says "
                f"scale={stated.scale}, zero_point={stated.zero_point}")
    return None


def _range_problem(card: ModelCard, detail: dict[str, Any]) -> str | None:
    """Whether the input quantization represents every pixel of ``value_range`` exactly."""
    quant = Quantization.from_tensor(detail)
    if quant is None:
        return None
    info = np.iinfo(detail["dtype"])
    lowest, highest = (float(v) for v in dequantize(np.array([info.min, info.max]), quant))
    low, high = (float(v) for v in card.input.value_range)
    if quant.scale > 1.0 + 1e-6 or lowest > low + 1e-6 or highest < high - 1e-6:
        return (f"input quantization (scale {quant.scale}, zero point {quant.zero_point}) cannot represent "
                f"every pixel of {low:g}..{high:g}; "
                "calibrate with images that hold both extremes")
    return None


def check_card(card: ModelCard, interpreter: Any, model_path: Path | None = None) -> list[str]:
    """Every way ``card`` disagrees with the loaded model (empty when they match).

    Checked: one input and one output; input ``1 x H x W x C`` (batch 1 or resizable); one output
    per label; I/O dtypes as the card states them and as its variant requires; for integer tensors,
    the quantization equals the card's (scale within ``SCALE_TOLERANCE``) and the input's covers
    ``value_range``; with ``model_path``, the file's sha256 is the card's and the labels of its
    TFLite metadata, when it carries some, are the card's.
    """
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        return [f"the model has {len(inputs)} inputs and {len(outputs)} outputs; a FER model has one of each"]
    inp, out = inputs[0], outputs[0]
    spec, problems = card.input, []
    signature = tuple(int(v) for v in inp.get("shape_signature", inp["shape"]))
    want_shape = (1, spec.height, spec.width, spec.channels)
    if len(signature) != 4 or signature[1:] != want_shape[1:] or signature[0] not in (-1, 1):
        problems.append(f"input shape is {signature}, the card says {want_shape}")
    n_out = int(out["shape"][-1])
    if n_out != len(card.labels):
        problems.append(f"the model has {n_out} outputs, the card lists {len(card.labels)} labels")
    stated = {"input": spec.dtype, "output": card.output.dtype}
    for what, detail, quant in (("input", inp, spec.quantization), ("output", out, card.output.quantization)):
        got = _dtype(detail)
        if stated[what] is not None and got != stated[what]:
            problems.append(f"{what} dtype is {got}, the card says {stated[what]}")
        elif card.variant in SHIPPED_TFLITE_VARIANTS and got != variant_dtype(card.variant):
            problems.append(f"{what} dtype is {got}; the {card.variant} variant needs {variant_dtype(card.variant)}")
        elif np.issubdtype(np.dtype(detail["dtype"]), np.integer):
            problem = _quantization_problem(what, detail, quant)
            problem = problem or (_range_problem(card, detail) if what == "input" else None)
            if problem:
                problems.append(problem)
    if model_path is not None and card.sha256 and card.sha256 != file_sha256(model_path):
        problems.append("the card's sha256 is not the model file's (the card belongs to another build)")
    if model_path is not None:
        problems += metadata_problems(card, model_path)
    return problems


def metadata_problems(card: ModelCard, model_path: Path) -> list[str]:
    """Whether the labels embedded in the model's TFLite metadata (when it has some) are the card's."""
    try:
        labels = embedded_labels(model_path)
    except MetadataReadError as exc:
        return [str(exc)]
    if labels is not None and labels != card.labels:
        return [f"the model's metadata labels {', '.join(labels)} are not the card's {', '.join(card.labels)}; "
                "re-stamp it with `python -m convert.metadata`"]
    return []


def run_batched(interpreter: Any, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Raw outputs for all ``inputs`` (``N x H x W x C``, the model's dtype), ``batch_size`` per invoke.

    The input is resized to each batch; a model whose batch dimension cannot be resized runs one
    input per invoke.
    """
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    current = int(interpreter.get_input_details()[0]["shape"][0])
    outputs = []
    start = 0
    while start < len(inputs):
        chunk = inputs[start:start + batch_size]
        if len(chunk) != current:
            try:
                interpreter.resize_tensor_input(input_index, list(chunk.shape), strict=False)
                interpreter.allocate_tensors()
                current = len(chunk)
            except (ValueError, RuntimeError) as exc:
                if batch_size == 1:
                    raise
                log.info("cannot batch this model (%s); running one input per invoke", exc)
                batch_size = 1
                continue
        interpreter.set_tensor(input_index, np.ascontiguousarray(chunk))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index).copy())
        start += len(chunk)
    return np.concatenate(outputs)
