"""Test faces for the benchmarks and a model's top-1 accuracy on them, against every label set.

Faces are scored against FER2013's folder labels and, where FER+ votes are found (``--votes``,
or ``ferplus/votes.csv`` beside ``--data``), the FER+ majority labels and the consensus faces
(both labels agree); see :mod:`edge_runtime.labelled_faces.scoring`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.labelled_faces import scoring

from .errors import BenchmarkError
from .tflite_model import run_batched

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestFaces:
    """uint8 face crops ``N x 48 x 48`` with their class index in ``labels`` per label set (-1: none)."""

    faces: np.ndarray
    label_sets: dict[str, np.ndarray]
    labels: tuple[str, ...]
    source: str

    @property
    def targets(self) -> np.ndarray:
        """FER2013 folder labels (-1 where a face counts only for FER+)."""
        return self.label_sets["fer2013"]

    def counts(self) -> dict[str, int]:
        """Faces that count, per label set."""
        return {name: int((labels >= 0).sum()) for name, labels in self.label_sets.items()}


def refuse_fitted_test(card: Any, what: str) -> None:
    """One error line when ``card``'s model fitted the test faces (``--train-on train+test``): a benchmark
    that reports on test would score it on faces it trained on. ``what`` names the model, e.g. ``--model X``."""
    if card is not None and scoring.trained_on_test(card.training_config):
        raise BenchmarkError(f"{what} fitted the test faces (trained with --train-on train+test), and this "
                             "benchmark reports on test; give a model trained with --train-on train (its card's "
                             "figures are on validation)")


def load_test_faces(data: str | Path, split: str, labels: Sequence[str], limit: int | None = None,
                    seed: int = 0, votes: str | Path | None = None) -> TestFaces:
    """The ``split`` of ``data`` (``DIR/<split>/<class>/*`` or fer2013.csv) scored for ``labels``.

    ``limit`` keeps a random (seeded, hence repeatable) subset of that many faces.
    """
    data = Path(data)
    if not data.exists():
        raise BenchmarkError(f"--data {data} does not exist; give the FER2013 folder holding "
                             f"{split}/<class>/ (e.g. ../shared/data/fer2013) or leave --data out to show "
                             "the accuracy recorded in the model cards")
    vote_table = scoring.resolve_votes(data, votes, required=votes is not None)
    scored = scoring.load_scored_split(data, split, tuple(labels), vote_table)
    sets = scored.label_sets()
    faces = scored.images
    if limit is not None and limit < len(faces):
        keep = np.sort(np.random.default_rng(seed).permutation(len(faces))[:limit])
        faces, sets = faces[keep], {name: value[keep] for name, value in sets.items()}
    result = TestFaces(faces, sets, tuple(labels), f"{data} ({split} split)")
    log.info("%s %s faces of %s from %s", ", ".join(f"{n} {k}" for k, n in result.counts().items()), split,
             ", ".join(labels), data)
    return result


def predictions(model: Any, interpreter: Any, faces: np.ndarray, labels: Sequence[str],
                batch_size: int = 256) -> np.ndarray:
    """Predicted class index in ``labels`` for each face (argmax over those labels' scores only)."""
    outputs = run_batched(interpreter, model.prepare(faces), batch_size)
    return np.argmax(model.scores(outputs, labels), axis=1)


@dataclass(frozen=True)
class Scores:
    """A model's top-1 scores on test faces, per label set: accuracy, balanced accuracy (the mean recall
    of the classes that have faces) and the recall of each class (``None`` where a set or class has none)."""

    accuracy: dict[str, float | None]
    balanced: dict[str, float | None]
    recall: dict[str, dict[str, float | None]]


def score(predicted: np.ndarray, test: TestFaces) -> Scores:
    """The :class:`Scores` of predicted class indices on ``test`` (recall and balanced accuracy as
    :func:`~edge_runtime.labelled_faces.scoring.classification_report` computes them for the model cards)."""
    recall: dict[str, dict[str, float | None]] = {}
    balanced: dict[str, float | None] = {}
    for name, labels in test.label_sets.items():
        mask = labels >= 0
        report = scoring.classification_report(labels[mask], predicted[mask], test.labels)
        recall[name] = {label: c["recall"] if c["support"] else None for label, c in report["per_class"].items()}
        balanced[name] = report["balanced_accuracy"] if mask.any() else None
    return Scores(scoring.accuracy_by_label_set(predicted, test.label_sets), balanced, recall)


def scores(model: Any, interpreter: Any, test: TestFaces, batch_size: int = 256) -> Scores:
    """The :class:`Scores` of ``model`` on ``test``, over ``test.labels``."""
    return score(predictions(model, interpreter, test.faces, test.labels, batch_size), test)


def accuracies(model: Any, interpreter: Any, test: TestFaces, batch_size: int = 256) -> dict[str, float | None]:
    """Top-1 accuracy of ``model`` on ``test`` for every label set, scored over ``test.labels``."""
    return scores(model, interpreter, test, batch_size).accuracy
