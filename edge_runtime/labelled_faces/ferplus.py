"""FER+ crowd votes (10 annotators per FER2013 image): soft targets, majority labels, coverage.

``votes.csv`` (see ``../shared/data/ferplus/README.md``) has one row per image of the
folder-per-class FER2013 tree, keyed by its path below the data folder, with FER+'s ten
count columns. The FER+ protocol: counts of 1 are set to 0 (one annotator alone is noise);
an image has a *majority* label when its top class holds more than half of the remaining
votes and is neither ``unknown`` nor ``NF`` (not a face).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.labelled_faces.errors import FaceDataError

# FER+'s count columns, in its order, and the names we use for its emotions.
VOTE_COLUMNS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                 "contempt", "unknown", "NF")
FERPLUS_TO_OURS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                   "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
# Our class name -> its column in a counts row.
CLASS_COLUMN = {ours: VOTE_COLUMNS.index(theirs) for theirs, ours in FERPLUS_TO_OURS.items()}
UNKNOWN, NOT_A_FACE = VOTE_COLUMNS.index("unknown"), VOTE_COLUMNS.index("NF")
VOTES_NAME = "votes.csv"


def default_votes_path(data: str | Path) -> Path:
    """``ferplus/votes.csv`` beside the ``--data`` folder (as ``../shared/data/{fer2013,ferplus}``)."""
    return Path(data).resolve().parent / "ferplus" / VOTES_NAME


@dataclass(frozen=True)
class Votes:
    """The votes file: ``counts[key]`` is a row of the ten FER+ counts; keys are ``split/class/file``."""

    path: Path
    counts: dict[str, np.ndarray]


def load_votes(path: str | Path) -> Votes:
    """Read and check a FER+ votes file; raise :class:`FaceDataError` (one line, with the fix) if it does not fit."""
    path = Path(path)
    if not path.is_file():
        raise FaceDataError(f"--votes {path} not found; give the FER+ votes.csv (split,file and the ten FER+ "
                        f"count columns), by default ferplus/{VOTES_NAME} beside the --data folder")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in ("file", *VOTE_COLUMNS) if c not in header]
            if missing:
                raise FaceDataError(f"--votes {path} lacks the column(s) {', '.join(missing)} (has: "
                                f"{', '.join(header) or 'nothing'}); a FER+ votes file has columns split,file,"
                                f"{','.join(VOTE_COLUMNS)}")
            counts = {}
            for line, row in enumerate(reader, start=2):
                try:
                    values = np.array([int(row[c]) for c in VOTE_COLUMNS], np.int16)
                except (TypeError, ValueError):
                    raise FaceDataError(f"--votes {path} line {line}: vote counts must be whole numbers; "
                                    "fix or remove that row") from None
                if values.min() < 0 or values.sum() == 0:
                    raise FaceDataError(f"--votes {path} line {line} ({row['file']}) has no votes; every row needs "
                                    "the annotators' counts (an image FER+ dropped carries NF=10)")
                counts[row["file"].replace("\\", "/")] = values
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FaceDataError(f"cannot read --votes {path} as a CSV file: {exc}") from exc
    if not counts:
        raise FaceDataError(f"--votes {path} holds no rows; give the FER+ votes.csv for --data")
    return Votes(path, counts)


def image_key(image_id: str) -> str:
    """An image's key in the votes file: ``split/class/file`` from its path."""
    return "/".join(Path(image_id).parts[-3:])


def counts_for(votes: Votes, ids: list[str]) -> np.ndarray:
    """The ``(N, 10)`` vote counts of these images (by path); every image must have a row."""
    if any(".csv:" in i for i in ids[:1]):          # fer2013.csv rows are named <file>.csv:<line>
        raise FaceDataError("FER+ votes are keyed by the files of a folder-per-class FER2013 tree; give --data "
                        "as that folder, not fer2013.csv")
    rows, missing = [], []
    for image_id in ids:
        row = votes.counts.get(image_key(image_id))
        if row is None:
            missing.append(image_key(image_id))
        rows.append(row if row is not None else np.zeros(len(VOTE_COLUMNS), np.int16))
    if missing:
        raise FaceDataError(f"--votes {votes.path} has no row for {len(missing)} image(s) of --data (e.g. "
                        f"{missing[0]}); give the votes file made for this data folder")
    return np.stack(rows) if rows else np.zeros((0, len(VOTE_COLUMNS)), np.int16)


