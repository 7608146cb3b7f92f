"""The records training writes into a model card: ``training`` (how the run went, what it learned from)
and ``backbone`` (a transfer architecture's pretrained weights).

Each class is a record of :mod:`edge_runtime.model.card_schema` (one field per JSON key, in the order
written). The runtime keeps these sections as JSON objects; :func:`training_record` and
:func:`backbone_record` read them typed. Free-form parts stay ``dict``: the training ``config`` echo
(typed by ``train.config.RunConfig``), the ``data_report`` and a backbone's weights source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edge_runtime.model.card import ModelCard, card_section
from edge_runtime.model.card_schema import optional


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


def training_record(card: ModelCard) -> TrainingRecord:
    """The card's ``training`` section, typed (empty when the card records none)."""
    return card_section(card, "training", TrainingRecord) or TrainingRecord()


def backbone_record(card: ModelCard) -> Backbone | None:
    """The card's ``backbone`` section, typed (``None`` for a model trained from scratch)."""
    return card_section(card, "backbone", Backbone)
