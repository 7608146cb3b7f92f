"""The faces every accuracy report scores, per label set, and the scores themselves.

Every evaluation scores a model against both label sets where FER+ votes are available:
FER2013's folder labels and the FER+ majority labels (see :mod:`edge_runtime.labelled_faces.ferplus`).
A face counts for a label set when its label in that set is one of the model's classes; the
*consensus* faces are those whose two labels agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.labelled_faces import ferplus
from edge_runtime.labelled_faces.errors import FaceDataError
from edge_runtime.labelled_faces.loading import FER2013_CLASSES, FaceSet, load_split

FOLDER_CLASSES = tuple(sorted(FER2013_CLASSES))
# What a training run fits (``python -m train --train-on``): the training split less validation, or that
# plus the test split's faces. A model that fitted test is scored on its validation faces instead.
TRAIN_ON_CHOICES = ("train", "train+test")


@dataclass(frozen=True)
class ScoredFaces:
    """Faces with their label in each set as an index in ``classes`` (-1: not one of them, or no label)."""

    images: np.ndarray
    fer2013: np.ndarray
    ferplus: np.ndarray | None
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def label_sets(self) -> dict[str, np.ndarray]:
        """``{name: labels}`` for each label set present, plus ``consensus`` when both are."""
        sets = {"fer2013": self.fer2013}
        if self.ferplus is not None:
            sets["ferplus"] = self.ferplus
            sets["consensus"] = np.where(self.ferplus == self.fer2013, self.fer2013, -1)
        return sets


def trained_on_test(config: Mapping[str, Any]) -> bool:
    """Whether the run of ``config`` (a run config, or a card's ``training.config``) fitted the test faces."""
    return config.get("train_on", "train") == "train+test"


def held_out_split(config: Mapping[str, Any]) -> str:
    """The split a model's figures are reported on: ``test``, or ``validation`` when it fitted test."""
    return "validation" if trained_on_test(config) else "test"


def resolve_votes(data: str | Path, votes: str | Path | None, required: bool) -> ferplus.Votes | None:
    """The votes file given, else the default one beside ``data`` if present; ``None`` when optional and absent."""
    if votes is None:
        default = ferplus.default_votes_path(data)
        if not default.is_file():
            if required:
                raise FaceDataError(f"--labels ferplus needs the FER+ votes: {default} not found; give --votes PATH")
            return None
        votes = default
    return ferplus.load_votes(votes)


def scored_faces(faces: FaceSet, classes: tuple[str, ...], votes: ferplus.Votes | None) -> ScoredFaces:
    """Score ``faces`` (folder-labelled) against ``classes``; keep faces with a label among them in either set."""
    folder = ferplus.folder_labels(faces.labels, faces.classes, classes)
    plus = None
    if votes is not None:
        plus = ferplus.majority_labels(ferplus.counts_for(votes, faces.ids), classes)
    keep = folder >= 0 if plus is None else (folder >= 0) | (plus >= 0)
    return ScoredFaces(faces.images[keep], folder[keep], None if plus is None else plus[keep], classes)


def load_scored_split(data: str | Path, split: str, classes: tuple[str, ...],
                      votes: ferplus.Votes | None) -> ScoredFaces:
    """One split of ``data`` scored against ``classes``: every FER2013 folder is loaded when votes are
    given (a fear-folder face can be FER+ neutral), else the folders of ``classes`` only."""
    folders = FOLDER_CLASSES if votes is not None else tuple(c for c in classes if c in FOLDER_CLASSES)
    if votes is not None and Path(data).is_dir():          # a data set may hold only some of the folders
        folders = tuple(c for c in folders if (Path(data) / split / c).is_dir() or c in classes)
    return scored_faces(load_split(data, split, folders), classes, votes)


def accuracy_by_label_set(predicted: np.ndarray, label_sets: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Accuracy of ``predicted`` against each label set; a face without a label (-1) in a set does not
    count for it, and a set without any labelled face gets ``None``."""
    out = {}
    for name, labels in label_sets.items():
        mask = labels >= 0
        out[name] = float((predicted[mask] == labels[mask]).mean()) if mask.any() else None
    return out


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, balanced accuracy (mean recall over classes present), per-class precision/recall/F1/support,
    macro F1 and the confusion matrix.

    ``confusion[i][j]`` counts images of true class ``labels[i]`` predicted as ``labels[j]``.
    """
    n = len(labels)
    confusion = np.zeros((n, n), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(labels):
        tp = confusion[i, i]
        predicted, actual = confusion[:, i].sum(), confusion[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                           "f1": round(float(f1), 4), "support": int(actual)}
    return {
        "n": int(len(y_true)),
        "accuracy": round(float((y_true == y_pred).mean()) if len(y_true) else 0.0, 4),
        "balanced_accuracy": round(float(np.mean([c["recall"] for c in per_class.values() if c["support"]]
                                                 or [0.0])), 4),
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4),
        "labels": list(labels),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
