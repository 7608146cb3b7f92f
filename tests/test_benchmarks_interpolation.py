"""``python -m benchmarks.interpolation``: models on the weight line between two real Keras models.

The ends are the models of ``test_benchmarks_teachers``: one reads the class from the bar every synthetic face
carries (always right), one always leans to "happy" (a quarter right). A mix's answers are checked against a
model built by hand from the averaged weights, on the same validation faces.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from benchmarks.interpolation import main  # noqa: E402
from tests.test_benchmarks_teachers import bar_reader, data, save_model  # noqa: E402, F401
from tests.train_support import CLASSES  # noqa: E402

LEANING = np.log(np.array([0.7, 0.1, 0.1, 0.1], np.float32))


@pytest.fixture(scope="module")
def ends(tmp_path_factory, data):  # noqa: F811
    root = tmp_path_factory.mktemp("ends")
    kernel, bias = bar_reader()
    return {"reader": save_model(root / "reader", "fer4", data, kernel, bias, seed=1),
            "happy": save_model(root / "happy", "fer4", data, np.zeros_like(kernel), LEANING, seed=1),
            "leaky": save_model(root / "leaky", "fer4", data, kernel, bias, seed=2)}


def validation_accuracy(data, model_path, kernel: np.ndarray, bias: np.ndarray) -> float:  # noqa: F811
    """Accuracy on the model's validation faces of ``softmax(x @ kernel + bias)``, computed apart."""
    from edge_runtime.labelled_faces import scoring
    from edge_runtime.model.card import load_card
    from train.evaluate import validation_faces

    votes = scoring.resolve_votes(str(data), None, required=True)
    faces = validation_faces(load_card(model_path), str(data), votes)
    logits = faces.images.reshape(len(faces), -1).astype(np.float64) @ kernel + bias
    return float((logits.argmax(1) == faces.fer2013).mean())


def test_the_ends_are_the_models_and_a_mix_is_their_weight_average(tmp_path, data, ends):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    code = main(["--start", str(ends["happy"]), "--end", str(ends["reader"]), "--alphas", "0,0.042,1",
                 "--data", str(data), "--out", str(out)])
    assert code == 0
    result = json.loads((out / "interpolation.json").read_text())
    rows = {(r["alpha"], r["flip"]): r for r in result["mixes"]}
    assert sorted(rows) == [(a, f) for a in (0.0, 0.042, 1.0) for f in (False, True)]
    assert rows[0.0, False]["val"]["accuracy_fer2013"] == rows[0.0, False]["val"]["accuracy_ferplus"] == 0.25
    assert rows[1.0, False]["val"]["accuracy_fer2013"] == rows[1.0, False]["val"]["accuracy_ferplus"] == 1.0
    kernel, _ = bar_reader()
    expected = validation_accuracy(data, ends["reader"], 0.042 * kernel, 0.958 * LEANING)
    assert 0.25 < expected < 1.0                          # the mix is neither end
    assert rows[0.042, False]["val"]["accuracy_fer2013"] == pytest.approx(expected, abs=1e-4)
    # both the reader and its mirror are always right: the tie goes to no flip
    assert [(r["alpha"], r["flip"]) for r in result["mixes"] if r["chosen"]] == [(1.0, False)]
    assert [e["option"] for e in result["ends"]] == ["--start", "--end"]
    assert "| 1.00 **(chosen)** | no |" in (out / "interpolation.md").read_text()
    assert (out / "interpolation.png").stat().st_size > 0


def test_the_guard_rules_out_the_mixes_below_it(tmp_path, data, ends):  # noqa: F811
    code = main(["--start", str(ends["happy"]), "--end", str(ends["reader"]), "--alphas", "0,1", "--guard",
                 str(ends["reader"]), "--guard-margin", "0", "--class-bias", "--data", str(data),
                 "--out", str(tmp_path)])
    assert code == 0
    rows = {(r["alpha"], r["flip"]): r for r in json.loads((tmp_path / "interpolation.json").read_text())["mixes"]}
    assert rows[0.0, False]["guard_shortfall"] > 0 and rows[1.0, False]["guard_shortfall"] == 0
    assert rows[1.0, False]["chosen"]


@pytest.mark.parametrize("problem, message", [
    ("alphas", "--alphas 0,2: every value must lie from 0 (--start) to 1 (--end)"),
    ("leaky", "trained on"),
    ("architecture", "are not the same architecture"),
    ("classes", "the --end model must answer the --split-from model's classes, and --start at least those"),
])
def test_bad_input_is_one_error_line(tmp_path, data, ends, capsys, problem, message):  # noqa: F811
    start, alphas = ends["happy"], "0,1"
    if problem == "alphas":
        alphas = "0,2"
    elif problem == "leaky":
        start = ends["leaky"]
    elif problem == "architecture":
        from edge_runtime.model.card import load_card, write_card
        from train.model_card import keras_card
        from train.records import training_record

        model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(3),
                                  keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")])
        (tmp_path / "wide").mkdir()
        start = tmp_path / "wide" / "fer4.keras"
        model.save(start)
        write_card(keras_card(start.with_suffix(".json"), CLASSES, model, training_record(load_card(ends["happy"]))))
    else:
        kernel, bias = bar_reader()
        start = save_model(tmp_path / "two", "fer2", data, kernel[:, :2], bias[:2], seed=1, labels=CLASSES[:2])
    code = main(["--start", str(start), "--end", str(ends["reader"]), "--alphas", alphas, "--data", str(data)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and errors == err.strip().splitlines()[-1:] and "Traceback" not in err
    assert message in errors[0]


def test_a_start_with_more_classes_is_cut_to_the_end_s(tmp_path, data, ends):  # noqa: F811
    from edge_runtime.model.card import load_card, write_card
    from train.model_card import keras_card
    from train.records import training_record

    # the reader's columns in another order, plus an "angry" column that would win every face if it were kept
    labels = ("surprise", "angry", "sad", "neutral", "happy")
    kernel, bias = bar_reader()
    columns = [kernel[:, CLASSES.index(name)] if name in CLASSES else np.zeros(len(kernel), np.float32)
               for name in labels]
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(len(labels), activation="softmax", name="probabilities")])
    model.layers[-1].set_weights([np.stack(columns, 1), np.array([0, 100, 0, 0, 0], np.float32)])
    (tmp_path / "five").mkdir()
    start = tmp_path / "five" / "fer5.keras"
    model.save(start)
    write_card(keras_card(start.with_suffix(".json"), labels, model, training_record(load_card(ends["reader"]))))
    code = main(["--start", str(start), "--end", str(ends["happy"]), "--alphas", "0", "--data", str(data),
                 "--out", str(tmp_path)])
    assert code == 0
    rows = json.loads((tmp_path / "interpolation.json").read_text())["mixes"]
    assert [r["val"]["accuracy_fer2013"] for r in rows] == [1.0, 1.0]     # the reader, as seen and mirrored
