"""A deterministic, stratified validation split carved from the training split."""

from __future__ import annotations

import hashlib

import numpy as np

from edge_runtime.labelled_faces.loading import FaceSet, load_split

from . import data_checks

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
    report, masks = data_checks.validate(train_all, test)
    kept, drops = data_checks.apply_drops(train_all, masks, tuple(drop))
    report["applied"] = drops
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {method!r}; choose from {', '.join(SPLIT_METHODS)}")
    keys = data_checks.pixel_hashes(kept.images) if method == "by-content" else None
    train_idx, val_idx = stratified_split(kept.labels, val_fraction, seed, keys)
    report["split"] = {"train": int(train_idx.size), "validation": int(val_idx.size), "test": len(test),
                       "val_fraction": val_fraction, "seed": seed, "method": method}
    return kept.subset(train_idx), kept.subset(val_idx), report


def with_test_faces(train: FaceSet, val: FaceSet, test: FaceSet) -> tuple[FaceSet, dict]:
    """``train`` plus the ``test`` faces (in ``train``'s classes) whose pixels are not a validation face's,
    and the data report's count of both. A test face equal to a validation face would let the run
    choose its epoch on a face it fits."""
    test = test.restrict(train.classes)
    in_val = set(data_checks.pixel_hashes(val.images))
    keep = np.array([h not in in_val for h in data_checks.pixel_hashes(test.images)], dtype=bool)
    added = test.subset(np.flatnonzero(keep))
    merged = FaceSet(np.concatenate([train.images, added.images]), np.concatenate([train.labels, added.labels]),
                     train.ids + added.ids, train.classes, train.skipped, train.converted)
    return merged, {"added": len(added), "dropped_as_validation_faces": int((~keep).sum())}


# The config entries without which a run's validation split cannot be re-carved.
SPLIT_KEYS = ("drop", "val_fraction", "seed")


def records_split(config: dict) -> bool:
    """Whether a run config (a card's ``training.config``) records its validation split."""
    return all(key in config for key in SPLIT_KEYS)


def split_settings(config: dict) -> dict:
    """What defines a run's validation split, read from its config (older configs included).

    ``classes`` is the class set the split is carved over: the run's own classes, or, for a
    warm start that inherited its source's split (``split_classes``), the source's.
    """
    return {"classes": tuple(config.get("split_classes") or config["classes"]),
            "drop": tuple(config["drop"]), "val_fraction": float(config["val_fraction"]),
            "seed": int(config.get("split_seed", config["seed"])),
            "method": config.get("split_method", LEGACY_SPLIT_METHOD)}


def inherited_split(source_config: dict) -> dict:
    """Config entries that make a warm start validate on its source's validation faces only.

    A model warm-started from another (``--init-from``) must not be validated on faces the
    source trained on, or the best-epoch choice is made on memorised faces. Carving the
    source's split (same classes, drop, fraction, seed, method) and keeping our classes of it
    guarantees that whatever the methods. Empty when the source's card records no split.
    """
    if "classes" not in source_config or not records_split(source_config):
        return {}
    settings = split_settings(source_config)
    return {"split_classes": list(settings["classes"]), "drop": list(settings["drop"]),
            "val_fraction": settings["val_fraction"], "split_seed": settings["seed"],
            "split_method": settings["method"]}


def carve_run_split(config: dict, train_all: FaceSet, test: FaceSet,
                    data: str | None = None) -> tuple[FaceSet, FaceSet, dict]:
    """A run's own ``(train, validation, report)``, in the run's classes, from its config.

    ``train_all`` and ``test`` hold the classes the split is carved over (``split_settings``) or
    the run's own; in the latter case, when the split was inherited over a wider class set, that
    set is loaded from ``data`` (default: the config's). Training, conversion and evaluation all
    call this, so they always agree on the validation faces.
    """
    settings = split_settings(config)
    classes = tuple(config["classes"])
    if train_all.classes != settings["classes"]:
        source = data or config["data"]
        train_all = load_split(source, "train", settings["classes"])
        test = load_split(source, "test", settings["classes"])
    train, val, report = carve_training_split(train_all, test, settings["drop"], settings["val_fraction"],
                                              settings["seed"], settings["method"])
    if settings["classes"] != classes:
        train, val = train.restrict(classes), val.restrict(classes)
        report["split"].update({"train": len(train), "validation": len(val), "carved_over": list(settings["classes"])})
    return train, val, report
