"""A deterministic, stratified validation split carved from the training split."""

from __future__ import annotations

import numpy as np

from . import validation
from .data_loading import FaceSet


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_index, val_index)``: ``fraction`` of every class goes to validation.

    The same labels, fraction and seed always give the same split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = int(round(fraction * members.size))
        if members.size >= 2:
            n_val = min(max(n_val, 1), members.size - 1)
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def carve_training_split(train_all: FaceSet, test: FaceSet, drop: tuple[str, ...], val_fraction: float,
                         seed: int) -> tuple[FaceSet, FaceSet, dict]:
    """Validate, drop what ``drop`` names, then carve the validation split: ``(train, val, report)``.

    Training and conversion both call this, so the same data, options and seed give the
    same validation images everywhere (conversion tunes int8 calibration on them).
    """
    report, masks = validation.validate(train_all, test)
    kept, drops = validation.apply_drops(train_all, masks, tuple(drop))
    report["applied"] = drops
    train_idx, val_idx = stratified_split(kept.labels, val_fraction, seed)
    report["split"] = {"train": int(train_idx.size), "validation": int(val_idx.size), "test": len(test),
                       "val_fraction": val_fraction, "seed": seed}
    return kept.subset(train_idx), kept.subset(val_idx), report
