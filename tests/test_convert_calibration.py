"""convert.calibration: the stratified, seeded representative dataset (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest

from convert import calibration
from convert.errors import ConvertError


def test_allocate_is_proportional_with_one_per_class_and_exact_total():
    take = calibration.allocate(np.array([7215, 4965, 4830, 3171]), 500)
    assert take.sum() == 500
    assert list(take) == [179, 123, 120, 78]      # 500 * share, largest remainder
    rare = calibration.allocate(np.array([1000, 3]), 10)
    assert rare.sum() == 10 and rare[1] >= 1


@pytest.mark.parametrize("n, message", [(1000, "too few calibration images"),
                                        (2, "fewer than the 3 classes")])
def test_allocate_rejects_impossible_sizes(n, message):
    with pytest.raises(ConvertError, match=message):
        calibration.allocate(np.array([300, 200, 100]), n)


def test_stratified_sample_is_seeded_stratified_and_unique():
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    a = calibration.stratified_sample(labels, 100, seed=3)
    assert np.array_equal(a, calibration.stratified_sample(labels, 100, seed=3))
    assert not np.array_equal(a, calibration.stratified_sample(labels, 100, seed=4))
    assert len(np.unique(a)) == 100
    assert list(np.bincount(labels[a])) == [60, 30, 10]


def test_pin_extremes_only_when_needed():
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)
    full[0, 0, 0], full[1, 0, 0] = 0, 255
    same, changed = calibration.pin_extremes(full)
    assert not changed and same is full
    narrow = rng.integers(40, 200, (5, 48, 48), dtype=np.uint8)
    pinned, changed = calibration.pin_extremes(narrow)
    assert changed and pinned.min() == 0 and pinned.max() == 255
    assert narrow.min() >= 40                       # the caller's array is left alone
    assert (pinned != narrow).sum() == 2            # one pixel per missing extreme


def test_representative_dataset_yields_raw_float_pixels_one_by_one():
    images = np.arange(2 * 48 * 48, dtype=np.uint32).reshape(2, 48, 48).astype(np.uint8)
    batches = list(calibration.representative_dataset(images)())
    assert len(batches) == 2
    (first,) = batches[0]
    assert first.shape == (1, 48, 48, 1) and first.dtype == np.float32
    assert np.array_equal(first[0, ..., 0], images[0].astype(np.float32))   # not normalized


def test_summary_records_what_was_used():
    labels = np.array([0, 0, 1])
    images = np.zeros((3, 48, 48), np.uint8)
    images[0, 0, 0] = 255
    s = calibration.summary(labels, ("happy", "sad"), ["b", "a", "c"], images, requested=3, seed=7,
                            data="d", pinned=False)
    assert s.per_class == {"happy": 2, "sad": 1} and s.samples == 3 and s.seed == 7
    assert s.pixel_range == (0, 255) and s.split == "train"
    assert s.images_sha256 == calibration.fingerprint(["a", "b", "c"])
    assert s.images_sha256 != calibration.fingerprint(["a", "b"])
