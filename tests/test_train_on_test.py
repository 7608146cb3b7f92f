"""``--train-on train+test``: the test faces join training, less any equal to a validation face, and every
figure of such a model is on its validation faces: the run's report and card, ``train.evaluate``, the
conversion's cards and the latency benchmark. Models made from it (warm start, distillation) must say so."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_runtime.labelled_faces.loading import FaceSet
from tests.test_train_cli import run_cli
from tests.test_train_ferplus import FOLDERS, planted_votes, write_votes
from tests.train_support import face, make_folder_dataset
from train.splits import with_test_faces

TINY = ["--labels", "ferplus", "--arch", "edge-small", "--batch-size", "16", "--val-fraction", "0.25",
        "--epochs", "1", "--drop", "none"]
COPIED = "surprise"       # every training face of this folder is copied into test/
PER_CLASS, TEST_PER_CLASS = 12, 4


def faces(images: list[np.ndarray], labels: list[int], prefix: str) -> FaceSet:
    return FaceSet(np.stack(images), np.array(labels), [f"{prefix}{i}" for i in range(len(images))], ("a", "b"))


def test_test_faces_equal_to_a_validation_face_stay_out_of_training():
    train = faces([face(0, 1), face(1, 2)], [0, 1], "train")
    val = faces([face(0, 3), face(1, 4)], [0, 1], "val")
    test = faces([face(1, 4), face(0, 5), face(1, 6)], [1, 0, 1], "test")     # the first is val's second face
    merged, counts = with_test_faces(train, val, test)
    assert counts == {"added": 2, "dropped_as_validation_faces": 1}
    assert merged.ids == ["train0", "train1", "test1", "test2"]
    assert merged.labels.tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(merged.images[2], face(0, 5))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """FER+-labelled folders where test/ also holds a copy of every training face of one folder."""
    root = tmp_path_factory.mktemp("fer7") / "fer2013"
    make_folder_dataset(root, per_class=PER_CLASS, test_per_class=TEST_PER_CLASS, classes=FOLDERS, plant=False)
    for i, path in enumerate(sorted((root / "train" / COPIED).iterdir())):
        shutil.copy(path, root / "test" / COPIED / f"copy_{i}.png")
    (root.parent / "ferplus").mkdir()
    write_votes(root.parent / "ferplus" / "votes.csv", planted_votes(root))
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "seen"
    result = run_cli("--data", str(data), *TINY, "--train-on", "train+test", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.fixture(scope="module")
def control(data, tmp_path_factory):
    """The same recipe on Training alone: the same validation faces, test held out."""
    run_dir = tmp_path_factory.mktemp("runs") / "control"
    result = run_cli("--data", str(data), *TINY, "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.fixture(scope="module")
def int8(run, data, tmp_path_factory):
    """The run's int8 conversion."""
    out = tmp_path_factory.mktemp("tflite")
    result = run_cli("--model", str(run / "fer4.keras"), "--data", str(data), "--out", str(out),
                     "--variants", "int8", "--calibration-samples", "32", "--max-int8-drop", "100", module="convert")
    assert result.returncode == 0, result.stderr
    return out / "fer4_int8.tflite"


def test_the_run_fits_the_test_faces_and_reports_on_validation(run):
    split = json.loads((run / "data_report.json").read_text())["split"]
    # 7 folders x 4 test faces, plus the 12 copies; the copies of the 3 surprise validation faces stay out
    n_val_copied = round(0.25 * PER_CLASS)
    assert split["from_test"] == {"added": 7 * TEST_PER_CLASS + PER_CLASS - n_val_copied,
                                  "dropped_as_validation_faces": n_val_copied}
    assert split["test"] is None
    card = json.loads((run / "fer4.json").read_text())
    assert card["training"]["config"]["train_on"] == "train+test"
    assert card["metrics"]["split"] == "validation"
    assert {name: card["metrics"][f"accuracy_{name}"] for name in ("fer2013", "ferplus", "consensus")} == \
        card["training"]["best_val_accuracy_by_label_set"]
    assert (run / "fer4.validation.eval.json").is_file() and not (run / "fer4.eval.json").exists()


