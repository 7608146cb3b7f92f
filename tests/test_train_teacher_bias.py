"""``--teacher-bias``: the teachers' output shifted by one bias per class chosen on validation faces.

The teacher is a real Keras model with a card whose answer is known by construction: on a face of uniform
brightness ``v`` its sad logit exceeds its neutral logit by ``0.1 * (v - 109.5)``, so it calls sad only the faces
brighter than 109.5. The validation faces call every face from 95 up sad: the teacher misses the sad faces at
95 and 105. A sad bias of ``b`` moves its threshold to ``109.5 - 10 b``; the smallest step of 0.1 that gains a
face is 0.5 (threshold 104.5: the 105 face turns sad; the 95 face would need 1.5, beyond the range searched).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edge_runtime.labelled_faces.scoring import ScoredFaces  # noqa: E402
from tests.test_benchmarks_teachers import save_model  # noqa: E402
from train import distillation  # noqa: E402
from train.config import RunConfig  # noqa: E402

LABELS = ("neutral", "sad")
NEUTRAL = (60, 70, 80, 90)
SAD = (95, 105, 115, 125)


def faces(values) -> np.ndarray:
    return np.stack([np.full((48, 48), v, np.uint8) for v in values])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    kernel = np.zeros((48 * 48, 2), np.float32)
    kernel[:, 1] = 0.1 / (48 * 48)                      # sad logit: 0.1 * mean brightness - 10.95
    return save_model(tmp_path_factory.mktemp("teacher"), "fer2", "data", kernel,
                      np.array([0.0, -10.95], np.float32), seed=1, labels=LABELS)


@pytest.fixture(scope="module")
def val() -> ScoredFaces:
    labels = np.array([0] * len(NEUTRAL) + [1] * len(SAD))
    return ScoredFaces(faces(NEUTRAL + SAD), labels, labels.copy(), LABELS)


def config(teacher, **settings) -> RunConfig:
    return RunConfig(data="data", classes=list(LABELS), teachers=[str(teacher)], teacher_weight=1.0, select="mean",
                     **settings)


def test_the_bias_is_the_smallest_step_that_gains_a_face(teacher, val):
    bias = distillation.fit_teacher_bias(distillation.load_teachers([str(teacher)], LABELS), val, "mean", None)
    assert bias.tolist() == pytest.approx([0.0, 0.5])


@pytest.mark.parametrize("targets", ["cached", "online"])
def test_the_biased_teacher_calls_the_105_face_sad(tmp_path, teacher, val, targets):
    images = faces((105, 90, 125))
    labels = np.zeros((3, 2), np.float32)
    unbiased, _, none = distillation.teaching(config(teacher, teacher_targets=targets), images, labels, tmp_path, val)
    assert none is None
    blended, online, bias = distillation.teaching(
        config(teacher, teacher_targets=targets, teacher_bias=True), images, labels, tmp_path, val)
    assert bias.tolist() == pytest.approx([0.0, 0.5])
    if targets == "online":
        x = images.astype(np.float32)[..., None]
        blended = np.asarray(online(x))
    sad = blended[:, 1]
    assert sad[0] > 0.5                                    # unbiased the 105 face is 39 % sad; biased, 51 %
    assert sad[1] < 0.5 and sad[2] > 0.5                   # the clear faces keep their class
    if targets == "cached":
        assert (tmp_path / distillation.TEACHER_TARGETS_FILE).is_file()
        assert np.asarray(unbiased)[0, 1] == pytest.approx(1 / (1 + np.exp(0.45)), abs=1e-4)
        # the cache holds the teachers' own probabilities; the bias is applied after reading it
        with np.load(tmp_path / distillation.TEACHER_TARGETS_FILE) as stored:
            assert stored["probabilities"][0, 1] == pytest.approx(1 / (1 + np.exp(0.45)), abs=1e-4)


def test_the_numpy_and_tensorflow_shifts_agree():
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=32).astype(np.float32)
    bias = np.array([0.0, 0.3, -0.7, 1.0])
    online = np.asarray(distillation.with_class_bias(lambda x: x, bias)(probs))
    np.testing.assert_allclose(distillation.shift_probabilities(probs, bias), online, atol=1e-6)
    np.testing.assert_allclose(online.sum(1), 1.0, atol=1e-6)
