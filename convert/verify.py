"""Check a converted .tflite with LiteRT: its I/O contract, its ops, its accuracy.

TensorFlow-free (LiteRT and numpy only), so benchmarks can reuse it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from edge_runtime.model.card import CardMetrics, ModelCard, Quantization, dequantize, quantize
from edge_runtime.model.contract import check_card, run_batched
from edge_runtime.model.litert import make_interpreter

from .cards import TensorFacts
from .errors import ConvertError
from .records import OpsReport, XnnpackReport

BUILTIN_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
FLOAT_TYPES = (np.float32, np.float16, np.float64)


class ContractError(ConvertError):
    """A converted model does not honour the contract its card states."""


def load(model_path: str, threads: int | None = None) -> Any:
    """Load ``model_path`` with LiteRT (XNNPACK applied, as on the device)."""
    return make_interpreter(str(model_path), num_threads=threads)


def io_details(interpreter: Any) -> dict[str, TensorFacts]:
    """Shape, dtype and quantization of the model's (single) input and output."""
    out = {}
    pairs = (("input", interpreter.get_input_details()), ("output", interpreter.get_output_details()))
    for key, details in pairs:
        if len(details) != 1:
            raise ContractError(f"the model has {len(details)} {key}s; a FER model has exactly one")
        detail = details[0]
        out[key] = TensorFacts(shape=tuple(int(v) for v in detail["shape_signature"]),
                               dtype=np.dtype(detail["dtype"]).name, quantization=Quantization.from_tensor(detail))
    return out


def check_contract(interpreter: Any, card: ModelCard) -> None:
    """Raise :class:`ContractError` unless the model's I/O matches the card (see
    :func:`edge_runtime.model.contract.check_card`: shape, labels, dtypes of the variant, quantization
    equal to the card's and able to represent every pixel of ``value_range``)."""
    problems = check_card(card, interpreter)
    if problems:
        raise ContractError(f"{card.file} does not match its card: " + "; ".join(problems))


def _delegated_nodes(ops: list[dict]) -> set[int]:
    """Indices of the nodes that a delegate took over (walk back from each delegate's outputs)."""
    producer = {int(t): op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    by_index = {op["index"]: op for op in ops}
    taken: set[int] = set()
    for delegate in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in delegate["inputs"]}
        stack, seen = [int(t) for t in delegate["outputs"]], set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor in boundary or tensor not in producer:
                continue
            seen.add(tensor)
            node = producer[tensor]
            taken.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"] if t >= 0)
    return taken


def op_report(interpreter: Any) -> OpsReport:
    """The model's ops and where they run.

    ``counts``: op name -> number of nodes. ``not_builtin``: custom or Flex ops (need extra
    runtime support). ``xnnpack.not_delegated``: ops the XNNPACK delegate left to the
    TFLite kernels (for an int8 model: the ops XNNPACK does not run in int8).
    ``float_ops``: ops computing on float tensors (must be empty for a full-integer model).
    """
    ops = [op for op in interpreter._get_ops_details()]
    nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    taken = _delegated_nodes(ops)
    left = Counter(op["op_name"] for op in nodes if op["index"] not in taken)
    float_ops = Counter(op["op_name"] for op in nodes
                        if any(np.dtype(t) in FLOAT_TYPES
                               for t in (*op["operand_types"], *op["result_types"])))
    return OpsReport(
        counts=dict(sorted(Counter(op["op_name"] for op in nodes).items())),
        not_builtin=tuple(sorted({op["op_name"] for op in nodes if not BUILTIN_NAME.match(op["op_name"])})),
        float_ops=dict(sorted(float_ops.items())),
        xnnpack=XnnpackReport(applied=bool(delegates), partitions=len(delegates), delegated_nodes=len(taken),
                              not_delegated=dict(sorted(left.items()))),
    )


def per_channel_weights(interpreter: Any) -> bool:
    """Whether any weight tensor is quantized per channel (one scale per output channel)."""
    return any(len(d["quantization_parameters"]["scales"]) > 1 for d in interpreter.get_tensor_details())


def predict(interpreter: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Scores (N, classes) for uint8 images (N, H, W[, C]) of raw pixels, ``batch_size`` per invoke.

    Integer inputs are quantized and integer outputs dequantized with the tensors' own parameters.
    """
    x = images[..., None] if images.ndim == 3 else images
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_q, out_q = Quantization.from_tensor(inp), Quantization.from_tensor(out)
    values = x.astype(np.float32)
    inputs = values if in_q is None else quantize(values, in_q, inp["dtype"])
    outputs = run_batched(interpreter, inputs.astype(inp["dtype"]), max(1, batch_size))
    return outputs.astype(np.float32) if out_q is None else dequantize(outputs, out_q)


def metrics(predicted: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
            reference: np.ndarray | None = None, reference_accuracy: float | None = None) -> CardMetrics:
    """Top-1 accuracy and per-class recall of ``predicted`` class indices; with a float32
    ``reference`` (its predictions and accuracy) also the difference in percentage points
    and the top-1 agreement."""
    accuracy = float((predicted == labels).mean())
    result = CardMetrics(
        split="test", n=int(len(labels)), accuracy=round(accuracy, 5),
        per_class_recall={name: round(float((predicted[labels == i] == i).mean()), 4)
                          for i, name in enumerate(class_names) if (labels == i).any()})
    if reference is None or reference_accuracy is None:
        return result
    return replace(result, float32_accuracy=round(reference_accuracy, 5),
                   accuracy_delta_pt=round((accuracy - reference_accuracy) * 100, 3),
                   agreement_with_float32=round(float((predicted == reference).mean()), 5))
