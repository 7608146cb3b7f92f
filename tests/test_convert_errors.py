"""convert/ on bad input: one clear error line, a non-zero exit, and no file written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convert import cli
from convert.conversion import Options, convert_model
from convert.errors import ConvertError
from edge_runtime.errors import FerEdgeError
from edge_runtime.labelled_faces.errors import FaceDataError

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys, *args) -> tuple[int, str]:
    code = cli.main(["--log-level", "ERROR", *map(str, args)])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_error_line(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("python -m convert: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_missing_model_from_the_command_line(tmp_path):
    """The real entry point: exit code 2 and a single line, before TensorFlow is even loaded."""
    result = subprocess.run([sys.executable, "-m", "convert", "--model", str(tmp_path / "nope.keras"),
                             "--data", str(tmp_path), "--out", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "nope.keras", "not found")
    assert not (tmp_path / "out").exists()


def test_not_a_keras_file(capsys, tmp_path):
    model = tmp_path / "model.h5"
    model.write_bytes(b"x")
    code, err = run_cli(capsys, "--model", model, "--data", tmp_path, "--out", tmp_path / "out")
    assert code == 2
    assert_one_error_line(err, "not a Keras model")


@pytest.mark.slow
def test_corrupt_keras_file(capsys, tmp_path, tiny_setup):
    data, model = tiny_setup
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"this is not a zip archive")
    shutil.copy(model.with_suffix(".json"), fake.with_suffix(".json"))
    code, err = run_cli(capsys, "--model", fake, "--data", data, "--out", tmp_path / "out",
                        "--calibration-samples", 40)
    assert code == 2
    assert_one_error_line(err, "fake.keras", "not a loadable Keras model")
    assert not any((tmp_path / "out").glob("*.tflite"))


def test_missing_card(capsys, tmp_path, tiny_setup):
    data, model = tiny_setup
    alone = tmp_path / "alone.keras"
    shutil.copy(model, alone)
    code, err = run_cli(capsys, "--model", alone, "--data", data, "--out", tmp_path / "out")
    assert code == 2
    assert_one_error_line(err, "alone.json", "not found")


def test_errors_of_the_training_code_are_reported_like_convert_errors(capsys, tmp_path, tiny_setup):
    """A FER+ model without its votes fails in the shared data code; its error shares convert's root and line."""
    data, model = tiny_setup
    ferplus = tmp_path / "ferplus.keras"
    shutil.copy(model, ferplus)
    card = json.loads(model.with_suffix(".json").read_text())
    card.setdefault("training", {}).setdefault("config", {}).update(labels="ferplus", votes=None)
    ferplus.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(FerEdgeError, match="needs the FER\\+ votes") as caught:
        convert_model(ferplus, data, tmp_path / "out")
    assert isinstance(caught.value, FaceDataError) and isinstance(ConvertError("x"), FerEdgeError)
    code, err = run_cli(capsys, "--model", ferplus, "--data", data, "--out", tmp_path / "out")
    assert code == 2
    assert_one_error_line(err, "needs the FER+ votes")


def test_data_classes_do_not_match_the_labels(capsys, tmp_path, tiny_setup):
    data, model = tiny_setup
    partial = tmp_path / "data"
    shutil.copytree(data, partial)
    shutil.rmtree(partial / "test" / "sad")
    code, err = run_cli(capsys, "--model", model, "--data", partial, "--out", tmp_path / "out")
    assert code == 2
    assert_one_error_line(err, "do not match the model's labels", "sad")


@pytest.mark.parametrize("samples, words", [(10000, ("too few calibration images", "only 180")),
                                            (8, ("too few calibration images", "minimum"))])
def test_too_few_calibration_images(capsys, tmp_path, tiny_setup, samples, words):
    data, model = tiny_setup
    code, err = run_cli(capsys, "--model", model, "--data", data, "--out", tmp_path / "out",
                        "--calibration-samples", samples)
    assert code == 2
    assert_one_error_line(err, *words)


@pytest.mark.parametrize("make_out", [lambda p: p / "file", lambda p: p / "file" / "sub"])
def test_output_directory_not_writable(capsys, tmp_path, tiny_setup, make_out):
    data, model = tiny_setup
    (tmp_path / "file").write_text("a file, not a folder")
    code, err = run_cli(capsys, "--model", model, "--data", data, "--out", make_out(tmp_path))
    assert code == 2
    assert_one_error_line(err, "not writable", "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_output_directory(capsys, tmp_path, tiny_setup):
    data, model = tiny_setup
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        code, err = run_cli(capsys, "--model", model, "--data", data, "--out", out)
    finally:
        out.chmod(0o700)
    assert code == 2
    assert_one_error_line(err, "not writable")


@pytest.mark.slow
def test_a_failed_accuracy_check_writes_nothing_and_keeps_old_files(tmp_path, tiny_setup):
    """int8 must not lose more than allowed; asking the impossible (gain 1 pt) fails after the
    calibration grew to all 162 images left once 10 % of the 180 training images are held out
    for the check, and neither new files nor temporary ones are left in the output folder."""
    data, model = tiny_setup
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny_int8.tflite").write_bytes(b"old model")
    (out / "tiny_int8.json").write_text(json.dumps({"old": True}))
    with pytest.raises(ConvertError, match="loses .* pt of validation accuracy .* even with 162 calibration images"):
        convert_model(model, data, out, Options(calibration_samples=60, max_int8_drop_pt=-1.0))
    assert sorted(p.name for p in out.iterdir()) == ["tiny_int8.json", "tiny_int8.tflite"]
    assert (out / "tiny_int8.tflite").read_bytes() == b"old model"
    assert json.loads((out / "tiny_int8.json").read_text()) == {"old": True}


def test_bad_numbers_on_the_command_line(capsys, tmp_path):
    code, err = run_cli(capsys, "--model", tmp_path / "m.keras", "--max-int8-drop", "-1")
    assert code == 2
    assert_one_error_line(err, "--max-int8-drop")
