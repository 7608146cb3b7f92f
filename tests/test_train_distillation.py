"""Knowledge distillation (--teacher): the teachers' probabilities enter each training target."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from train.errors import UserError  # noqa: E402
from train.labels import FER2013_CLASSES  # noqa: E402
from train.models import build_model  # noqa: E402

STUDENT = ("happy", "neutral", "sad", "surprise")


def save_with_card(tmp_path, name: str, labels: tuple[str, ...], seed: int):
    """A tiny random model saved as ``name.keras`` with its card (as training writes it)."""
    from edge_runtime.model.card import write_card
    from train.model_card import keras_card
    from train.records import TrainingRecord

    model = build_model("edge-small", len(labels))
    rng = np.random.default_rng(seed)
    for weight in model.weights:            # random, but a valid model (positive BN variances)
        values = rng.normal(0.0, 0.3, weight.shape)
        weight.assign(np.abs(values) + 0.5 if "variance" in weight.path else values)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    config = {"data": "fer2013", "classes": list(labels), "name": name, "arch": "edge-small",
              "command": "python -m train ..."}
    write_card(keras_card(tmp_path / f"{name}.json", labels, model, TrainingRecord(config=config)))
    return model, path


def test_teachers_are_cut_to_the_students_labels_by_name_renormalized_and_averaged(tmp_path):
    from train.distillation import load_teachers

    wide, wide_path = save_with_card(tmp_path, "fer7", FER2013_CLASSES, seed=0)
    # Same classes as the student, another order: columns must be matched by name, not position.
    reordered = ("surprise", "sad", "happy", "neutral")
    other, other_path = save_with_card(tmp_path, "other", reordered, seed=50)
    faces = np.random.default_rng(1).uniform(0, 255, (6, 48, 48, 1)).astype(np.float32)

    wide_p = np.asarray(wide(faces, training=False))[:, [FER2013_CLASSES.index(c) for c in STUDENT]]
    wide_p /= wide_p.sum(1, keepdims=True)
    other_p = np.asarray(other(faces, training=False))[:, [reordered.index(c) for c in STUDENT]]
    teacher = load_teachers([str(wide_path), str(other_path)], STUDENT)
    got = np.asarray(teacher(faces))
    np.testing.assert_allclose(got, (wide_p + other_p) / 2, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(wide_p, other_p, atol=1e-2)          # the average is not trivially either one


def test_training_targets_blend_each_label_with_the_teacher_on_the_augmented_face(tmp_path):
    import tensorflow as tf

    from train.datasets import DatasetOptions, make_dataset
    from train.distillation import load_teachers

    _, path = save_with_card(tmp_path, "fer7", FER2013_CLASSES, seed=0)
    teacher = load_teachers([str(path)], STUDENT)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (40, 48, 48)).astype(np.uint8)
    labels = rng.integers(0, 4, 40)
    tf.random.set_seed(0)
    targets = np.eye(4, dtype=np.float32)[labels]
    ds = make_dataset(images, targets, DatasetOptions(16, training=True, seed=1, teacher=teacher, teacher_weight=0.3))
    for x, y in ds:
        x, y = x.numpy(), y.numpy()
        soft = np.asarray(teacher(x))                           # the teacher on the very faces trained on
        hard = (y - 0.3 * soft) / 0.7
        np.testing.assert_allclose(hard.max(1), 1.0, atol=1e-4)  # what is left is one one-hot label each
        np.testing.assert_allclose(hard.sum(1), 1.0, atol=1e-4)
        assert np.abs(y - np.eye(4)[hard.argmax(1)]).max() > 0.01


@pytest.mark.parametrize("labels, value_range, suffix, message", [
    (("happy", "sad"), [0, 255], ".keras", "no output for neutral"),
    (STUDENT, [-1, 1], ".keras", "must take the student's input"),
    (STUDENT, [0, 255], ".tflite", "must be a trained .keras"),
])
def test_unusable_teachers_are_refused_with_the_reason(tmp_path, labels, value_range, suffix, message):
    from train.distillation import check_teachers

    path = tmp_path / f"teacher{suffix}"
    path.write_bytes(b"model bytes")
    (tmp_path / "teacher.json").write_text(json.dumps({
        "schema_version": 1, "name": "teacher", "variant": "keras", "labels": list(labels), "file": path.name,
        "input": {"height": 48, "width": 48, "channels": 1, "dtype": "float32", "value_range": value_range}}))
    with pytest.raises(UserError, match=message):
        check_teachers([str(path)], STUDENT)
    with pytest.raises(UserError, match="not found"):
        check_teachers([str(tmp_path / "missing.keras")], STUDENT)


def test_resume_refuses_a_teacher_that_changed_since_the_run_started(tmp_path):
    from train.model_card import record_teachers

    _, path = save_with_card(tmp_path, "fer7", FER2013_CLASSES, seed=0)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record_teachers(run_dir, [str(path)], resume=False)
    record_teachers(run_dir, [str(path)], resume=True)              # unchanged: fine
    save_with_card(tmp_path, "fer7", FER2013_CLASSES, seed=9)        # replaced by another model
    with pytest.raises(UserError, match="has changed since this run started"):
        record_teachers(run_dir, [str(path)], resume=True)


def test_a_flipping_teacher_averages_each_face_with_its_mirror_image(tmp_path):
    from train.distillation import load_teachers

    model, path = save_with_card(tmp_path, "fer4", STUDENT, seed=4)
    faces = np.random.default_rng(5).uniform(0, 255, (6, 48, 48, 1)).astype(np.float32)
    mirrored = faces[:, :, ::-1].copy()
    plain = np.asarray(model(faces, training=False))
    flipped = np.asarray(model(mirrored, training=False))
    got = np.asarray(load_teachers([str(path)], STUDENT, flip=True)(faces))
    np.testing.assert_allclose(got, (plain + flipped) / 2, atol=1e-5)
    assert not np.allclose(plain, flipped, atol=1e-3)              # the two views do differ
    np.testing.assert_allclose(np.asarray(load_teachers([str(path)], STUDENT, flip=True)(mirrored)), got, atol=1e-5)


def test_a_zooming_teacher_also_averages_the_enlarged_centre(tmp_path):
    """--teacher-zoom 1.09: the centre 44 px of a 48 px face, enlarged as OpenCV's bilinear resize does it."""
    import cv2

    from train.distillation import load_teachers

    model, path = save_with_card(tmp_path, "fer4", STUDENT, seed=4)
    faces = np.random.default_rng(5).uniform(0, 255, (6, 48, 48, 1)).astype(np.float32)
    centre = np.stack([cv2.resize(f[2:46, 2:46, 0], (48, 48), interpolation=cv2.INTER_LINEAR) for f in faces])
    centre = centre[..., None]

    def probs(x):
        return np.asarray(model(np.ascontiguousarray(x), training=False))

    got = np.asarray(load_teachers([str(path)], STUDENT, flip=True, zoom=1.09)(faces))
    views = [faces, faces[:, :, ::-1], centre, centre[:, :, ::-1]]
    np.testing.assert_allclose(got, np.mean([probs(v) for v in views], axis=0), atol=1e-4)
    assert not np.allclose(probs(faces), probs(centre), atol=1e-3)   # the enlarged centre is another view
    alone = np.asarray(load_teachers([str(path)], STUDENT, zoom=1.09)(faces))
    np.testing.assert_allclose(alone, (probs(faces) + probs(centre)) / 2, atol=1e-4)


