"""The representative dataset for full-integer quantization: a seeded, stratified sample
of the training split, in the model's pixel contract (raw 0..255 float pixels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import numpy as np

from .errors import ConvertError
from .records import CalibrationRecord

# Fewer images than this do not calibrate activation ranges reliably.
MIN_SAMPLES = 32
STRATEGY = "stratified by class, proportional to class frequency (largest remainder), seeded"


def allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` samples over classes in proportion to ``counts``, at least one per class."""
    counts = np.asarray(counts, dtype=np.int64)
    if n < counts.size:
        raise ConvertError(f"--calibration-samples {n} is fewer than the {counts.size} classes; "
                        "ask for at least one image per class")
    if n > counts.sum():
        raise ConvertError(f"too few calibration images: {n} requested but the training split holds only "
                        f"{int(counts.sum())}; lower --calibration-samples or add training images")
    exact = counts / counts.sum() * n
    take = np.maximum(np.floor(exact).astype(np.int64), 1)
    take = np.minimum(take, counts)
    while take.sum() < n:            # hand out the rest by largest remainder, where room is left
        room = take < counts
        remainder = np.where(room, exact - take, -np.inf)
        take[int(np.argmax(remainder))] += 1
    while take.sum() > n:            # the at-least-one rule may overshoot: trim the largest
        take[int(np.argmax(take))] -= 1
    return take


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` images drawn per class in proportion to class frequency (sorted, seeded)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    counts = np.array([(labels == c).sum() for c in classes])
    take = allocate(counts, n)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False)
              for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(chosen))


def pin_extremes(images: np.ndarray, low: int = 0, high: int = 255) -> tuple[np.ndarray, bool]:
    """Make sure the sample holds both ``low`` and ``high`` pixels.

    The converter sets the int8 input scale from the calibrated input range; covering the
    full 0..255 range gives scale 1.0 / zero point -128 (int8 = pixel - 128). If the sample
    lacks an extreme, one pixel of the first image is set to it (a negligible change for
    the activation ranges). Returns ``(images, changed)``.
    """
    if images.min() <= low and images.max() >= high:
        return images, False
    images = images.copy()
    flat = images.reshape(len(images), -1)
    if flat.min() > low:
        flat[0, 0] = low
    if flat.max() < high:
        flat[0, -1] = high
    return images, True


def representative_dataset(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A TFLite ``representative_dataset``: one (1, H, W, C) float32 image of raw pixels at a time."""
    x = images.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]

    def generate() -> Iterator[list[np.ndarray]]:
        for image in x:
            yield [image[None]]

    return generate


def fingerprint(ids: list[str]) -> str:
    """sha256 of the sorted image identifiers: which images were used, in one string."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def summary(labels: np.ndarray, class_names: tuple[str, ...], ids: list[str], images: np.ndarray,
            *, requested: int, seed: int, data: str, pinned: bool) -> CalibrationRecord:
    """What the representative dataset was, for the model card."""
    return CalibrationRecord(
        split="train", data=data, requested=int(requested), samples=int(len(labels)),
        per_class={name: int((labels == i).sum()) for i, name in enumerate(class_names)},
        seed=int(seed), strategy=STRATEGY, pixel_range=(int(images.min()), int(images.max())),
        extremes_pinned=bool(pinned), images_sha256=fingerprint(ids))