def protocol_counts(counts: np.ndarray) -> np.ndarray:
    """Counts with single votes set to 0 (the FER+ protocol), as float."""
    counts = counts.astype(np.float32)
    counts[counts <= 1] = 0
    return counts


def majority(counts: np.ndarray) -> np.ndarray:
    """The FER+ majority column of each row, or -1 (no majority, ``unknown`` or not a face)."""
    kept = protocol_counts(counts)
    top = kept.argmax(axis=1)
    ok = (kept.max(axis=1) > kept.sum(axis=1) / 2) & (top != UNKNOWN) & (top != NOT_A_FACE)
    return np.where(ok, top, -1)


def majority_labels(counts: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Each image's FER+ majority label as an index in ``classes``, or -1 when it has none among them."""
    column_to_class = np.full(len(VOTE_COLUMNS) + 1, -1)
    for i, name in enumerate(classes):
        column_to_class[CLASS_COLUMN[name]] = i
    return column_to_class[majority(counts)]      # index -1 (no majority) maps to the last entry: -1


def vote_distribution(counts: np.ndarray, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(targets, has_votes)``: each image's protocol votes over ``classes``, normalized to sum 1.

    ``has_votes`` is False where no vote (after the protocol) falls on ``classes``; those rows are 0.
    """
    kept = protocol_counts(counts)[:, [CLASS_COLUMN[c] for c in classes]]
    mass = kept.sum(axis=1, keepdims=True)
    has_votes = mass[:, 0] > 0
    return np.where(mass > 0, kept / np.maximum(mass, 1e-9), 0.0).astype(np.float32), has_votes


def folder_labels(folder: np.ndarray, folder_classes: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray:
    """FER2013 folder labels re-indexed into ``classes`` (-1 for a folder not among them)."""
    remap = np.array([classes.index(c) if c in classes else -1 for c in folder_classes])
    return remap[folder]


def training_targets(counts: np.ndarray, folder: np.ndarray, folder_classes: tuple[str, ...],
                     classes: tuple[str, ...], blend: float) -> tuple[np.ndarray, np.ndarray]:
    """``(index, targets)``: which images train and their targets, ``blend`` x votes + (1 - blend) x folder.

    An image trains when its FER+ majority is one of ``classes``; with ``blend`` < 1 also when its
    folder label is one of them and some of its votes are (so FER2013's clear cases keep teaching).
    Where the folder label is not among ``classes`` the target is the vote distribution alone.
    """
    votes, has_votes = vote_distribution(counts, classes)
    by_votes = majority_labels(counts, classes) >= 0
    by_folder = folder_labels(folder, folder_classes, classes)
    keep = by_votes | ((by_folder >= 0) & has_votes & (blend < 1))
    index = np.flatnonzero(keep)
    one_hot = np.zeros_like(votes)
    has_folder = by_folder >= 0
    one_hot[np.flatnonzero(has_folder), by_folder[has_folder]] = 1.0
    share = np.where(has_folder, blend, 1.0)[:, None].astype(np.float32)
    targets = share * votes + (1.0 - share) * one_hot
    return index, targets[index]


def coverage_report(counts: np.ndarray, folder: np.ndarray, folder_classes: tuple[str, ...]) -> dict:
    """FER+ coverage of a split and, per folder class, how often FER+'s majority agrees with it."""
    top = majority(counts)
    kept = protocol_counts(counts)
    strongest = kept.argmax(axis=1)
    has_half = kept.max(axis=1) > kept.sum(axis=1) / 2
    agreement = {}
    for i, name in enumerate(folder_classes):
        rows = folder == i
        column = CLASS_COLUMN[name]
        moved: dict[str, int] = {}
        for col, n in zip(*np.unique(top[rows], return_counts=True), strict=True):
            moved["none" if col < 0 else FERPLUS_TO_OURS.get(VOTE_COLUMNS[col], VOTE_COLUMNS[col])] = int(n)
        agreement[name] = {"images": int(rows.sum()),
                           "agree": round(float((top[rows] == column).mean()) if rows.any() else 0.0, 4),
                           "ferplus_majority": moved}
    return {"matched": int(len(counts)),
            "with_majority": int((top >= 0).sum()),
            "dropped_not_a_face": int((has_half & (strongest == NOT_A_FACE)).sum()),
            "dropped_unknown": int((has_half & (strongest == UNKNOWN)).sum()),
            "dropped_no_majority": int((~has_half).sum()),
            "agreement_by_folder": agreement}