def test_cached_teacher_targets_score_every_face_once_and_are_reused_only_for_the_same_faces(tmp_path):
    from train.distillation import cached_probabilities, load_teachers

    model, path = save_with_card(tmp_path, "fer4", STUDENT, seed=6)
    images = np.random.default_rng(7).integers(0, 256, (70, 48, 48)).astype(np.uint8)
    cache = tmp_path / "run" / "teacher_targets.npz"
    calls = []
    teacher = load_teachers([str(path)], STUDENT)

    def counting(faces):
        calls.append(len(faces))
        return teacher(faces)

    got = cached_probabilities(counting, images, cache, batch_size=32)
    np.testing.assert_allclose(got, np.asarray(model(images.astype(np.float32)[..., None], training=False)),
                               atol=1e-5)
    assert calls == [32, 32, 6] and cache.is_file()
    np.testing.assert_array_equal(cached_probabilities(counting, images, cache), got)   # read back, not re-run
    assert calls == [32, 32, 6]
    other = images[::-1].copy()
    again = cached_probabilities(counting, other, cache, batch_size=70)                  # other faces: re-run
    assert calls[-1] == 70
    np.testing.assert_allclose(again, got[::-1], atol=1e-5)


@pytest.mark.parametrize("option", [["--teacher-flip"], ["--teacher-zoom", "1.09"]])
def test_teacher_options_need_a_teacher(tmp_path, option):
    from train.cli import build_parser, make_config

    args = build_parser().parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "run"), *option])
    with pytest.raises(UserError, match="add --teacher MODEL.keras"):
        make_config(args)


@pytest.mark.parametrize("zoom", ["1", "0.5", "2.5"])
def test_a_teacher_zoom_outside_1_to_2_is_refused(tmp_path, zoom):
    from train.cli import build_parser, make_config

    args = build_parser().parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "run"),
                                      "--teacher", "t.keras", "--teacher-zoom", zoom])
    with pytest.raises(UserError, match=r"--teacher-zoom.*above 1 and at most 2"):
        make_config(args)
