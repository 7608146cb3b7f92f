"""Where a run's targets come from (``--labels fer2013|ferplus``) and the faces every report scores.

Every evaluation scores a model against both label sets where FER+ votes are available:
FER2013's folder labels and the FER+ majority labels (see ``train.ferplus``). A face counts
for a label set when its label in that set is one of the model's classes; the *consensus*
faces are those whose two labels agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ferplus
from .data_loading import FaceSet, load_split
from .errors import UserError
from .labels import FER2013_CLASSES

log = logging.getLogger(__name__)

LABEL_SOURCES = ("fer2013", "ferplus")
# Best-epoch criteria on validation: either label set's accuracy, or their mean.
SELECT_CHOICES = ("mean", "ferplus", "fer2013")
FOLDER_CLASSES = tuple(sorted(FER2013_CLASSES))


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


def resolve_votes(data: str | Path, votes: str | Path | None, required: bool) -> ferplus.Votes | None:
    """The votes file given, else the default one beside ``data`` if present; ``None`` when optional and absent."""
    if votes is None:
        default = ferplus.default_votes_path(data)
        if not default.is_file():
            if required:
                raise UserError(f"--labels ferplus needs the FER+ votes: {default} not found; give --votes PATH")
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


def accuracy_by_label_set(predicted: np.ndarray, label_sets: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Accuracy of ``predicted`` against each label set; a face without a label (-1) in a set does not
    count for it, and a set without any labelled face gets ``None``."""
    out = {}
    for name, labels in label_sets.items():
        mask = labels >= 0
        out[name] = float((predicted[mask] == labels[mask]).mean()) if mask.any() else None
    return out


def accuracies(predicted: np.ndarray, faces: ScoredFaces) -> dict[str, float]:
    """Accuracy per label set of ``faces`` (0 for a set without labelled faces), for selection."""
    return {name: value or 0.0 for name, value in accuracy_by_label_set(predicted, faces.label_sets()).items()}


def selection_score(acc: dict[str, float], select: str) -> float:
    """The best-epoch criterion: one label set's accuracy, or the mean of both."""
    if select == "mean":
        return (acc["fer2013"] + acc.get("ferplus", acc["fer2013"])) / 2
    return acc.get(select, acc["fer2013"])
