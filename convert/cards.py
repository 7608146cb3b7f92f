"""Model cards of the converted .tflite variants (schema in edge_runtime/model/card.py)."""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edge_runtime.model.card import MOBILE_VARIANT, SCHEMA_VERSION
from edge_runtime.model.contract import variant_dtype

from .quantize import DESCRIPTIONS

# Fields of the Keras model's card carried over unchanged to every variant.
COPIED_FIELDS = ("face_crop", "architecture", "backbone", "parameters", "macs_per_face", "training")
TOOL_PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "numpy", "opencv-python-headless", "fer-edge")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def tool_versions() -> dict[str, str]:
    """Versions of the packages that made the model, and Python's."""
    tools = {"python": platform.python_version()}
    for package in TOOL_PACKAGES:
        try:
            tools[package] = version(package)
        except PackageNotFoundError:
            tools[package] = "not installed"
    return tools


def expected_card(keras_card: dict, variant: str, file_name: str) -> dict:
    """The contract a variant must meet, before its numbers are known: labels, input, output."""
    spec = keras_card["input"]
    dtype = variant_dtype(variant)
    rgb = variant == MOBILE_VARIANT      # uint8 RGB in, grey conversion inside the graph
    return {
        "schema_version": SCHEMA_VERSION,
        "name": keras_card.get("name", Path(file_name).stem.rsplit("_", 1)[0]),
        "variant": variant,
        "file": file_name,
        "labels": list(keras_card["labels"]),
        "input": {"height": int(spec["height"]), "width": int(spec["width"]),
                  "channels": 3 if rgb else int(spec["channels"]),
                  "color": "rgb" if rgb else spec.get("color", "grayscale"), "dtype": dtype,
                  "value_range": list(spec.get("value_range", [0, 255]))},
        "output": {"dtype": dtype, "kind": keras_card.get("output", {}).get("kind", "probabilities")},
    }


@dataclass(frozen=True)
class VariantFacts:
    """What one converted variant is, as measured once converted: the card's own fields."""

    variant: str
    file_name: str
    model_bytes: bytes = field(repr=False)
    io: dict            # convert.verify.io_details: the quantization the converter chose
    ops: dict           # convert.verify.op_report
    metrics: dict
    quantization: dict
    calibration: dict | None


def build_card(keras_card: dict, facts: VariantFacts, *, source_file: str, source_sha256: str) -> dict:
    """The full card of one converted variant of the Keras model of ``keras_card``."""
    card = expected_card(keras_card, facts.variant, facts.file_name)
    for tensor in ("input", "output"):
        if facts.io[tensor]["quantization"] is not None:
            card[tensor]["quantization"] = facts.io[tensor]["quantization"]
    for key in COPIED_FIELDS:
        if key in keras_card:
            card[key] = keras_card[key]
    card.update({
        "description": DESCRIPTIONS[facts.variant],
        "source_model": {"file": source_file, "sha256": source_sha256,
                         "metrics": keras_card.get("metrics")},
        "sha256": sha256_bytes(facts.model_bytes),
        "size_bytes": len(facts.model_bytes),
        "quantization": facts.quantization,
        "calibration": facts.calibration,
        "ops": facts.ops,
        "metrics": facts.metrics,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tools": tool_versions(),
    })
    return card


def summary_line(card: dict[str, Any]) -> str:
    """One summary line for logs: file, size, accuracy and difference from float32."""
    m = card["metrics"]
    delta = m.get("accuracy_delta_pt")
    delta_text = ("" if delta is None else
                  f" ({delta:+.2f} pt vs float32, agreement {m['agreement_with_float32']:.4f})")
    return (f"{card['file']}: {card['size_bytes'] / 1024:.0f} KiB, "
            f"test accuracy {m['accuracy']:.4f}{delta_text}")
