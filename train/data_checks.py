"""The data validation report: what is wrong with the data before we train on it.

FER2013 has exact duplicate images, duplicates with conflicting labels, and copies of
test images in the training split. This module finds them (by a hash of the pixels),
reports counts with examples, and drops what the user asks to drop from the train split.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from edge_runtime.labelled_faces.loading import FaceSet

DROP_CHOICES = ("duplicates", "conflicts", "leaked")
MAX_EXAMPLES = 5


def pixel_hashes(images: np.ndarray) -> list[str]:
    """A hash of each image's exact pixels."""
    return [hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest() for img in images]


def _groups(hashes: list[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        groups[h].append(i)
    return groups


def validate(train: FaceSet, test: FaceSet | None) -> tuple[dict, dict[str, np.ndarray]]:
    """Build the report and the boolean masks (over train) of rows each drop option removes."""
    train_hashes = pixel_hashes(train.images)
    groups = {h: idx for h, idx in _groups(train_hashes).items() if len(idx) > 1}
    conflicts = {h: idx for h, idx in groups.items() if len(set(train.labels[idx].tolist())) > 1}

    drop_dup = np.zeros(len(train), bool)
    for idx in groups.values():
        drop_dup[idx[1:]] = True          # keep the first copy of every group
    drop_conflict = np.zeros(len(train), bool)
    for idx in conflicts.values():
        drop_conflict[idx] = True         # nobody knows which label is right: drop all copies

    def example(idx: list[int], faces: FaceSet) -> dict:
        return {"ids": [faces.ids[i] for i in idx[:MAX_EXAMPLES]],
                "labels": [faces.classes[faces.labels[i]] for i in idx[:MAX_EXAMPLES]]}

    report = {
        "train": {"images": len(train), "per_class": train.counts()},
        "skipped": {"count": len(train.skipped), "examples": train.skipped[:MAX_EXAMPLES * 4]},
        "converted": {"count": len(train.converted), "examples": train.converted[:MAX_EXAMPLES * 4]},
        "duplicates": {"groups": len(groups), "extra_copies": int(drop_dup.sum()),
                       "examples": [example(idx, train) for idx in list(groups.values())[:MAX_EXAMPLES]]},
        "conflicts": {"groups": len(conflicts), "images": int(drop_conflict.sum()),
                      "examples": [example(idx, train) for idx in list(conflicts.values())[:MAX_EXAMPLES]]},
    }
    masks = {"duplicates": drop_dup, "conflicts": drop_conflict, "leaked": np.zeros(len(train), bool)}
    if test is not None:
        test_hashes = _groups(pixel_hashes(test.images))
        leaked = [i for i, h in enumerate(train_hashes) if h in test_hashes]
        masks["leaked"][leaked] = True
        label_mismatch = sum(
            1 for i in leaked
            if any(test.labels[j] != train.labels[i] for j in test_hashes[train_hashes[i]]))
        test_dups = {h: idx for h, idx in test_hashes.items() if len(idx) > 1}
        report["test"] = {"images": len(test), "per_class": test.counts(),
                          "skipped": len(test.skipped), "converted": len(test.converted),
                          "duplicate_groups": len(test_dups)}
        report["leakage"] = {
            "train_images_also_in_test": len(leaked),
            "test_images_also_in_train": sum(len(idx) for h, idx in test_hashes.items()
                                             if h in set(train_hashes)),
            "with_a_different_label": label_mismatch,
            "examples": [{"train": train.ids[i], "test": [test.ids[j] for j in test_hashes[train_hashes[i]]]}
                         for i in leaked[:MAX_EXAMPLES]],
        }
    return report, masks


def apply_drops(train: FaceSet, masks: dict[str, np.ndarray], drop: tuple[str, ...]) -> tuple[FaceSet, dict]:
    """Remove from ``train`` the rows flagged by each option in ``drop``; report what went."""
    remove = np.zeros(len(train), bool)
    removed = {}
    for name in drop:
        removed[name] = int((masks[name] & ~remove).sum())
        remove |= masks[name]
    kept = np.flatnonzero(~remove)
    return train.subset(kept), {"dropped": removed, "kept": int(kept.size)}


def parse_drop(spec: str) -> tuple[str, ...]:
    """Parse ``--drop``: ``none``, ``all`` or a comma list of duplicates, conflicts, leaked."""
    spec = spec.strip().lower()
    if spec == "none":
        return ()
    if spec == "all":
        return DROP_CHOICES
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    bad = [n for n in names if n not in DROP_CHOICES]
    if bad:
        raise ValueError(f"unknown --drop value(s) {', '.join(bad)}; use none, all or a comma list of "
                         f"{', '.join(DROP_CHOICES)}")
    return names


def summary_lines(report: dict, drops: dict | None = None) -> list[str]:
    """A few human-readable lines of the report for the log."""
    lines = [f"train: {report['train']['images']} images {report['train']['per_class']}",
             f"skipped {report['skipped']['count']} unreadable file(s); converted {report['converted']['count']}",
             f"duplicates: {report['duplicates']['groups']} groups, "
             f"{report['duplicates']['extra_copies']} extra copies",
             f"conflicting labels: {report['conflicts']['groups']} groups ({report['conflicts']['images']} images)"]
    if "leakage" in report:
        leak = report["leakage"]
        lines.append(f"train/test leakage: {leak['train_images_also_in_test']} train images are also in test "
                     f"({leak['with_a_different_label']} with a different label)")
    if drops is not None:
        lines.append(f"dropped from train: {drops['dropped']}; kept {drops['kept']}")
    return lines
