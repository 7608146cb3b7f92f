"""FER+ votes: soft targets, the majority protocol, error lines, and training/evaluation on both label sets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.labelled_faces import ferplus
from edge_runtime.labelled_faces.errors import FaceDataError
from tests.test_train_cli import run_cli
from tests.train_support import make_folder_dataset
from train.labels import FER2013_CLASSES

SHARED = Path(__file__).resolve().parents[2] / "shared"
HEADER = ["split", "file", *ferplus.VOTE_COLUMNS]
FOLDERS = tuple(sorted(FER2013_CLASSES))
# Our folder name -> FER+'s column name.
THEIRS = {ours: theirs for theirs, ours in ferplus.FERPLUS_TO_OURS.items()}


def counts(**votes: int) -> np.ndarray:
    """One row of the ten FER+ counts from ``column=count`` pairs (FER+'s column names)."""
    return np.array([[votes.get(c, 0) for c in ferplus.VOTE_COLUMNS]], np.int16)


def test_soft_targets_follow_the_votes_after_the_protocol_and_sum_to_one():
    rows = np.concatenate([counts(happiness=6, neutral=3, sadness=1),       # the single sad vote is noise
                           counts(neutral=5, sadness=4, anger=1),
                           counts(anger=8, contempt=2)])                      # no vote on our classes
    targets, has = ferplus.vote_distribution(rows, ("happy", "neutral", "sad", "surprise"))
    np.testing.assert_allclose(targets[0], [6 / 9, 3 / 9, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(targets[1], [0, 5 / 9, 4 / 9, 0], rtol=1e-6)
    np.testing.assert_allclose(targets[:2].sum(1), 1.0, rtol=1e-6)
    assert has.tolist() == [True, True, False] and targets[2].sum() == 0


def test_majority_protocol_and_name_mapping():
    classes = ("angry", "contempt", "happy", "neutral", "sad")
    rows = np.concatenate([counts(sadness=6, neutral=4),            # sad: 6 > 10 / 2
                           counts(sadness=5, neutral=5),            # a tie is no majority
                           counts(anger=5, neutral=4, fear=1),      # 5 > 9 / 2 once the single vote is dropped
                           counts(NF=9, neutral=1),                 # not a face
                           counts(unknown=6, happiness=4),          # unknown
                           counts(contempt=7, neutral=3),
                           counts(surprise=8, happiness=2)])        # a majority outside the classes
    assert ferplus.majority_labels(rows, classes).tolist() == [4, -1, 0, -1, -1, 1, -1]


def test_blend_mixes_votes_and_folder_label_and_keeps_folder_faces_with_votes():
    classes = ("happy", "neutral", "sad", "surprise")
    folders = ("angry", "happy", "neutral", "sad")
    rows = np.concatenate([counts(neutral=6, sadness=4),        # folder sad, FER+ neutral
                           counts(neutral=8, anger=2),           # folder angry (not a class), FER+ neutral
                           counts(anger=6, sadness=4),           # folder sad, FER+ angry: kept only when blending
                           counts(NF=10)])                       # folder happy, not a face: never kept
    folder = np.array([3, 0, 3, 1])
    index, targets = ferplus.training_targets(rows, folder, folders, classes, blend=0.5)
    assert index.tolist() == [0, 1, 2]
    np.testing.assert_allclose(targets[0], [0, 0.3, 0.2 + 0.5, 0], rtol=1e-6)
    np.testing.assert_allclose(targets[1], [0, 1.0, 0, 0], rtol=1e-6)      # no folder label among ours: votes
    np.testing.assert_allclose(targets[2], [0, 0, 1.0, 0], rtol=1e-6)
    index, targets = ferplus.training_targets(rows, folder, folders, classes, blend=1.0)
    assert index.tolist() == [0, 1]
    np.testing.assert_allclose(targets[0], [0, 0.6, 0.4, 0], rtol=1e-6)


def write_votes(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def planted_votes(data: Path) -> list[list]:
    """Votes for every image of ``data``: its folder's class mostly, with known relabellings planted.

    Every third fear face is FER+ neutral, one happy face is not a face, one neutral face is contempt.
    """
    rows = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        split, folder, name = path.relative_to(data).parts
        i = int(name.split("_")[-1].split(".")[0]) if name.split("_")[-1].split(".")[0].isdigit() else 0
        votes = dict.fromkeys(ferplus.VOTE_COLUMNS, 0)
        if folder == "fear" and i % 3 == 0:
            votes.update(neutral=7, fear=3)
        elif folder == "happy" and i == 1 and split == "train":
            votes.update(NF=10)
        elif folder == "neutral" and i == 2 and split == "train":
            votes.update(contempt=6, neutral=4)
        else:
            votes.update({THEIRS[folder]: 8, "neutral" if folder != "neutral" else "surprise": 2})
        rows.append([split, f"{split}/{folder}/{name}", *votes.values()])
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer7") / "fer2013"
    make_folder_dataset(root, per_class=12, test_per_class=4, classes=FOLDERS, plant=False)
    (root.parent / "ferplus").mkdir()
    write_votes(root.parent / "ferplus" / "votes.csv", planted_votes(root))
    return root


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("split,file,neutral,happiness\n", "lacks the column(s) surprise"),
    (",".join(HEADER) + "\ntrain,train/happy/x.png" + ",0" * 10 + "\n", "has no votes"),
    (",".join(HEADER) + "\ntrain,train/happy/x.png" + ",a" * 10 + "\n", "whole numbers"),
])
def test_votes_file_errors_name_the_problem(tmp_path, content, message):
    path = tmp_path / "votes.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(FaceDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ferplus.load_votes(path)


def test_cli_refuses_votes_that_do_not_fit_the_data(tmp_path, data):
    partial = write_votes(tmp_path / "partial.csv", planted_votes(data)[:5])
    result = run_cli("--data", str(data), "--labels", "ferplus", "--votes", str(partial), "--arch", "edge-small",
                     "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "has no row for" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()[-1:]) == 1
    result = run_cli("--data", str(data), "--classes", "happy,contempt", "--out", str(tmp_path / "run2"))
    assert result.returncode == 2 and "contempt needs --labels ferplus" in result.stderr
    result = run_cli("--data", str(data), "--label-blend", "0.5", "--out", str(tmp_path / "run3"))
    assert result.returncode == 2 and "add --labels ferplus" in result.stderr
    result = run_cli("--data", str(data), "--guard", str(tmp_path / "x.keras"), "--out", str(tmp_path / "run4"))
    assert result.returncode == 2 and "need FER+ votes" in result.stderr


@pytest.mark.slow
def test_training_on_votes_reports_both_label_sets(tmp_path, data):
    run_dir = tmp_path / "run"
    result = run_cli("--data", str(data), "--labels", "ferplus", "--label-blend", "0.5", "--arch", "edge-small",
                     "--batch-size", "16", "--val-fraction", "0.25", "--epochs", "2", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    report = json.loads((run_dir / "data_report.json").read_text())
    coverage = report["ferplus"]["train"]
    assert coverage["matched"] == 7 * 12 and coverage["dropped_not_a_face"] == 1
    assert coverage["agreement_by_folder"]["fear"]["agree"] == pytest.approx(8 / 12, abs=1e-4)   # i = 0, 3, 6, 9 moved
    assert coverage["agreement_by_folder"]["fear"]["ferplus_majority"] == {"fear": 8, "neutral": 4}
    assert report["split"]["train_targets"]["blend"] == 0.5
    card = json.loads((run_dir / "fer4.json").read_text())
    metrics = card["metrics"]
    assert metrics["label_source"] == "ferplus"
    # Test faces: FER2013 labels = the 4 class folders (16); FER+ majorities among the 4 classes: those 16,
    # minus none moved out, plus the fear faces voted neutral (i = 0, 3).
    assert metrics["n_fer2013"] == 16 and metrics["n_ferplus"] == 18 and metrics["n_consensus"] == 16
    assert 0 <= metrics["balanced_accuracy_ferplus"] <= 1
    assert set(card["training"]["best_val_accuracy_by_label_set"]) == {"fer2013", "ferplus", "consensus"}
    assert card["training"]["prior_adjustment"]["tau"] in card["training"]["config"]["prior_taus"]
    assert len(card["training"]["config"]["prior_taus"]) == 13
    for name in ("fer4.confusion.png", "fer4.confusion.ferplus.png", "fer4.confusion.fer2013.png"):
        assert (run_dir / name).stat().st_size > 1000
    # train.evaluate re-carves the same validation faces and scores the saved (prior-adjusted) model
    # exactly as the run did for its best epoch.
    result = run_cli("--model", str(run_dir / "fer4.keras"), "--data", str(data), "--split", "validation",
                     "--out", str(tmp_path / "eval"), module="train.evaluate")
    assert result.returncode == 0, result.stderr
    assert "ferplus labels" in result.stdout and "fer2013 labels" in result.stdout
    val = json.loads((tmp_path / "eval" / "fer4.validation.eval.json").read_text())
    assert {k: v["accuracy"] for k, v in val["label_sets"].items()} == \
        card["training"]["best_val_accuracy_by_label_set"]
    # The frontier tool reads the run's card: its validation and test points by label set.
    from benchmarks.labels import main as labels_main

    assert labels_main(["--model", str(run_dir / "fer4.keras"), "--out", str(tmp_path / "frontier")]) == 0
    point = json.loads((tmp_path / "frontier" / "labels.json").read_text())["points"][0]
    assert point["blend"] == 0.5 and point["chosen"] and point["test_ferplus"] == metrics["accuracy_ferplus"]
    assert (tmp_path / "frontier" / "labels.png").stat().st_size > 1000
    # A run guarded by that model keeps its consensus recall (and records the floor it kept).
    guarded = tmp_path / "guarded"
    result = run_cli("--data", str(data), "--labels", "ferplus", "--arch", "edge-small", "--batch-size", "16",
                     "--val-fraction", "0.25", "--epochs", "1", "--guard", str(run_dir / "fer4.keras"),
                     "--out", str(guarded))
    assert result.returncode == 0, result.stderr
    guard = json.loads((guarded / "fer4.json").read_text())["training"]["guard"]
    assert guard["margin_pt"] == 2.0 and set(guard["reference_consensus_recall"]) == set(card["labels"])
    # Conversion checks int8 on the model's own label source and reports both label sets.
    result = run_cli("--model", str(run_dir / "fer4.keras"), "--data", str(data), "--out", str(tmp_path / "tflite"),
                     "--variants", "int8", "--calibration-samples", "32", "--max-int8-drop", "100", module="convert")
    assert result.returncode == 0, result.stderr
    int8 = json.loads((tmp_path / "tflite" / "fer4_int8.json").read_text())["metrics"]
    assert int8["label_source"] == "ferplus" and int8["n"] == int8["n_ferplus"] == 18 and int8["n_fer2013"] == 16
    assert int8["accuracy"] == pytest.approx(int8["accuracy_ferplus"], abs=1e-4)


def test_blend_rule_takes_the_best_validation_mean_and_breaks_near_ties_on_fer2013():
    from benchmarks.labels import choose

    points = [{"blend": 1.0, "val_mean": 0.8200, "val_fer2013": 0.76},
              {"blend": 0.7, "val_mean": 0.8195, "val_fer2013": 0.78},      # within 0.1 pt, better on FER2013
              {"blend": 0.4, "val_mean": 0.8100, "val_fer2013": 0.80}]
    assert choose(points)["blend"] == 0.7
    assert choose(points[::2])["blend"] == 1.0
    # Runs trained with --guard: only those whose chosen epoch kept it compete.
    guard = "fer4.keras 68deb93e, 2 pt"
    guarded = [{**points[0], "guard_met": False, "guard": guard}, {**points[1], "guard_met": None, "guard": None},
               {**points[2], "guard_met": True, "guard": guard}]
    assert choose(guarded)["blend"] == 0.4
    # Runs held to different guards (another model, or another margin): kept and missed do not compare.
    guarded[0]["guard"] = "fer4.keras cffb3ce7, 1 pt"
    assert choose(guarded)["blend"] == 0.7


def test_guard_status_comes_from_the_card_or_the_runs_history_and_is_unknown_without_either(tmp_path):
    from benchmarks.labels import guard_met
    from train.records import GuardRecord, TrainingRecord

    guard = GuardRecord(model="fer4.keras", sha256="0" * 64, margin_pt=2.0, reference_consensus_recall={})
    model = tmp_path / "fer4.json"
    unrecorded = TrainingRecord(guard=guard, best_epoch=2)
    assert guard_met(model, unrecorded) is None                 # a card copied away from its run
    (tmp_path / "history.csv").write_text("epoch,val_guard_shortfall\n0,0.01\n1,0.0\n2,0.02\n")
    assert guard_met(model, unrecorded) is True                  # its chosen (2nd) epoch kept the guard
    assert guard_met(model, TrainingRecord(guard=guard, best_epoch=3)) is False
    assert guard_met(model, TrainingRecord(guard=GuardRecord(**{**guard.__dict__, "met": False}), best_epoch=2)) \
        is False                                                 # the card's own record wins
    assert guard_met(model, TrainingRecord()) is None


@pytest.mark.skipif(not (SHARED / "data" / "ferplus" / "votes.csv").is_file(),
                    reason="../shared/data/ferplus/votes.csv is absent (the FER+ votes ship beside the project)")
def test_real_votes_match_the_published_majority_counts():
    """The FER+ data README publishes the majority protocol's counts on these files."""
    votes = ferplus.load_votes(SHARED / "data" / "ferplus" / "votes.csv")
    keys = sorted(votes.counts)
    rows = np.stack([votes.counts[k] for k in keys])
    split = np.array([k.split("/")[0] for k in keys])
    classes = ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    labels = ferplus.majority_labels(rows, classes)
    published = {"train": (25059, {"neutral": 8739, "happy": 7287, "surprise": 3149, "sad": 3014, "angry": 2100,
                                   "disgust": 119, "fear": 532, "contempt": 119}),
                 "test": (3199, {"neutral": 1182, "happy": 865, "surprise": 415, "sad": 351, "angry": 287,
                                 "disgust": 24, "fear": 62, "contempt": 13})}
    for name, (total, per_class) in published.items():
        chosen = labels[split == name]
        assert int((chosen >= 0).sum()) == total
        assert {c: int((chosen == i).sum()) for i, c in enumerate(classes)} == per_class


def test_recall_guard_keeps_clear_sad_faces_even_at_some_cost_in_accuracy():
    from edge_runtime.labelled_faces.scoring import ScoredFaces
    from train.selection import LabelSetValidation, RecallGuard

    classes = ("neutral", "sad")
    # Four consensus sad faces the model leans neutral on, and ten neutral faces it barely gets right:
    # dividing the prior out (tau 0.5) finds the sad faces and loses the neutral ones.
    probs = np.array([[0.6, 0.4]] * 4 + [[0.55, 0.45]] * 10)
    labels = np.array([1] * 4 + [0] * 10)
    faces = ScoredFaces(np.zeros((14, 48, 48), np.uint8), labels, labels.copy(), classes)
    prior = np.array([0.8, 0.2])

    class Probabilities:                       # stands in for the Keras model: fixed outputs
        def predict(self, x, batch_size, verbose):
            return probs

    def epoch_logs(guard):
        callback = LabelSetValidation(faces, prior, (0.0, 0.5, 1.0), "mean", guard)
        callback.set_model(Probabilities())
        logs = {}
        callback.on_epoch_end(0, logs)
        return logs

    free = epoch_logs(None)
    assert free["val_prior_tau"] == 0.0 and free["val_accuracy"] == pytest.approx(10 / 14)
    sad_guard = epoch_logs(RecallGuard(np.array([0.0, 1.0]), 0.02))         # sad recall must stay >= 98 %
    assert sad_guard["val_prior_tau"] == 0.5 and sad_guard["val_guard_shortfall"] == 0.0
    assert sad_guard["val_accuracy"] == pytest.approx(4 / 14)
    impossible = epoch_logs(RecallGuard(np.array([1.0, 1.0]), 0.0))        # no tau keeps both: a negative score
    assert impossible["val_guard_shortfall"] == pytest.approx(1.0) and impossible["val_accuracy"] == -1.0
    strict = RecallGuard(np.array([1.0, 1.0]), 0.0)
    assert strict.shortfall(np.array([1.0, 0.75])) == pytest.approx(0.25)
    assert strict.shortfall(np.array([1.0, np.nan])) == 0.0                  # a class without faces sets no floor


def test_validation_under_mixed_precision_scores_the_float32_twin():
    import keras

    from edge_runtime.labelled_faces.scoring import ScoredFaces
    from train.selection import LabelSetValidation

    # Two logits 0.2 % apart: bfloat16 (8-bit mantissa) rounds them to a tie, float32 keeps sad ahead.
    n = 48 * 48

    def build():
        inputs = keras.Input((48, 48, 1))
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(2, use_bias=False, name="logits")(x)
        return keras.Model(inputs, keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x))

    def float32_twin():
        keras.mixed_precision.set_global_policy("float32")
        try:
            return build()
        finally:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")

    labels = np.ones(6, int)
    faces = ScoredFaces(np.full((6, 48, 48), 100, np.uint8), labels, labels.copy(), ("neutral", "sad"))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build()
        model.get_layer("logits").set_weights([np.tile([[1.0, 1.002]], (n, 1)).astype(np.float32) / (100 * n)])
        scores = {}
        for twin in (None, float32_twin):
            callback = LabelSetValidation(faces, np.array([0.5, 0.5]), (0.0,), "mean", float32_twin=twin)
            callback.set_model(model)
            logs = {}
            callback.on_epoch_end(0, logs)
            scores[twin is not None] = logs["val_accuracy_ferplus"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert scores == {False: 0.0, True: 1.0}   # bf16 calls the tie for neutral; float32 finds every sad face


def test_class_bias_finds_the_under_called_class_and_keeps_the_guard():
    from edge_runtime.labelled_faces.scoring import ScoredFaces
    from train.selection import RecallGuard, fit_class_bias

    classes = ("neutral", "sad", "happy")
    # Ten sad faces the model leans neutral on by a hair; four neutral faces it gets right by a margin.
    probs = np.array([[0.52, 0.48, 0.0]] * 10 + [[0.55, 0.45, 0.0]] * 4 + [[0.1, 0.1, 0.8]] * 3)
    labels = np.array([1] * 10 + [0] * 4 + [2] * 3)
    faces = ScoredFaces(np.zeros((17, 48, 48), np.uint8), labels, labels.copy(), classes)
    bias = fit_class_bias(probs, faces, "mean", None)
    assert bias[0] == 0 and bias[2] == 0 and 0.08 < bias[1] < 0.2          # sad moves just enough
    assert ((np.log(probs + 1e-12) + bias).argmax(1) == labels).all()

    # Now the neutral faces lean as little as the sad ones: any bias that finds sad loses neutral.
    close = np.array([[0.52, 0.48, 0.0]] * 10 + [[0.515, 0.485, 0.0]] * 4 + [[0.1, 0.1, 0.8]] * 3)
    assert fit_class_bias(close, faces, "mean", None)[1] > 0                  # 10 sad faces outweigh 4 neutral
    guarded = fit_class_bias(close, faces, "mean", RecallGuard(np.array([1.0, 0.0, 1.0]), 0.02))
    np.testing.assert_array_equal(guarded, 0.0)                               # neutral recall must stay


def test_a_warm_start_from_a_four_folder_split_is_still_tested_on_every_folder(data):
    # A FER+ run warm-started from a run trained on FER2013's 4 class folders carves that 4-folder split,
    # but its test faces are those `python -m train.evaluate` scores: the fear faces voted neutral count too.
    from train.config import RunConfig
    from train.training import load_data

    classes = ["happy", "neutral", "sad", "surprise"]
    config = RunConfig.from_dict({"data": str(data), "classes": classes, "name": "fer4", "labels": "ferplus",
                                  "label_blend": 0.7, "select": "mean", "drop": [], "split_method": "shuffle",
                                  "seed": 1, "val_fraction": 0.25, "split_classes": classes, "split_seed": 1})
    run = load_data(config)
    assert int((run.test.label_sets()["fer2013"] >= 0).sum()) == 16
    assert int((run.test.label_sets()["ferplus"] >= 0).sum()) == 18, "the 2 fear test faces voted neutral"
