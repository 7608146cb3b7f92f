"""The faces a conversion calibrates on, tunes int8 on and reports on, per the card's label source.

A model trained on FER2013's folder labels is checked against them; one trained on FER+ votes
(``training.config.labels == "ferplus"``) against the FER+ majority labels. Either way, where
FER+ votes are found, every variant's card reports accuracy on both label sets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.labelled_faces import ferplus, scoring
from edge_runtime.labelled_faces.loading import FaceSet
from edge_runtime.model.card import ModelCard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalFaces:
    """Faces, their label in the model's own label source (-1: none) and in every label set."""

    images: np.ndarray
    labels: np.ndarray
    label_sets: dict[str, np.ndarray]

    @property
    def mask(self) -> np.ndarray:
        """The faces that count for the model's own label source."""
        return self.labels >= 0

    def accuracy(self, predicted: np.ndarray) -> float:
        """Accuracy on the model's own label source."""
        return float((predicted[self.mask] == self.labels[self.mask]).mean())

    def by_label_set(self, predicted: np.ndarray) -> dict:
        """``accuracy_<set>`` and ``n_<set>`` for every label set."""
        out = {}
        for name, value in scoring.accuracy_by_label_set(predicted, self.label_sets).items():
            out[f"accuracy_{name}"] = None if value is None else round(value, 5)
            out[f"n_{name}"] = int((self.label_sets[name] >= 0).sum())
        return out


def label_source(card: ModelCard) -> str:
    """The label set the model was trained on, from its card."""
    return card.training_config.get("labels", "fer2013")


def load_votes(card: ModelCard, data: str | Path) -> ferplus.Votes | None:
    """The FER+ votes the model was trained with, or found beside ``data``; required for a FER+ model."""
    return scoring.resolve_votes(data, card.training_config.get("votes"),
                                       required=label_source(card) == "ferplus")


def folders_to_load(card: ModelCard) -> tuple[str, ...]:
    """FER2013 folders to load: all of them for a FER+ model, else the model's labels."""
    if label_source(card) == "ferplus":
        return scoring.FOLDER_CLASSES
    return card.labels


def eval_faces(faces: FaceSet, card: ModelCard, votes: ferplus.Votes | None) -> EvalFaces:
    """Score folder-labelled ``faces`` against the card's labels in every label set."""
    scored = scoring.scored_faces(faces, card.labels, votes)
    sets = scored.label_sets()
    return EvalFaces(scored.images, sets[label_source(card)], sets)


def calibration_pool(fit: FaceSet, card: ModelCard, votes: ferplus.Votes | None) -> FaceSet:
    """The training faces calibration draws from, labelled (for stratification) in the model's label source."""
    labels = card.labels
    if label_source(card) != "ferplus":
        return fit.restrict(labels)
    majority = ferplus.majority_labels(ferplus.counts_for(votes, fit.ids), labels)
    keep = np.flatnonzero(majority >= 0)
    return FaceSet(fit.images[keep], majority[keep], [fit.ids[i] for i in keep], labels, fit.skipped,
                   fit.converted)
