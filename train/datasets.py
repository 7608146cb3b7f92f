"""The tf.data input pipeline: cached, shuffled, augmented for faces, prefetched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from keras import layers


def face_augmenter(seed: int) -> tf.keras.Sequential:
    """Augmentations that keep a face a face: small shifts, rotations, zoom, mirror, light changes."""
    return tf.keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed, dtype="float32"),
        layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1, dtype="float32"),          # about +-15 degrees
        layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=seed + 2, dtype="float32"),
        layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3, dtype="float32"),
        layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 4, dtype="float32"),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 5, dtype="float32"),
    ], name="face_augmenter")


def random_erasing(images: tf.Tensor, probability: float = 0.5, max_fraction: float = 0.25) -> tf.Tensor:
    """Blank one random rectangle (up to ``max_fraction`` of each side... squared) per image with noise."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    h = tf.cast(tf.cast(height, tf.float32) * tf.random.uniform([batch], 0.1, max_fraction ** 0.5 + 0.1), tf.int32)
    w = tf.cast(tf.cast(width, tf.float32) * tf.random.uniform([batch], 0.1, max_fraction ** 0.5 + 0.1), tf.int32)
    y0 = tf.cast(tf.random.uniform([batch]) * tf.cast(height - h, tf.float32), tf.int32)
    x0 = tf.cast(tf.random.uniform([batch]) * tf.cast(width - w, tf.float32), tf.int32)
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + h)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + w)[:, None, None]))
    apply = tf.random.uniform([batch]) < probability
    mask = (inside & apply[:, None, None])[..., None]
    noise = tf.random.uniform(tf.shape(images), 0, 255)
    return tf.where(mask, noise, images)


def mixup(images: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor | None, alpha: float):
    """Blend every face of a batch with another face of the same batch (Zhang et al., 2018).

    One Beta(alpha, alpha) draw per face, folded to >= 0.5 so the first face dominates; labels
    and sample weights are blended with the same factor. Returns ``(images, targets, weights)``.
    """
    batch = tf.shape(images)[0]
    gamma1 = tf.random.gamma([batch], alpha)
    gamma2 = tf.random.gamma([batch], alpha)
    lam = gamma1 / (gamma1 + gamma2 + 1e-12)
    lam = tf.maximum(lam, 1.0 - lam)
    partner = tf.random.shuffle(tf.range(batch))

    def blend(t: tf.Tensor) -> tf.Tensor:
        share = tf.reshape(lam, [-1] + [1] * (len(t.shape) - 1))
        return share * t + (1.0 - share) * tf.gather(t, partner)

    return blend(images), blend(targets), None if weights is None else blend(weights)


@dataclass(frozen=True)
class DatasetOptions:
    """How a dataset is batched and, for training, shuffled and changed.

    Training batches are augmented, then mixed up when ``mixup_alpha`` > 0; with a ``teacher``
    (faces -> probabilities, see ``train.distillation``) each target becomes
    ``(1 - teacher_weight) * label + teacher_weight * teacher(face)`` on the face as trained on.
    """

    batch_size: int
    training: bool = False
    seed: int = 0
    mixup_alpha: float = 0.0
    teacher: Callable[[tf.Tensor], tf.Tensor] | None = None
    teacher_weight: float = 0.0


def make_dataset(images: np.ndarray, targets: np.ndarray, options: DatasetOptions,
                 sample_weights: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 shaped (B, 48, 48, 1), targets[, weights]).

    ``targets`` (N, classes) are one-hot labels or soft ones (FER+ vote distributions), rows summing to 1.
    """
    x = images.astype(np.float32)[..., None]
    y = targets.astype(np.float32)
    parts = (x, y) if sample_weights is None else (x, y, sample_weights.astype(np.float32))
    ds = tf.data.Dataset.from_tensor_slices(parts).cache()
    if options.training:
        ds = ds.shuffle(len(y), seed=options.seed, reshuffle_each_iteration=True)
    ds = ds.batch(options.batch_size, drop_remainder=False)
    if options.training:
        augment = face_augmenter(options.seed)

        def _augment(x, y, *weights):
            x = augment(x, training=True)
            x = tf.clip_by_value(random_erasing(x), 0.0, 255.0)
            if options.mixup_alpha > 0:
                x, y, w = mixup(x, y, weights[0] if weights else None, options.mixup_alpha)
                weights = (w,) if weights else ()
            if options.teacher is not None:
                y = (1.0 - options.teacher_weight) * y + options.teacher_weight * options.teacher(x)
            return (x, y, *weights)

        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray | None:
    """Per-class loss weights: ``none``, ``balanced`` (inverse frequency) or ``sqrt`` (its square root)."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    elif mode != "balanced":
        raise ValueError(f"unknown --class-weight {mode!r}; use none, sqrt or balanced")
    return weights / (weights * counts).sum() * counts.sum()   # mean weight per sample stays 1