def test_evaluating_it_on_test_is_refused_with_the_fix(run, data):
    result = run_cli("--model", str(run / "fer4.keras"), "--data", str(data), "--out", str(run / "eval"),
                     module="train.evaluate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "trained on the test split" in result.stderr
    assert "--split validation" in result.stderr


@pytest.mark.parametrize("option", ["--init-from", "--teacher"])
def test_a_model_made_from_it_must_fit_test_too(run, data, tmp_path, option):
    result = run_cli("--data", str(data), *TINY, option, str(run / "fer4.keras"), "--out", str(tmp_path / "made"))
    assert result.returncode == 2
    assert f"{option} {run / 'fer4.keras'} trained on the test split" in result.stderr
    assert "--train-on train+test" in result.stderr and not (tmp_path / "made").exists()


def test_its_converted_cards_and_benchmark_report_validation(run, data, int8, tmp_path):
    from benchmarks.latency import main as latency_main

    keras_metrics = json.loads((run / "fer4.json").read_text())["metrics"]
    metrics = json.loads(int8.with_suffix(".json").read_text())["metrics"]
    assert metrics["split"] == "validation"
    assert (metrics["n_ferplus"], metrics["n_fer2013"]) == (keras_metrics["n_ferplus"], keras_metrics["n_fer2013"])
    bench = tmp_path / "bench"
    assert latency_main(["--model", str(int8), "--data", str(data), "--no-peer", "--tta", "none",
                         "--runs", "5", "--warmup", "1", "--threads", "1", "--out", str(bench)]) == 0
    row = json.loads((bench / "latency.json").read_text())["rows"][0]
    assert (row["accuracy_source"], row["accuracy_split"]) == ("recorded", "validation")
    assert row["accuracy"] == metrics["accuracy"]
    assert "(recorded, validation)" in (bench / "latency.md").read_text()


@pytest.mark.parametrize("module", ["calibration", "alignment", "crop_margin", "labels"])
def test_benchmarks_that_report_on_test_refuse_it(run, data, int8, module, capsys):
    import importlib

    model = run / "fer4.json" if module == "labels" else int8
    extra = ["--no-media"] if module == "alignment" else []
    folder = data / "test" if module == "crop_margin" else data
    code = importlib.import_module(f"benchmarks.{module}").main(["--model", str(model), "--data", str(folder), *extra])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1, errors
    assert f"--model {model} fitted the test faces" in errors[0] and "--train-on train" in errors[0]


def test_teacher_and_interpolation_tables_score_no_test_face_it_fitted(run, control, data, tmp_path):
    from benchmarks.interpolation import main as interpolation_main
    from benchmarks.teachers import main as teachers_main

    seen, held_out = str(run / "fer4.keras"), str(control / "fer4.keras")
    assert teachers_main(["--model", seen, held_out, "--split-from", held_out, "--data", str(data),
                          "--out", str(tmp_path / "teachers")]) == 0
    rows = json.loads((tmp_path / "teachers" / "teachers.json").read_text())["ensembles"]
    assert {(tuple(r["members"]), r["flip"]): r["test"] is None for r in rows} == {
        ((seen,), False): True, ((seen,), True): True, ((held_out,), False): False, ((held_out,), True): False,
        ((seen, held_out), False): True, ((seen, held_out), True): True}
    table = (tmp_path / "teachers" / "teachers.md").read_text()
    assert f"{seen} fitted the test faces" in table and "| fitted |" in table
    assert interpolation_main(["--start", held_out, "--end", seen, "--alphas", "0,1", "--split-from", held_out,
                               "--data", str(data), "--out", str(tmp_path / "mix")]) == 0
    mixes = json.loads((tmp_path / "mix" / "interpolation.json").read_text())["mixes"]
    assert len(mixes) == 4 and all(m["test"] is None and m["val"]["accuracy_fer2013"] >= 0 for m in mixes)


def test_an_ensemble_with_a_member_that_fitted_test_reports_on_validation(run, control, data, tmp_path):
    out = tmp_path / "fused"
    result = run_cli("--member", str(run / "fer4.keras"), str(control / "fer4.keras"), "--name", "fused",
                     "--data", str(data), "--out", str(out), "--step", "0.5", "--calibration-samples", "32",
                     "--max-int8-drop", "100", module="convert.ensemble")
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "fused_int8.json").read_text())
    assert card["training"]["config"]["train_on"] == "train+test"
    assert card["metrics"]["split"] == "validation"
    assert json.loads((control / "fer4.json").read_text())["metrics"]["split"] == "test"
    n_val = json.loads((run / "fer4.json").read_text())["metrics"]["n_ferplus"]      # its validation faces
    assert card["metrics"]["n_ferplus"] == n_val
