"""Test faces for the benchmarks and top-1 accuracy of a model on them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from train.data_loading import load_split

from .errors import BenchmarkError
from .tflite_model import run_batched

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestFaces:
    """uint8 face crops ``N x 48 x 48`` with their class index in ``labels``."""

    faces: np.ndarray
    targets: np.ndarray
    labels: tuple[str, ...]
    source: str


def load_test_faces(data: str | Path, split: str, labels: Sequence[str], limit: int | None = None,
                    seed: int = 0) -> TestFaces:
    """The ``split`` of ``data`` (``DIR/<split>/<class>/*`` or fer2013.csv) for ``labels``.

    ``limit`` keeps a random (seeded, hence repeatable) subset of that many faces.
    """
    data = Path(data)
    if not data.exists():
        raise BenchmarkError(f"--data {data} does not exist; give the FER2013 folder holding "
                             f"{split}/<class>/ (e.g. ../shared/data/fer2013) or leave --data out to show "
                             "the accuracy recorded in the model cards")
    faceset = load_split(data, split, tuple(labels))
    faces, targets = faceset.images, faceset.labels
    if limit is not None and limit < len(targets):
        keep = np.sort(np.random.default_rng(seed).permutation(len(targets))[:limit])
        faces, targets = faces[keep], targets[keep]
    log.info("%d %s faces of %s from %s", len(targets), split, ", ".join(labels), data)
    return TestFaces(faces, targets, tuple(labels), f"{data} ({split} split)")


def predictions(model: Any, interpreter: Any, faces: np.ndarray, labels: Sequence[str],
                batch_size: int = 256) -> np.ndarray:
    """Predicted class index in ``labels`` for each face (argmax over those labels' scores only)."""
    outputs = run_batched(interpreter, model.prepare(faces), batch_size)
    return np.argmax(model.scores(outputs, labels), axis=1)


def accuracy(model: Any, interpreter: Any, test: TestFaces, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``test``, scored over ``test.labels``."""
    predicted = predictions(model, interpreter, test.faces, test.labels, batch_size)
    return float((predicted == test.targets).mean())
