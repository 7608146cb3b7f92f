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


def _uniform(shape, seed: tf.Tensor | None, index: int, minval: float = 0.0, maxval: float = 1.0) -> tf.Tensor:
    """``tf.random.uniform``, or with a ``seed`` (shape [2]) its stateless form, one stream per ``index``."""
    if seed is None:
        return tf.random.uniform(shape, minval, maxval)
    return tf.random.stateless_uniform(shape, seed + tf.constant([0, 7919 * (index + 1)], seed.dtype), minval, maxval)


def random_erasing(images: tf.Tensor, probability: float = 0.5, max_fraction: float = 0.25,
                   seed: tf.Tensor | None = None) -> tf.Tensor:
    """Blank one random rectangle (up to ``max_fraction`` of each side... squared) per image with noise.
    With ``seed`` (an int64 tensor of shape [2]) the draws are stateless: the same seed, the same rectangles."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    h = tf.cast(tf.cast(height, tf.float32) * _uniform([batch], seed, 0, 0.1, max_fraction ** 0.5 + 0.1), tf.int32)
    w = tf.cast(tf.cast(width, tf.float32) * _uniform([batch], seed, 1, 0.1, max_fraction ** 0.5 + 0.1), tf.int32)
    y0 = tf.cast(_uniform([batch], seed, 2) * tf.cast(height - h, tf.float32), tf.int32)
    x0 = tf.cast(_uniform([batch], seed, 3) * tf.cast(width - w, tf.float32), tf.int32)
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + h)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + w)[:, None, None]))
    apply = _uniform([batch], seed, 4) < probability
    mask = (inside & apply[:, None, None])[..., None]
    noise = _uniform(tf.shape(images), seed, 5, 0, 255)
    return tf.where(mask, noise, images)


def mixup(images: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor | None, alpha: float,
          seed: tf.Tensor | None = None):
    """Blend every face of a batch with another face of the same batch (Zhang et al., 2018).

    One Beta(alpha, alpha) draw per face, folded to >= 0.5 so the first face dominates; labels
    and sample weights are blended with the same factor. Returns ``(images, targets, weights)``.
    With ``seed`` (an int64 tensor of shape [2]) the draws are stateless.
    """
    batch = tf.shape(images)[0]
    if seed is None:
        gamma1 = tf.random.gamma([batch], alpha)
        gamma2 = tf.random.gamma([batch], alpha)
        partner = tf.random.shuffle(tf.range(batch))
    else:
        gamma1 = tf.random.stateless_gamma([batch], seed + tf.constant([0, 1], seed.dtype), alpha)
        gamma2 = tf.random.stateless_gamma([batch], seed + tf.constant([0, 2], seed.dtype), alpha)
        partner = tf.random.experimental.stateless_shuffle(tf.range(batch), seed + tf.constant([0, 3], seed.dtype))
    lam = gamma1 / (gamma1 + gamma2 + 1e-12)
    lam = tf.maximum(lam, 1.0 - lam)

    def blend(t: tf.Tensor) -> tf.Tensor:
        share = tf.reshape(lam, [-1] + [1] * (len(t.shape) - 1))
        return share * t + (1.0 - share) * tf.gather(t, partner)

    return blend(images), blend(targets), None if weights is None else blend(weights)


class EpochRandomness:
    """Every random draw of the training batches as a function of the run's seed and the epoch: the order
    of the faces, the augmentation and mixup. A run continued at epoch k draws what an uninterrupted run
    draws at epoch k; :meth:`callback` sets the epoch before each epoch's batches are made."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
        self.augmenter = face_augmenter(seed)

    def start_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s batches next (the augmentation layers' seed state included)."""
        self.epoch.assign(epoch)
        for i, layer in enumerate(self.augmenter.layers):
            layer.generator.state.assign(tf.constant([self.seed * 1_000_003 + epoch, i], layer.generator.state.dtype))

    def epoch_seed(self) -> tf.Tensor:
        """The current epoch's seed (int64, shape [2]), read when the epoch's batches are made."""
        return tf.stack([tf.constant(self.seed, tf.int64), self.epoch.read_value()])

    def callback(self):
        """A Keras callback calling :meth:`start_epoch` at the start of every epoch."""
        import keras

        randomness = self

        class StartEpoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                randomness.start_epoch(epoch)

        return StartEpoch()


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
    #: training: the epoch-seeded randomness (one is made when not given; fit with its callback)
    randomness: EpochRandomness | None = None


def make_dataset(images: np.ndarray, targets: np.ndarray, options: DatasetOptions,
                 sample_weights: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 shaped (B, 48, 48, 1), targets[, weights]).

    ``targets`` (N, classes) are one-hot labels or soft ones (FER+ vote distributions), rows summing to 1.
    """
    x = images.astype(np.float32)[..., None]
    y = targets.astype(np.float32)
    parts = (x, y) if sample_weights is None else (x, y, sample_weights.astype(np.float32))
    if not options.training:
        ds = tf.data.Dataset.from_tensor_slices(parts).cache().batch(options.batch_size, drop_remainder=False)
        return ds.prefetch(tf.data.AUTOTUNE)
    randomness = options.randomness or EpochRandomness(options.seed)
    tensors = tuple(tf.constant(part) for part in parts)
    count = len(y)

    def epoch_order(_):
        # read when an epoch's iterator starts, after the callback set the epoch
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), randomness.epoch_seed())
        return tf.data.Dataset.from_tensor_slices(order).batch(options.batch_size, drop_remainder=False).enumerate()

    def _augment(step, index):
        x, y, *weights = (tf.gather(t, index) for t in tensors)
        epoch_seed = randomness.epoch_seed()
        seed = tf.stack([epoch_seed[0], epoch_seed[1] * 1_000_003 + step])       # one stream per batch
        x = randomness.augmenter(x, training=True)
        x = tf.clip_by_value(random_erasing(x, seed=seed), 0.0, 255.0)
        if options.mixup_alpha > 0:
            x, y, w = mixup(x, y, weights[0] if weights else None, options.mixup_alpha, seed=seed + 11)
            weights = [w] if weights else []
        if options.teacher is not None:
            y = (1.0 - options.teacher_weight) * y + options.teacher_weight * options.teacher(x)
        return (x, y, *weights)

    # one batch at a time, in order: the augmentation layers' seed state advances batch by batch
    ds = tf.data.Dataset.from_tensors(0).flat_map(epoch_order).map(_augment)
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-count // options.batch_size)))
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
