"""A deterministic, stratified validation split carved from the training split."""

from __future__ import annotations

import hashlib

import numpy as np

from . import validation
from .data_loading import FaceSet

# How the validation images are chosen within each class:
#   by-content: ranked by a seeded hash of each image's pixels, so an image lands on the same side
#               whichever other classes are trained (a 4-class run warm-started from a 7-class one
#               keeps a validation split the 7-class run never trained on). New runs use it.
#   shuffle:    a seeded shuffle class after class (runs whose config names no split method).
SPLIT_METHODS = ("by-content", "shuffle")
DEFAULT_SPLIT_METHOD = "by-content"
LEGACY_SPLIT_METHOD = "shuffle"


def _content_rank(keys: list[str], seed: int) -> np.ndarray:
    """Sort order of ``keys`` by a seeded hash (stable for a given key and seed)."""
    digests = [hashlib.sha256(f"{seed}:{key}".encode()).hexdigest() for key in keys]
    return np.argsort(np.array(digests), kind="stable")


def stratified_split(labels: np.ndarray, fraction: float, seed: int,
                     keys: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_index, val_index)``: ``fraction`` of every class goes to validation.

    The same labels, fraction and seed always give the same split. With ``keys`` (one
    content hash per row) an image's side depends on its class, key and seed only.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if keys is None:
            rng.shuffle(members)
        else:
            members = members[_content_rank([keys[i] for i in members], seed)]
        n_val = int(round(fraction * members.size))
        if members.size >= 2:
            n_val = min(max(n_val, 1), members.size - 1)
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def carve_training_split(train_all: FaceSet, test: FaceSet, drop: tuple[str, ...], val_fraction: float,
                         seed: int, method: str = DEFAULT_SPLIT_METHOD) -> tuple[FaceSet, FaceSet, dict]:
    """Validate, drop what ``drop`` names, then carve the validation split: ``(train, val, report)``.

    Training and conversion both call this, so the same data, options and seed give the
    same validation images everywhere (conversion tunes int8 calibration on them).
    """
    report, masks = validation.validate(train_all, test)
    kept, drops = validation.apply_drops(train_all, masks, tuple(drop))
    report["applied"] = drops
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {method!r}; choose from {', '.join(SPLIT_METHODS)}")
    keys = validation.pixel_hashes(kept.images) if method == "by-content" else None
    train_idx, val_idx = stratified_split(kept.labels, val_fraction, seed, keys)
    report["split"] = {"train": int(train_idx.size), "validation": int(val_idx.size), "test": len(test),
                       "val_fraction": val_fraction, "seed": seed, "method": method}
    return kept.subset(train_idx), kept.subset(val_idx), report
