"""Check a converted .tflite with LiteRT: its I/O contract, its ops, its accuracy.

TensorFlow-free (LiteRT and numpy only), so benchmarks can reuse it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from edge_runtime.litert_runtime import make_interpreter
from train.errors import UserError

BUILTIN_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
FLOAT_TYPES = (np.float32, np.float16, np.float64)


class ContractError(UserError):
    """A converted model does not honour the contract its card states."""


def load(model_path: str, threads: int | None = None) -> Any:
    """Load ``model_path`` with LiteRT (XNNPACK applied, as on the device)."""
    return make_interpreter(str(model_path), num_threads=threads)


def _quantization(detail: dict) -> dict | None:
    scale, zero_point = detail["quantization"]
    if not scale:
        return None
    return {"scale": float(scale), "zero_point": int(zero_point)}


def io_details(interpreter: Any) -> dict:
    """Shape, dtype and quantization of the model's (single) input and output."""
    out = {}
    pairs = (("input", interpreter.get_input_details()), ("output", interpreter.get_output_details()))
    for key, details in pairs:
        if len(details) != 1:
            raise ContractError(f"the model has {len(details)} {key}s; a FER model has exactly one")
        detail = details[0]
        out[key] = {
            "shape": [int(v) for v in detail["shape_signature"]],
            "dtype": np.dtype(detail["dtype"]).name,
            "quantization": _quantization(detail),
        }
    return out


def expected_dtype(variant: str) -> str:
    """The I/O tensor type each variant must have."""
    return "int8" if variant == "int8" else "float32"


def check_contract(interpreter: Any, card: dict) -> None:
    """Raise :class:`ContractError` unless the model's I/O matches the card.

    Checked: input H x W x C, one output per label, I/O dtypes of the variant, and for
    integer inputs that the quantization represents every pixel value of ``value_range``
    exactly (scale at most 1, range covered) and equals the card's numbers.
    """
    io = io_details(interpreter)
    spec, variant = card["input"], card["variant"]
    want_shape = [int(spec["height"]), int(spec["width"]), int(spec["channels"])]
    name = card.get("file", "model")
    if io["input"]["shape"][1:] != want_shape or len(io["input"]["shape"]) != 4:
        raise ContractError(f"{name}: input shape {io['input']['shape']} is not [batch, {want_shape}]")
    if io["output"]["shape"][-1] != len(card["labels"]):
        raise ContractError(f"{name}: {io['output']['shape'][-1]} outputs but {len(card['labels'])} labels")
    for key in ("input", "output"):
        want = expected_dtype(variant)
        if io[key]["dtype"] != want or card[key]["dtype"] != want:
            raise ContractError(f"{name}: {key} dtype is {io[key]['dtype']} (card: {card[key]['dtype']}); "
                                f"the {variant} variant needs {want}")
        if want == "int8":
            got, stated = io[key]["quantization"], card[key].get("quantization")
            if got is None or stated is None:
                raise ContractError(f"{name}: int8 {key} without quantization parameters")
            if abs(got["scale"] - stated["scale"]) > 1e-9 or got["zero_point"] != stated["zero_point"]:
                raise ContractError(f"{name}: {key} quantization {got} differs from the card's {stated}")
    if expected_dtype(variant) == "int8":
        low, high = (float(v) for v in spec["value_range"])
        q = io["input"]["quantization"]
        lowest = (-128 - q["zero_point"]) * q["scale"]
        highest = (127 - q["zero_point"]) * q["scale"]
        if q["scale"] > 1.0 + 1e-6 or lowest > low + 1e-6 or highest < high - 1e-6:
            raise ContractError(f"{name}: input quantization {q} cannot represent every pixel of "
                                f"{low:g}..{high:g}; calibrate with images that hold both extremes")


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


def op_report(interpreter: Any) -> dict:
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
    return {
        "counts": dict(sorted(Counter(op["op_name"] for op in nodes).items())),
        "not_builtin": sorted({op["op_name"] for op in nodes if not BUILTIN_NAME.match(op["op_name"])}),
        "float_ops": dict(sorted(float_ops.items())),
        "xnnpack": {
            "applied": bool(delegates),
            "partitions": len(delegates),
            "delegated_nodes": len(taken),
            "not_delegated": dict(sorted(left.items())),
        },
    }


def per_channel_weights(interpreter: Any) -> bool:
    """Whether any weight tensor is quantized per channel (one scale per output channel)."""
    return any(len(d["quantization_parameters"]["scales"]) > 1 for d in interpreter.get_tensor_details())


def predict(interpreter: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities (N, classes) for uint8 images (N, H, W[, C]) of raw pixels.

    Integer inputs are quantized and integer outputs dequantized with the tensors' own
    parameters. The interpreter is resized to ``batch_size``; the last batch is padded.
    """
    x = images[..., None] if images.ndim == 3 else images
    inp = interpreter.get_input_details()[0]
    batch = max(1, min(batch_size, len(x)))
    if inp["shape_signature"][0] == -1 and inp["shape"][0] != batch:
        interpreter.resize_tensor_input(inp["index"], [batch, *x.shape[1:]])
        interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    batch = int(inp["shape"][0])
    in_q, out_q = _quantization(inp), _quantization(out)
    info = np.iinfo(inp["dtype"]) if np.issubdtype(inp["dtype"], np.integer) else None
    results = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch].astype(np.float32)
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), np.float32)])
        if info is not None:
            chunk = np.clip(np.round(chunk / in_q["scale"] + in_q["zero_point"]), info.min, info.max)
        interpreter.set_tensor(inp["index"], chunk.astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[:n].astype(np.float32)
        if out_q is not None:
            y = (y - out_q["zero_point"]) * out_q["scale"]
        results.append(y)
    return np.concatenate(results)


def metrics(predicted: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
            reference: np.ndarray | None = None, reference_accuracy: float | None = None) -> dict:
    """Top-1 accuracy and per-class recall of ``predicted`` class indices; with a float32
    ``reference`` (its predictions and accuracy) also the difference in percentage points
    and the top-1 agreement."""
    accuracy = float((predicted == labels).mean())
    result: dict[str, Any] = {
        "split": "test",
        "n": int(len(labels)),
        "accuracy": round(accuracy, 5),
        "per_class_recall": {name: round(float((predicted[labels == i] == i).mean()), 4)
                             for i, name in enumerate(class_names) if (labels == i).any()},
    }
    if reference is not None and reference_accuracy is not None:
        result["float32_accuracy"] = round(reference_accuracy, 5)
        result["accuracy_delta_pt"] = round((accuracy - reference_accuracy) * 100, 3)
        result["agreement_with_float32"] = round(float((predicted == reference).mean()), 5)
    return result
