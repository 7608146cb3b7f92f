"""The records conversion writes into a .tflite variant's card: where it came from, how it was
quantized and calibrated, its ops and the TFLite Model Metadata stamped into it.

Each class is a record of :mod:`edge_runtime.model.card_schema` (one field per JSON key, in the order
written). The runtime keeps these sections as JSON objects; read one typed with
``edge_runtime.model.card.card_section(card, "calibration", CalibrationRecord)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.model.card import CardMetrics
from edge_runtime.model.card_schema import optional


@dataclass(frozen=True, kw_only=True)
class SourceModel:
    """The Keras model a .tflite variant was converted from, and its own test metrics."""

    file: str
    sha256: str
    metrics: CardMetrics | None = None


@dataclass(frozen=True, kw_only=True)
class QuantizationRecord:
    """How a variant was quantized, and for integer variants what the input quantization means."""

    method: str
    activations: str | None = optional()
    weights: str | None = optional()
    max_accuracy_drop_pt: float | None = optional()
    fix: str | None = optional()
    input_is_pixel_minus_128: bool | None = optional()
    grey_weights_rgb: tuple[float, float, float] | None = optional()
    input_is_pixel: bool | None = optional()


@dataclass(frozen=True, kw_only=True)
class CalibrationAttempt:
    """One int8 calibration tried: its size and the accuracy it gave against float32."""

    samples: int
    accuracy: float | None = optional()
    accuracy_delta_pt: float | None = optional()
    agreement_with_float32: float | None = optional()
    validation_accuracy: float | None = optional()
    validation_delta_pt: float | None = optional()


@dataclass(frozen=True, kw_only=True)
class CalibrationRecord:
    """The representative images of an integer variant (``used`` false, with the ``reason``, for the others)."""

    used: bool | None = optional()
    reason: str | None = optional()
    split: str | None = optional()
    data: str | None = optional()
    requested: int | None = optional()
    samples: int | None = optional()
    per_class: dict[str, int] | None = optional()
    seed: int | None = optional()
    strategy: str | None = optional()
    pixel_range: tuple[int, int] | None = optional()
    extremes_pinned: bool | None = optional()
    images_sha256: str | None = optional()
    attempts: tuple[CalibrationAttempt, ...] = optional(factory=tuple)
    decided_on: str | None = optional()


@dataclass(frozen=True, kw_only=True)
class XnnpackReport:
    """What the XNNPACK delegate took: partitions, nodes, and the ops it left to the TFLite kernels."""

    applied: bool
    partitions: int
    delegated_nodes: int
    not_delegated: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class OpsReport:
    """A converted model's ops: counts, custom or Flex ops, ops on float tensors, and XNNPACK's share."""

    counts: dict[str, int]
    not_builtin: tuple[str, ...]
    float_ops: dict[str, int]
    xnnpack: XnnpackReport


@dataclass(frozen=True, kw_only=True)
class TfliteMetadata:
    """The TFLite Model Metadata stamped into the .tflite from the card (``convert.metadata``)."""

    format: str
    name: str
    version: str
    min_parser_version: str
    labels_file: str
    color_space: str
    normalization: dict[str, float] | None = None
