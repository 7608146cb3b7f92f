"""``python -m benchmarks.teachers``: ensembles scored on a student's validation faces, leaky members left out.

The models are real Keras models with cards whose answers are known by construction: one reads the class
from the bar every synthetic face carries (always right), one always leans to "happy". The data set has
4 validation faces per class (20 per class, validation fraction 0.2) and every face's FER+ majority is its
folder's class, so the constant model's accuracy is a quarter on both label sets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from benchmarks.teachers import main  # noqa: E402
from edge_runtime.labelled_faces import ferplus  # noqa: E402
from tests.test_train_ferplus import THEIRS, write_votes  # noqa: E402
from tests.train_support import CLASSES, make_folder_dataset  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers") / "fer2013"
    make_folder_dataset(root, per_class=20, test_per_class=6, classes=CLASSES, plant=False)
    (root.parent / "ferplus").mkdir()
    rows = []
    for path in sorted(p for p in root.rglob("*.png")):
        split, folder, name = path.relative_to(root).parts
        votes = dict.fromkeys(ferplus.VOTE_COLUMNS, 0)      # every face's FER+ majority is its folder's class
        votes.update({THEIRS[folder]: 8, "contempt": 2})
        rows.append([split, f"{split}/{folder}/{name}", *votes.values()])
    write_votes(root.parent / "ferplus" / "votes.csv", rows)
    return root


def save_model(folder, name: str, data, kernel: np.ndarray, bias: np.ndarray, seed: int, labels=CLASSES):
    """A flatten + softmax model with the given weights, saved with a card recording a by-content split."""
    from edge_runtime.model.card import write_card
    from train.model_card import keras_card
    from train.records import TrainingRecord

    folder.mkdir(parents=True, exist_ok=True)
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(len(labels), activation="softmax", name="probabilities")])
    model.layers[-1].set_weights([kernel, bias])
    path = folder / f"{name}.keras"
    model.save(path)
    config = {"data": str(data), "classes": list(labels), "name": name, "arch": "edge-small", "labels": "ferplus",
              "drop": ["duplicates", "conflicts", "leaked"], "val_fraction": 0.2, "seed": seed,
              "split_method": "by-content", "command": "python -m train ..."}
    write_card(keras_card(folder / f"{name}.json", labels, model, TrainingRecord(config=config)))
    return path


def bar_reader() -> tuple[np.ndarray, np.ndarray]:
    """Weights that score each class by the brightness of the rows its synthetic bar occupies."""
    kernel = np.zeros((48, 48, len(CLASSES)), np.float32)
    for label in range(len(CLASSES)):
        kernel[6 + 10 * label: 12 + 10 * label, :, label] = 1e-3
    return kernel.reshape(-1, len(CLASSES)), np.zeros(len(CLASSES), np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("models")
    kernel, bias = bar_reader()
    leaning = np.log(np.array([0.7, 0.1, 0.1, 0.1], np.float32))
    return {"reader": save_model(root / "reader", "fer4", data, kernel, bias, seed=1),
            # the same weights, but its card says it carved its split with another seed: it trained on
            # some of the reader's validation faces
            "leaky": save_model(root / "leaky", "fer4", data, kernel, bias, seed=2),
            "happy": save_model(root / "happy", "fer4", data, np.zeros_like(kernel), leaning, seed=1)}


def test_leaky_members_are_flagged_and_never_chosen(tmp_path, data, models, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["--model", str(models["leaky"]), str(models["happy"]), str(models["reader"]),
                 "--split-from", str(models["reader"]), "--data", str(data), "--guard", str(models["reader"]),
                 "--out", str(out)])
    assert code == 0
    result = json.loads((out / "teachers.json").read_text())
    seen = {m["file"]: m["seen_validation_faces"] for m in result["members"]}
    assert seen[str(models["reader"])] == 0 and seen[str(models["happy"])] == 0
    assert seen[str(models["leaky"])] > 0
    assert result["n_validation"] == 16
    rows = {(tuple(r["members"]), r["flip"]): r for r in result["ensembles"]}
    assert len(rows) == 14                               # 7 combinations of 3 members, with and without flip
    for key, row in rows.items():
        assert row["eligible"] == (str(models["leaky"]) not in key[0])
    reader = rows[((str(models["reader"]),), False)]
    happy = rows[((str(models["happy"]),), False)]
    assert reader["val"]["accuracy_fer2013"] == reader["val"]["accuracy_ferplus"] == 1.0
    assert happy["val"]["accuracy_fer2013"] == happy["val"]["accuracy_ferplus"] == 0.25
    assert happy["val"]["recall_consensus"] == {"happy": 1.0, "neutral": 0.0, "sad": 0.0, "surprise": 0.0}
    assert reader["guard_shortfall"] == 0.0 and happy["guard_shortfall"] == pytest.approx(0.99)
    # the reader averaged with the happy-leaning model is still always right: the tie goes to the fewer members
    assert rows[((str(models["happy"]), str(models["reader"])), False)]["val"]["mean"] == 1.0
    assert [r for r in result["ensembles"] if r["chosen"]] == [reader]
    table = (out / "teachers.md").read_text()
    assert "reader/fer4 **(chosen)**" in table and "8 ensemble(s) with a member" in table
    assert "reader/fer4 **(chosen)**" in capsys.readouterr().out
    assert (out / "teachers.png").stat().st_size > 0


@pytest.mark.parametrize("problem, message", [
    ("missing", "--model {missing} not found"),
    ("two_classes", "has no output for sad, surprise"),
    ("only_leaky", "every --model trained on some of the --split-from model's validation faces"),
    ("missing_guard", "--guard {missing} not found"),
])
def test_bad_input_is_one_error_line(tmp_path, data, models, capsys, problem, message):
    kernel, bias = bar_reader()
    paths = {"missing": tmp_path / "nothing.keras",
             "two_classes": save_model(tmp_path / "two", "fer2", data, kernel[:, :2], bias[:2], seed=1,
                                       labels=CLASSES[:2]),
             "only_leaky": models["leaky"]}
    paths["missing_guard"] = models["reader"]
    guard = ["--guard", str(paths["missing"])] if problem == "missing_guard" else []
    code = main(["--model", str(paths[problem]), "--split-from", str(models["reader"]), "--data", str(data), *guard])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and errors == err.strip().splitlines()[-1:] and "Traceback" not in err
    assert message.format(missing=paths["missing"]) in errors[0]


def test_teacher_bias_scores_the_shifted_ensembles_and_keeps_the_guard(tmp_path, data, models):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["--model", str(models["happy"]), str(models["reader"]), "--split-from", str(models["reader"]),
                 "--data", str(data), "--guard", str(models["reader"]), "--guard-margin", "0", "--teacher-bias",
                 "--out", str(out)])
    assert code == 0
    result = json.loads((out / "teachers.json").read_text())
    rows = {(tuple(r["members"]), r["flip"]): r for r in result["ensembles"]}
    happy = rows[((str(models["happy"]),), False)]
    # a constant answer gains no face from any bias: it stays at zero, and the model stays below the guard
    assert happy["bias"] == dict.fromkeys(CLASSES, 0.0) and happy["guard_shortfall"] == pytest.approx(1.0)
    assert all(list(r["bias"]) == list(CLASSES) for r in result["ensembles"])
    chosen = [r for r in result["ensembles"] if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["guard_shortfall"] == 0.0 and chosen[0]["val"]["mean"] == 1.0
    assert "| teacher bias |" in (out / "teachers.md").read_text()


def test_member_views_are_the_face_its_mirror_and_the_enlarged_centre(models):
    import cv2

    from benchmarks.teachers import member_probabilities

    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    probs = member_probabilities(models["reader"], CLASSES, {"val": faces}, zoom=1.09)["val"]
    # 1.09 enlarges the central 44 of 48 px, bilinear as OpenCV resizes
    centre = np.stack([cv2.resize(f[2:46, 2:46].astype(np.float32), (48, 48), interpolation=cv2.INTER_LINEAR)
                       for f in faces])
    model = keras.models.load_model(models["reader"], compile=False)
    assert probs.shape == (4, 3, len(CLASSES))
    for got, view in zip(probs, [faces, faces[:, :, ::-1], centre, centre[:, :, ::-1]], strict=True):
        expected = model.predict(view[..., None].astype(np.float32), verbose=0)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_zoom_adds_the_four_view_ensembles_and_the_fewest_views_win_a_tie(tmp_path, data, models):
    out = tmp_path / "out"
    out.mkdir()
    reader, happy = str(models["reader"]), str(models["happy"])
    assert main(["--model", happy, reader, "--split-from", reader, "--data", str(data), "--zoom", "1.09",
                 "--out", str(out)]) == 0
    result = json.loads((out / "teachers.json").read_text())
    rows = {(tuple(r["members"]), r["flip"], r["zoom"]): r for r in result["ensembles"]}
    assert len(rows) == 9                                # 3 combinations of 2 members, on 1, 2 and 4 views
    assert rows[((reader,), True, 1.09)]["val"]["mean"] == 1.0
    assert rows[((happy,), True, 1.09)]["val"]["mean"] == 0.25
    assert [r for r in result["ensembles"] if r["chosen"]] == [rows[((reader,), False, None)]]
    assert "reader/fer4, flip, zoom 1.09 |" in (out / "teachers.md").read_text()


@pytest.mark.parametrize("zoom", ["0.9", "2.5"])
def test_a_zoom_that_enlarges_nothing_is_one_error_line(data, models, capsys, zoom):
    code = main(["--model", str(models["reader"]), "--split-from", str(models["reader"]), "--data", str(data),
                 "--zoom", zoom])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len([line for line in err if "error:" in line]) == 1
    assert f"--zoom {zoom}: give a factor above 1" in err[-1]


def test_each_row_averages_the_views_it_names():
    from benchmarks.teachers import averaged_views, view_options

    # view k of every face answers k: the face 0, its mirror 1, the enlarged centre 2, that mirrored 3
    probs = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 5, 2), np.float32)
    means = {options: float(averaged_views(probs, *options)[0, 0]) for options in view_options(1.09)}
    assert means == {(False, None): 0.0, (True, None): 0.5, (True, 1.09): 1.5}
    assert view_options(None) == [(False, None), (True, None)]
