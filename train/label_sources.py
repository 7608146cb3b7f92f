"""Where a run's targets come from (``--labels fer2013|ferplus``), and how validation scores choose an epoch.

The faces every report scores, per label set, are :mod:`edge_runtime.labelled_faces.scoring`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edge_runtime.labelled_faces import ferplus
from edge_runtime.labelled_faces.loading import FaceSet
from edge_runtime.labelled_faces.scoring import ScoredFaces, accuracy_by_label_set

log = logging.getLogger(__name__)

LABEL_SOURCES = ("fer2013", "ferplus")
# Best-epoch criteria on validation: either label set's accuracy, or their mean.
SELECT_CHOICES = ("mean", "ferplus", "fer2013")


@dataclass(frozen=True)
class TrainingSet:
    """What a run fits: images, soft targets (rows sum to 1) and the hard label used for class weights."""

    images: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> np.ndarray:
        return self.targets.argmax(axis=1)


def training_set(train: FaceSet, classes: tuple[str, ...], votes: ferplus.Votes | None, source: str,
                 blend: float) -> tuple[TrainingSet, dict]:
    """The training images and targets for ``source``, and what was kept (for the data report)."""
    if source == "fer2013":
        restricted = train.restrict(classes)
        targets = np.eye(len(classes), dtype=np.float32)[restricted.labels]
        return TrainingSet(restricted.images, targets), {"images": len(restricted)}
    counts = ferplus.counts_for(votes, train.ids)
    index, targets = ferplus.training_targets(counts, train.labels, train.classes, classes, blend)
    kept = {"images": int(index.size), "blend": blend,
            "by_class": {c: int(n) for c, n in zip(classes, np.bincount(targets.argmax(1), minlength=len(classes)),
                                                   strict=True)}}
    log.info("FER+ targets (blend %g): %d training images", blend, index.size)
    return TrainingSet(train.images[index], targets), kept


def coverage(train: FaceSet, test: FaceSet, votes: ferplus.Votes) -> dict:
    """The data report's FER+ section: coverage and folder/majority agreement per split."""
    return {"votes": str(votes.path),
            **{name: ferplus.coverage_report(ferplus.counts_for(votes, faces.ids), faces.labels, faces.classes)
               for name, faces in (("train", train), ("test", test))}}


def adjust_for_prior(probs: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """Logit adjustment: ``softmax(log p - tau log prior)``; what the exported model computes when
    ``tau`` is folded into its output bias (``train.prior.fold_into_bias``)."""
    if tau == 0:
        return probs
    logits = np.log(np.maximum(probs, 1e-12)) - tau * np.log(np.maximum(prior, 1e-12))
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def accuracies(predicted: np.ndarray, faces: ScoredFaces) -> dict[str, float]:
    """Accuracy per label set of ``faces`` (0 for a set without labelled faces), for selection."""
    return {name: value or 0.0 for name, value in accuracy_by_label_set(predicted, faces.label_sets()).items()}


def selection_score(acc: dict[str, float], select: str) -> float:
    """The best-epoch criterion: one label set's accuracy, or the mean of both."""
    if select == "mean":
        return (acc["fer2013"] + acc.get("ferplus", acc["fer2013"])) / 2
    return acc.get(select, acc["fer2013"])
