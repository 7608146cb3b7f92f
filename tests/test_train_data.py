"""Loading, the validation report and the split, on tiny data sets written by the tests."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.labelled_faces.errors import FaceDataError
from edge_runtime.labelled_faces.loading import load_csv_splits, load_split
from tests.train_support import CLASSES, face, make_csv, make_folder_dataset
from train import data_checks
from train.labels import FER2013_CLASSES, parse_classes
from train.splits import stratified_split


@pytest.fixture
def planted(tmp_path):
    return tmp_path, make_folder_dataset(tmp_path, per_class=6, test_per_class=3)


def test_folder_loading_converts_and_skips(planted):
    root, info = planted
    train = load_split(root, "train", CLASSES)
    assert train.images.shape[1:] == (48, 48) and train.images.dtype == np.uint8
    # 6 per class + dup_same + dup_conflict + colour + big; corrupt and notes.txt skipped
    assert len(train) == 4 * 6 + 4
    skipped = {path.rsplit("/", 1)[-1]: why for path, why in train.skipped}
    assert set(skipped) == {info["corrupt"], info["non_image"]}
    converted = {path.rsplit("/", 1)[-1]: what for path, what in train.converted}
    assert "grayscale" in converted[info["colour"]]
    assert "resized from 64x64" in converted[info["resized"]]
    assert train.counts()["happy"] == 6 + 2          # dup_same + colour


def test_validation_finds_planted_problems(planted):
    root, info = planted
    train = load_split(root, "train", CLASSES)
    test = load_split(root, "test", CLASSES)
    report, masks = data_checks.validate(train, test)
    assert report["duplicates"]["groups"] == info["duplicate_groups"]
    assert report["conflicts"]["groups"] == info["conflict_groups"]
    assert report["conflicts"]["images"] == 2
    assert report["leakage"]["train_images_also_in_test"] == info["leaked"]
    assert report["skipped"]["count"] == 2
    kept, drops = data_checks.apply_drops(train, masks, ("duplicates", "conflicts", "leaked"))
    assert drops["dropped"] == {"duplicates": 2, "conflicts": 1, "leaked": 1}
    assert len(kept) == len(train) - 4
    hashes = data_checks.pixel_hashes(kept.images)
    assert len(set(hashes)) == len(hashes)
    untouched, _ = data_checks.apply_drops(train, masks, ())
    assert len(untouched) == len(train)


def test_csv_loading_and_errors(tmp_path):
    rows = [(FER2013_CLASSES.index(name), face(i, i), usage)
            for i, name in enumerate(CLASSES) for usage in ("Training", "Training", "PublicTest")]
    rows.append((0, face(0, 50), "Training"))                  # angry: not selected, left out
    path = make_csv(tmp_path / "fer2013.csv", rows)
    splits = load_csv_splits(path, CLASSES)
    assert len(splits["train"]) == 8 and len(splits["test"]) == 4
    assert splits["train"].counts() == dict.fromkeys(CLASSES, 2)
    np.testing.assert_array_equal(splits["test"].images[0], face(0, 0))
    bad = make_csv(tmp_path / "bad.csv", rows[:2], columns=("label", "pixels", "Usage"))
    with pytest.raises(FaceDataError, match="columns"):
        load_csv_splits(bad, CLASSES)


def test_folder_errors(tmp_path):
    with pytest.raises(FaceDataError, match="does not exist"):
        load_split(tmp_path / "nowhere", "train", CLASSES)
    make_folder_dataset(tmp_path, per_class=2, test_per_class=1, plant=False)
    with pytest.raises(FaceDataError, match="angry.*missing"):
        load_split(tmp_path, "train", ("angry", "happy"))
    empty = tmp_path / "train" / "happy"
    for f in empty.iterdir():
        f.unlink()
    with pytest.raises(FaceDataError, match="no readable image"):
        load_split(tmp_path, "train", CLASSES)


def test_class_selection():
    assert parse_classes("surprise, happy,sad,neutral") == CLASSES
    assert len(parse_classes("all")) == 7
    with pytest.raises(ValueError, match="unknown class"):
        parse_classes("happy,bored")


def test_stratified_split_is_deterministic_and_stratified():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    a = stratified_split(labels, 0.2, seed=7)
    b = stratified_split(labels, 0.2, seed=7)
    c = stratified_split(labels, 0.2, seed=8)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert np.bincount(labels[a[1]]).tolist() == [10, 6, 4]
    assert not set(a[0]) & set(a[1]) and len(a[0]) + len(a[1]) == 100


def independent_report(data, classes) -> dict[str, int]:
    """The report's counts computed here, without train's loader or hashing: each file decoded by
    OpenCV, grouped by the MD5 of its pixels, its label the name of its folder."""
    import hashlib
    from collections import defaultdict

    import cv2

    def groups(split: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = defaultdict(list)
        for label in classes:
            for path in sorted((data / split / label).iterdir()):
                pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                found[hashlib.md5(pixels.tobytes()).hexdigest()].append(label)
        return found

    train, test = groups("train"), groups("test")
    repeated = [labels for labels in train.values() if len(labels) > 1]
    return {"duplicate_groups": len(repeated),
            "conflict_groups": sum(len(set(labels)) > 1 for labels in repeated),
            "leaked": sum(len(labels) for digest, labels in train.items() if digest in test)}


@pytest.mark.slow
def test_real_fer2013_report(shared_dir):
    """On the real data: every file loads, and the known duplicates, conflicts and leaks are found."""
    data = shared_dir / "data" / "fer2013"
    classes = parse_classes("all")
    train = load_split(data, "train", classes)
    test = load_split(data, "test", classes)
    # Counts from ../shared/README.md.
    assert train.counts() == {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965,
                              "sad": 4830, "surprise": 3171}
    assert len(test) == 3589 and not train.skipped and not train.converted
    report, masks = data_checks.validate(train, test)
    expected = independent_report(data, classes)
    assert report["duplicates"]["groups"] == expected["duplicate_groups"] > 0
    assert report["conflicts"]["groups"] == expected["conflict_groups"] > 0
    assert report["leakage"]["train_images_also_in_test"] == expected["leaked"] > 0
    kept, drops = data_checks.apply_drops(train, masks, data_checks.DROP_CHOICES)
    assert len(kept) == 27170


def test_by_content_split_keeps_each_image_on_its_side_whatever_the_class_set():
    """A 4-class run warm-started from a 7-class one must not validate on faces the 7-class run
    trained on: with content keys, the 4-class split is the 7-class split restricted to 4 classes."""
    from train.splits import stratified_split as split

    rng = np.random.default_rng(0)
    labels7 = rng.integers(0, 7, 700)
    keys7 = [f"img{i}" for i in range(labels7.size)]
    keep = np.flatnonzero(np.isin(labels7, [3, 4, 5, 6]))
    labels4, keys4 = labels7[keep] - 3, [keys7[i] for i in keep]
    _, val7 = split(labels7, 0.1, 1, keys7)
    _, val4 = split(labels4, 0.1, 1, keys4)
    assert {keys4[i] for i in val4} == {keys7[i] for i in val7 if labels7[i] >= 3}
    _, shuffled4 = split(labels4, 0.1, 1)                # the legacy shuffle does not have this property
    _, shuffled7 = split(labels7, 0.1, 1)
    assert {keys4[i] for i in shuffled4} != {keys7[i] for i in shuffled7 if labels7[i] >= 3}


def test_restrict_keeps_the_named_classes_relabelled_in_their_order(tmp_path):
    make_folder_dataset(tmp_path, per_class=3, test_per_class=1, plant=False)
    faces = load_split(tmp_path, "train", CLASSES)                       # happy, neutral, sad, surprise
    sub = faces.restrict(("sad", "happy"))
    assert sub.classes == ("sad", "happy") and len(sub) == 6
    source_labels = [faces.labels[faces.ids.index(i)] for i in sub.ids]
    for image, label, source_label in zip(sub.images, sub.labels, source_labels, strict=True):
        assert CLASSES[source_label] == sub.classes[label]
        assert image.shape == (48, 48)
    with pytest.raises(ValueError, match="angry"):
        faces.restrict(("angry", "happy"))


@pytest.mark.parametrize("method", ["shuffle", "by-content"])
def test_inherited_split_validates_only_on_the_sources_validation_faces(tmp_path, method):
    """A 2-class run warm-started from a 4-class one carves the 4-class split and keeps its 2
    classes: its validation faces are exactly the source's (never faces the source trained on),
    whatever the split method, and convert re-carves the same split from the card."""
    from convert.conversion import split_holdout
    from tests.model_support import run_card
    from train.splits import carve_run_split, inherited_split

    make_folder_dataset(tmp_path, per_class=20, test_per_class=2)
    source_config = {"data": str(tmp_path), "classes": list(CLASSES), "drop": ["duplicates", "conflicts", "leaked"],
                     "val_fraction": 0.25, "seed": 5, "split_method": method}
    train4, test4 = load_split(tmp_path, "train", CLASSES), load_split(tmp_path, "test", CLASSES)
    source_fit, source_val, _ = carve_run_split(source_config, train4, test4)

    classes = ("sad", "surprise")
    config = {"data": str(tmp_path), "classes": list(classes), "drop": [], "val_fraction": 0.5, "seed": 9,
              **inherited_split(source_config)}
    assert config["split_seed"] == 5 and config["split_classes"] == list(CLASSES)
    train2, test2 = load_split(tmp_path, "train", classes), load_split(tmp_path, "test", classes)
    fit, val, report = carve_run_split(config, train2, test2)
    wanted = {i for i, label in zip(source_val.ids, source_val.labels, strict=True) if CLASSES[label] in classes}
    assert set(val.ids) == wanted and len(wanted) > 0
    assert not set(val.ids) & set(source_fit.ids)
    assert report["split"]["carved_over"] == list(CLASSES) and report["split"]["validation"] == len(val)
    assert val.classes == classes
    # Carving a 2-class split directly (what runs did before) gives other faces for the shuffle method.
    own = dict(config, split_classes=None)
    _, own_val, _ = carve_run_split(own, train2, test2)
    if method == "shuffle":
        assert set(own_val.ids) != wanted

    _, holdout = split_holdout(train2, test2, run_card(classes, config), seed=0, data=str(tmp_path))
    assert holdout.ids == val.ids


def test_inherited_split_needs_a_recorded_split():
    from train.splits import inherited_split

    assert inherited_split({"arch": "edge"}) == {}
    legacy = inherited_split({"classes": ["happy", "sad"], "drop": [], "val_fraction": 0.1, "seed": 1})
    assert legacy["split_method"] == "shuffle"           # runs from before split methods were shuffled


def test_mixup_blends_faces_labels_and_weights_with_one_factor_per_face():
    import tensorflow as tf

    from train.datasets import mixup

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, 48, 48, 1)).astype(np.float32)
    t = np.eye(64, dtype=np.float32)              # one class per face, so every blend is visible in its target
    w = rng.uniform(0.5, 2.0, 64).astype(np.float32)
    tf.random.set_seed(3)
    mixed, mixed_t, mixed_w = (v.numpy() for v in mixup(tf.constant(x), tf.constant(t), tf.constant(w), 0.4))
    np.testing.assert_allclose(mixed_t.sum(1), 1.0, rtol=1e-6)
    lam = mixed_t[np.arange(64), np.arange(64)]
    assert (lam >= 0.5 - 1e-6).all()                                     # the face's own label dominates
    assert (lam < 0.999).sum() > 32                                      # mixing actually happened
    for i in range(64):
        others = mixed_t[i].copy()
        others[i] = 0
        j = int(others.argmax()) if others.max() > 0 else i
        np.testing.assert_allclose(mixed[i], lam[i] * x[i] + (1 - lam[i]) * x[j], atol=1e-2)
        np.testing.assert_allclose(mixed_w[i], lam[i] * w[i] + (1 - lam[i]) * w[j], rtol=1e-5)
    assert mixup(tf.constant(x), tf.constant(t), None, 0.4)[2] is None
