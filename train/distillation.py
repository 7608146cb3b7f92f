"""Knowledge distillation: one or more trained teachers' probabilities blended into each training target.

With ``--teacher A.keras [B.keras ...] --teacher-weight W``, every training target becomes
``(1 - W) * label + W * teacher(face)``, computed on the very face the student sees (after
augmentation and mixup). With cross-entropy this is Hinton et al.'s distillation loss at
temperature 1. Several teachers are averaged (an ensemble); a teacher with more classes than
the student (a fer7 teaching a fer4) has its outputs cut to the student's labels and renormalized.
With ``--teacher-flip`` each teacher also scores the mirrored face and the two views are averaged; with
``--teacher-zoom Z`` also the face's centre enlarged ``Z`` times (and, with ``--teacher-flip``, its mirror).
With ``--teacher-targets cached`` the teachers score each training face once, un-augmented, before
training; the blended targets then travel with their faces through augmentation and mixup.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_runtime.atomic_io import atomic_write_with
from edge_runtime.labelled_faces.loading import IMAGE_SIZE

from .errors import UserError
from .views import face_views

if TYPE_CHECKING:
    from edge_runtime.labelled_faces.scoring import ScoredFaces
    from edge_runtime.model.card import ModelCard

    from .config import RunConfig
    from .selection import RecallGuard

log = logging.getLogger(__name__)

TEACHERS_FILE = "teachers.json"   # each teacher's file, sha256 and origin, written when a run starts


def check_teachers(paths: Sequence[str], labels: Sequence[str]) -> list[ModelCard]:
    """The teachers' cards; fails early, with one line, on a teacher that is missing, has no card,
    takes another input or lacks one of ``labels``."""
    from edge_runtime.model.card import ModelCardError, load_card

    cards = []
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"--teacher {path} not found")
        if Path(path).suffix != ".keras":
            raise UserError(f"--teacher {path}: a teacher must be a trained .keras model (with its card)")
        try:
            card = load_card(path)
        except ModelCardError as exc:
            raise UserError(f"--teacher {path}: {exc}") from exc
        spec = card.input
        student_input = (IMAGE_SIZE, IMAGE_SIZE, 1, (0, 255))
        if (spec.height, spec.width, spec.channels, tuple(spec.value_range)) != student_input:
            raise UserError(f"--teacher {path} takes {spec.height}x{spec.width}x{spec.channels} pixels in "
                            f"{list(spec.value_range)}; a teacher must take the student's input "
                            f"({IMAGE_SIZE}x{IMAGE_SIZE}x1, 0..255)")
        missing = [name for name in labels if name not in card.labels]
        if missing:
            raise UserError(f"--teacher {path} has no output for {', '.join(missing)}; use a teacher "
                            f"trained on every one of --classes")
        cards.append(card)
    return cards


def load_teachers(paths: Sequence[str], labels: Sequence[str], flip: bool = False,
                  zoom: float | None = None) -> Callable:
    """A function ``faces (B, 48, 48, 1) float 0..255 -> (B, len(labels))`` probabilities.

    Each teacher's outputs are cut to ``labels`` (by name, from its card) and renormalized;
    the teachers are averaged, over both the face and its mirror image when ``flip``, and also over the
    face's centre enlarged ``zoom`` times (and its mirror image) with a ``zoom`` (:func:`train.views.face_views`).
    Load before setting a mixed-precision policy: teachers run in float32.
    """
    import keras
    import tensorflow as tf

    teachers = [(keras.models.load_model(path, compile=False), [card.labels.index(name) for name in labels])
                for path, card in zip(paths, check_teachers(paths, labels), strict=True)]

    def teacher_probabilities(faces: tf.Tensor) -> tf.Tensor:
        views = face_views(faces, zoom, mirror=flip)
        total = 0.0
        for model, columns in teachers:
            for view in views:
                probs = tf.gather(tf.cast(model(view, training=False), tf.float32), columns, axis=-1)
                total += probs / tf.maximum(tf.reduce_sum(probs, axis=-1, keepdims=True), 1e-12)
        return total / (len(teachers) * len(views))

    return teacher_probabilities


TEACHER_TARGETS_FILE = "teacher_targets.npz"   # the teachers' probabilities per training face, for --resume


def cached_probabilities(teacher: Callable, images: np.ndarray, cache: Path | None = None,
                         batch_size: int = 512) -> np.ndarray:
    """The teachers' probabilities for every face of ``images`` (N, 48, 48) uint8, run once per face.

    With ``cache``, they are written there (with the sha256 of the faces) and read back by a later call
    on the very same faces (a ``--resume``, or a run given a copy of another run's file)."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            if str(stored["faces_sha256"]) == digest:
                log.info("teacher targets read from %s", cache)
                return stored["probabilities"]
        log.info("%s holds other faces' teacher targets; computing them anew", cache)
    started = time.perf_counter()
    probs = np.concatenate([np.asarray(teacher(images[i:i + batch_size].astype(np.float32)[..., None]))
                            for i in range(0, len(images), batch_size)]).astype(np.float32)
    log.info("teacher targets for %d training faces in %.0f s", len(images), time.perf_counter() - started)
    if cache is not None:
        atomic_write_with(cache, lambda tmp: np.savez(tmp, probabilities=probs, faces_sha256=digest))
    return probs


def with_class_bias(teacher: Callable, bias: np.ndarray) -> Callable:
    """``teacher`` with its probabilities multiplied by ``exp(bias)`` per class and renormalized
    (``softmax(log p + bias)``)."""
    import tensorflow as tf

    scale = tf.constant(np.exp(bias), tf.float32)

    def biased(faces: tf.Tensor) -> tf.Tensor:
        probs = tf.cast(teacher(faces), tf.float32) * scale
        return probs / tf.maximum(tf.reduce_sum(probs, axis=-1, keepdims=True), 1e-12)

    return biased


def shift_probabilities(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``softmax(log probs + bias)`` row by row, in numpy (what :func:`with_class_bias` does per batch)."""
    shifted = np.asarray(probs, np.float64) * np.exp(bias)
    return (shifted / np.maximum(shifted.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def fit_teacher_bias(teacher: Callable, val: ScoredFaces, select: str, guard: RecallGuard | None,
                     batch_size: int = 256) -> np.ndarray:
    """One bias per class on the teachers' log-probabilities, chosen on the validation faces ``val``
    (:func:`train.selection.fit_class_bias`: the best ``select`` score among the biases that keep ``guard``)."""
    from .selection import fit_class_bias

    x = val.images.astype(np.float32)[..., None]
    probs = np.concatenate([np.asarray(teacher(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])
    return fit_class_bias(probs, val, select, guard)


def teaching(config: RunConfig, images: np.ndarray, targets: np.ndarray, run_dir: Path,
             val: ScoredFaces,
             guard: RecallGuard | None = None) -> tuple[np.ndarray, Callable | None, np.ndarray | None]:
    """The run's training targets, its online teacher and the ``--teacher-bias`` chosen on ``val`` (or ``None``):
    with ``--teacher-targets cached`` the teachers' probabilities are blended into the targets here (and no
    teacher runs per batch)."""
    if not config.teachers:
        return targets, None, None
    teacher = load_teachers(config.teachers, config.class_names, flip=config.teacher_flip, zoom=config.teacher_zoom)
    bias = None
    if config.teacher_bias:
        bias = fit_teacher_bias(teacher, val, config.select, guard)
        log.info("teacher bias chosen on validation: %s",
                 ", ".join(f"{c} {b:+.1f}" for c, b in zip(config.class_names, bias, strict=True)))
    if config.teacher_targets != "cached":
        return targets, (teacher if bias is None else with_class_bias(teacher, bias)), bias
    probs = cached_probabilities(teacher, images, run_dir / TEACHER_TARGETS_FILE)
    if bias is not None:
        probs = shift_probabilities(probs, bias)
    return (1.0 - config.teacher_weight) * targets + config.teacher_weight * probs, None, bias
