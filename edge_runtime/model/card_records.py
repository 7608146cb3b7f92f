"""The parts of a model card beyond the runtime contract: metrics, training record, provenance, conversion.

Each class is a record of :mod:`edge_runtime.model.card_schema` (one field per JSON key, in the
order written). Free-form parts stay ``dict``: the training ``config`` echo (typed by
``train.config.RunConfig``), the ``data_report``, a backbone's weights source, the ``tools`` versions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from edge_runtime.model.card_schema import optional, rest


@dataclass(frozen=True, kw_only=True)
class CardMetrics:
    """A model's test figures: the typed ones, and in ``extra`` the figures per label set
    (``accuracy_<set>``, ``balanced_accuracy_<set>``, ``n_<set>``, ``per_class_recall_<set>``)."""

    split: str | None = optional()
    label_source: str | None = optional()
    n: int | None = optional()
    accuracy: float | None = optional()
    balanced_accuracy: float | None = optional()
    macro_f1: float | None = optional()
    per_class_recall: dict[str, float] | None = optional()
    #: a .tflite variant against the float32 .tflite of the same Keras model
    float32_accuracy: float | None = optional()
    accuracy_delta_pt: float | None = optional()
    agreement_with_float32: float | None = optional()
    #: the mobile variant against the int8 variant
    int8_accuracy: float | None = optional()
    accuracy_delta_vs_int8_pt: float | None = optional()
    agreement_with_int8: float | None = optional()
    extra: dict[str, Any] = rest()

    def get(self, key: str, default: Any = None) -> Any:
        """A figure by its card key: a typed field, else one of ``extra``; ``default`` when absent or null."""
        value = getattr(self, key) if key in _METRIC_FIELDS else self.extra.get(key)
        return default if value is None else value


_METRIC_FIELDS = frozenset(f.name for f in fields(CardMetrics)) - {"extra"}


@dataclass(frozen=True, kw_only=True)
class SourceModelRecord:
    """A model a run learned from (its ``--init-from`` warm start, a ``--teacher``), as it was when the run
    started: file, sha256, and the source's own name, labels, command, accuracy and warm start."""

    file: str
    sha256: str
    name: str | None = None
    labels: tuple[str, ...] | None = None
    command: str | None = None
    epochs_run: int | None = None
    test_accuracy: float | None = None
    init_from: SourceModelRecord | None = None


@dataclass(frozen=True, kw_only=True)
class PriorAdjustment:
    """The logit adjustment folded into the output bias: ``tau`` x the training class ``prior``, and
    with ``--class-bias`` one bias per class chosen on validation."""

    tau: float
    prior: dict[str, float]
    class_bias: dict[str, float] | None = optional()


@dataclass(frozen=True, kw_only=True)
class GuardRecord:
    """The ``--guard`` model and the per-class consensus recall the run had to keep (within ``margin_pt``)."""

    model: str
    sha256: str
    met: bool | None = optional()
    margin_pt: float
    reference_consensus_recall: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class TrainingRecord:
    """How a Keras model was trained: the run's ``config`` (``config.json``), its data report, the chosen
    epoch and adjustment, and the models it learned from."""

    #: Written by older training code (the seconds of a run's last resume; ``train_seconds`` covers them all).
    RETIRED_KEYS: ClassVar[tuple[str, ...]] = ("last_session_seconds",)

    config: dict[str, Any] = optional(factory=dict)
    data_report: dict[str, Any] | None = optional()
    best_val_accuracy: float | None = optional()
    best_val_accuracy_by_label_set: dict[str, float | None] | None = optional()
    epochs_run: int | None = optional()
    best_epoch: int | None = optional()
    train_seconds: float | None = optional()
    prior_adjustment: PriorAdjustment | None = optional()
    guard: GuardRecord | None = optional()
    init_from: SourceModelRecord | None = optional()
    teachers: tuple[SourceModelRecord, ...] = optional(factory=tuple)
    #: ``--teacher-bias``: the bias per class added to the teachers' log-probabilities
    teacher_bias: dict[str, float] | None = optional()


@dataclass(frozen=True, kw_only=True)
class Backbone:
    """A transfer architecture's pretrained backbone: its name, input resolution, weights and their source."""

    architecture: str
    resolution: int | None
    weights: dict[str, Any]
    freeze_epochs: int
    finetune_lr_factor: float | None


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
