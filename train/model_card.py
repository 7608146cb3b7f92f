"""The model card of a trained Keras model, and the records of the models a run learns from.

The card is an :class:`edge_runtime.model.card.ModelCard` (variant ``keras``), written with
:func:`edge_runtime.model.card.write_card`. A warm start (``--init-from``) and the teachers
(``--teacher``) are recorded as :class:`SourceModelRecord` when the run starts, in the run directory,
and copied into the card's ``training`` record when it ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from edge_runtime.atomic_io import atomic_write_json
from edge_runtime.labelled_faces.loading import IMAGE_SIZE
from edge_runtime.model.card import CardMetrics, InputSpec, ModelCard, OutputSpec, file_sha256, load_card
from edge_runtime.model.card_schema import SchemaError, from_json, to_json

from . import finetune, models
from .config import card_config
from .distillation import TEACHERS_FILE
from .errors import UserError
from .records import SourceModelRecord, TrainingRecord, training_record

# Written into the run directory when a run warm-starts (--init-from).
WARM_START_FILE = "init_from.json"


def keras_card(path: Path, labels: tuple[str, ...], model: keras.Model, training: TrainingRecord,
               metrics: CardMetrics | None = None) -> ModelCard:
    """The card at ``path`` (``<name>.json``) of the trained ``<name>.keras`` model (variant ``keras``)."""
    path = Path(path)
    return ModelCard(
        name=path.stem, variant="keras", file=f"{path.stem}.keras", labels=tuple(labels),
        input=InputSpec(height=IMAGE_SIZE, width=IMAGE_SIZE, channels=1, color="grayscale", dtype="float32",
                        value_range=(0, 255)),
        output=OutputSpec(dtype="float32", kind="probabilities"),
        architecture=training.config["arch"], backbone=to_json(finetune.backbone(training.config)),
        parameters=int(model.count_params()), macs_per_face=models.count_macs(model), training=to_json(training),
        metrics=metrics or CardMetrics(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        tools={"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}, path=path)


def source_model_record(source_path: str | Path, role: str = "--init-from") -> SourceModelRecord:
    """Where a model a run learns from (its warm start, a teacher: ``role``) came from: file, sha256, and the
    source's own command, accuracy and origin.

    Recorded when a run starts (the source file may be replaced later), so a chain of
    warm starts and teachers stays traceable from the last model's card.
    """
    card = load_card(source_path)
    training = training_record(card)
    config = card_config(card, f"{role} {source_path}")
    return SourceModelRecord(file=str(source_path), sha256=file_sha256(source_path), name=card.name,
                             labels=card.labels, command=config.command if config else None,
                             epochs_run=training.epochs_run, test_accuracy=card.metrics.accuracy,
                             init_from=training.init_from)


def write_records(path: Path, records: SourceModelRecord | list[SourceModelRecord]) -> None:
    """Write one source record (a warm start) or a list of them (the teachers) as JSON."""
    atomic_write_json(path, to_json(records))


def read_record(path: Path) -> SourceModelRecord:
    """The warm start's record, as :func:`write_records` wrote it."""
    return _read(path, lambda data: from_json(SourceModelRecord, data, path.name))


def read_record_list(path: Path) -> list[SourceModelRecord]:
    """The teachers' records, as :func:`write_records` wrote them."""
    return _read(path, lambda data: [from_json(SourceModelRecord, item, f"{path.name}[{i}]")
                                     for i, item in enumerate(data)])


def _read(path: Path, parse: Callable[[Any], Any]) -> Any:
    try:
        return parse(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, SchemaError) as exc:
        raise UserError(f"{path} is not a record of source models ({exc}); start a new run with --force") from exc


def record_teachers(run_dir: Path, paths: list[str], resume: bool) -> None:
    """Record the teachers when a run starts; on ``--resume``, refuse a teacher file that has changed since."""
    record_path = run_dir / TEACHERS_FILE
    if resume and record_path.is_file():
        for record in read_record_list(record_path):
            if not Path(record.file).is_file() or file_sha256(record.file) != record.sha256:
                raise UserError(f"--teacher {record.file} is missing or has changed since this run started; "
                                f"restore it (sha256 {record.sha256[:12]}...) or start a new run")
        return
    write_records(record_path, [source_model_record(path, "--teacher") for path in paths])


def learned_from(run_dir: Path, teachers: bool) -> dict[str, Any]:
    """The ``init_from`` and ``teachers`` fields of a run's training record, from its run directory."""
    warm_start = run_dir / WARM_START_FILE
    return {"init_from": read_record(warm_start) if warm_start.is_file() else None,
            "teachers": tuple(read_record_list(run_dir / TEACHERS_FILE)) if teachers else ()}
