"""Model cards of the converted .tflite variants (schema in edge_runtime/model/card.py)."""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edge_runtime.model.card import (
    MOBILE_VARIANT,
    CardMetrics,
    InputSpec,
    ModelCard,
    OutputSpec,
    Quantization,
    card_path_for,
)
from edge_runtime.model.card_schema import to_json
from edge_runtime.model.contract import variant_dtype

from .quantize import DESCRIPTIONS
from .records import CalibrationRecord, OpsReport, QuantizationRecord, SourceModel

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


@dataclass(frozen=True)
class TensorFacts:
    """One I/O tensor of a converted model, as LiteRT loads it (``convert.verify.io_details``)."""

    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization | None


@dataclass(frozen=True)
class VariantFacts:
    """What one converted variant is, as measured once converted: the card's own fields."""

    variant: str
    file_name: str
    model_bytes: bytes = field(repr=False)
    io: dict[str, TensorFacts]      # "input", "output": the quantization the converter chose
    ops: OpsReport
    metrics: CardMetrics
    quantization: QuantizationRecord
    calibration: CalibrationRecord | None


def build_card(keras_card: ModelCard, facts: VariantFacts, *, folder: Path, source_file: str,
               source_sha256: str) -> ModelCard:
    """The card of one converted variant of the Keras model of ``keras_card``, to be written in ``folder``.

    The labels, input size, face crop, architecture and training record are the Keras model's; the
    input and output types are the variant's (``mobile``: uint8 RGB in, grey conversion inside the graph).
    """
    spec, dtype = keras_card.input, variant_dtype(facts.variant)
    rgb = facts.variant == MOBILE_VARIANT
    return ModelCard(
        name=keras_card.name, variant=facts.variant, file=facts.file_name, labels=keras_card.labels,
        input=InputSpec(height=spec.height, width=spec.width, channels=3 if rgb else spec.channels,
                        color="rgb" if rgb else spec.color, dtype=dtype, value_range=spec.value_range,
                        quantization=facts.io["input"].quantization),
        output=OutputSpec(dtype=dtype, kind=keras_card.output.kind, quantization=facts.io["output"].quantization),
        face_crop=keras_card.face_crop, architecture=keras_card.architecture, backbone=keras_card.backbone,
        parameters=keras_card.parameters, macs_per_face=keras_card.macs_per_face, training=keras_card.training,
        description=DESCRIPTIONS[facts.variant],
        source_model=to_json(SourceModel(file=source_file, sha256=source_sha256, metrics=keras_card.metrics)),
        sha256=sha256_bytes(facts.model_bytes), size_bytes=len(facts.model_bytes),
        quantization=to_json(facts.quantization), calibration=to_json(facts.calibration), ops=to_json(facts.ops),
        metrics=facts.metrics,
        created=datetime.now(UTC).isoformat(timespec="seconds"), tools=tool_versions(),
        path=card_path_for(Path(folder) / facts.file_name))


def summary_line(card: ModelCard) -> str:
    """One summary line for logs: file, size, accuracy and difference from float32."""
    m = card.metrics
    delta_text = ("" if m.accuracy_delta_pt is None else
                  f" ({m.accuracy_delta_pt:+.2f} pt vs float32, agreement {m.agreement_with_float32:.4f})")
    return (f"{card.file}: {(card.size_bytes or 0) / 1024:.0f} KiB, "
            f"test accuracy {m.accuracy:.4f}{delta_text}")
