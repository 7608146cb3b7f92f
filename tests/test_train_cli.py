"""``python -m train`` and ``python -m train.evaluate`` end to end on a tiny data set."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train_support import make_folder_dataset

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--arch", "edge-small", "--batch-size", "16", "--val-fraction", "0.25"]


def run_cli(*args: str, module: str = "train", timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer")
    make_folder_dataset(root, per_class=12, test_per_class=4)
    return root


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/missing"], "does not exist"),
    (["--data", "{data}", "--classes", "happy,bored"], "unknown class name"),
    (["--data", "{data}", "--classes", "angry,happy"], "angry missing"),
    (["--data", "{data}", "--drop", "typos"], "unknown --drop"),
    (["--data", "{data}", "--arch", "resnet"], "--arch must be one of edge, edge-fast"),
    (["--data", "{data}", "--resume"], "no run to resume"),
    (["--data", "{data}", "--mixup", "-1"], "--mixup must be"),
    (["--data", "{data}", "--teacher", "{tmp}/missing.keras"], "--teacher {tmp}/missing.keras not found"),
    (["--data", "{data}", "--teacher", "{tmp}/missing.keras", "--teacher-weight", "1.5"], "--teacher-weight must"),
    (["--data", "{data}", "--teacher-bias"], "--teacher-bias shifts the teachers' output: add --teacher MODEL.keras"),
])
def test_bad_input_gives_one_error_line(tmp_path, data, args, message):
    args = [a.format(tmp=tmp_path, data=data) for a in args]
    result = run_cli(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_existing_run_dir_is_not_overwritten(tmp_path, data):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("keep me")
    result = run_cli("--data", str(data), "--out", str(run_dir))
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (run_dir / "precious.txt").read_text() == "keep me"


@pytest.mark.slow
def test_train_interrupt_resume_and_evaluate(tmp_path, data):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "train", "--data", str(data), *TINY, "--epochs", "4", "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    metadata = run_dir / "backup" / "training_metadata.json"
    deadline = time.time() + 240
    while not metadata.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)            # a crash after the first epoch's checkpoint
    proc.wait()
    assert metadata.exists(), proc.stderr.read()
    assert not (run_dir / "fer4.keras").exists()
    done_before = json.loads(metadata.read_text())["epoch"]           # epochs completed before the crash
    assert 1 <= done_before < 4

    result = run_cli("--out", str(run_dir), "--resume", "--epochs", str(done_before), "--data", str(data))
    assert result.returncode == 2 and "already done" in result.stderr          # cannot shorten below what ran
    # Resumed with a longer schedule (4 -> 5 epochs): it goes on where it stopped, not at 1.
    result = run_cli("--out", str(run_dir), "--resume", "--epochs", "5", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert f"epoch {done_before + 1}/5" in result.stderr
    assert "epoch 1/5" not in result.stderr
    with (run_dir / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(row["epoch"]) for row in rows]
    assert epochs[-(5 - done_before):] == list(range(done_before, 5))   # (the crash may precede a CSV row)
    spent = [float(row["epoch_seconds"]) for row in rows]
    assert all(s > 0 for s in spent)
    card_seconds = json.loads((run_dir / "fer4.json").read_text())["training"]["train_seconds"]
    assert card_seconds == pytest.approx(sum(spent), abs=0.2), "every epoch counts, before the crash too"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 5 and config["epochs_changed"] == [{"from": 4, "to": 5, "after_epoch": done_before}]
    for name in ("fer4.keras", "fer4.json", "fer4.eval.json", "fer4.confusion.png", "history.png",
                 "data_report.json"):
        assert (run_dir / name).is_file(), name
    card = json.loads((run_dir / "fer4.json").read_text())
    assert card["labels"] == ["happy", "neutral", "sad", "surprise"]
    assert card["input"]["value_range"] == [0, 255] and card["input"]["height"] == 48
    report = json.loads((run_dir / "fer4.eval.json").read_text())
    assert report["n"] == 17 and len(report["confusion"]) == 4
    assert sum(map(sum, report["confusion"])) == 17
    data_report = json.loads((run_dir / "data_report.json").read_text())
    assert data_report["leakage"]["train_images_also_in_test"] == 1

    out = tmp_path / "eval"
    result = run_cli("--model", str(run_dir / "fer4.keras"), "--data", str(data), "--out", str(out),
                     module="train.evaluate")
    assert result.returncode == 0, result.stderr
    again = json.loads((out / "fer4.eval.json").read_text())
    assert again["confusion"] == report["confusion"]
    assert (out / "fer4.confusion.png").stat().st_size > 1000
    # --split validation re-carves the run's own validation split from the card: the same faces
    # and so the same accuracy as the run recorded for its best epoch.
    result = run_cli("--model", str(run_dir / "fer4.keras"), "--data", str(data), "--out", str(out),
                     "--split", "validation", module="train.evaluate")
    assert result.returncode == 0, result.stderr
    val_report = json.loads((out / "fer4.validation.eval.json").read_text())
    assert val_report["n"] == data_report["split"]["validation"]
    assert round(val_report["accuracy"], 4) == card["training"]["best_val_accuracy"]
    assert json.loads((out / "fer4.eval.json").read_text())["n"] == 17          # the test report is kept

    # A warm start from that run (2 of its classes, with mixup, taught by it) validates on its validation faces.
    warm = tmp_path / "warm"
    result = run_cli("--data", str(data), "--init-from", str(run_dir / "fer4.keras"), "--classes", "happy,sad",
                     "--arch", "edge-small", "--batch-size", "16", "--epochs", "1", "--mixup", "0.2",
                     "--teacher", str(run_dir / "fer4.keras"), "--teacher-weight", "0.4", "--out", str(warm))
    assert result.returncode == 0, result.stderr
    assert "validating on" in result.stderr and "epoch 1/1" in result.stderr
    assert "distilling from" in result.stderr
    config = json.loads((warm / "config.json").read_text())
    assert config["split_classes"] == ["happy", "neutral", "sad", "surprise"]
    assert config["val_fraction"] == 0.25 and config["split_method"] == "by-content" and config["mixup"] == 0.2
    split = json.loads((warm / "data_report.json").read_text())["split"]
    assert split["carved_over"] == config["split_classes"]
    source_split = data_report["split"]
    assert split["validation"] < source_split["validation"] and split["test"] == 8
    card = json.loads((warm / "fer2.json").read_text())
    assert card["training"]["init_from"]["name"] == "fer4"
    assert [t["name"] for t in card["training"]["teachers"]] == ["fer4"]
    assert card["training"]["teachers"][0]["sha256"] == card["training"]["init_from"]["sha256"]
    assert card["training"]["config"]["teacher_weight"] == 0.4
    # The same with mirrored, cached, biased teacher targets and a per-class bias: all recorded in the card.
    cached = tmp_path / "cached"
    result = run_cli("--data", str(data), "--init-from", str(run_dir / "fer4.keras"), "--classes", "happy,sad",
                     "--arch", "edge-small", "--batch-size", "16", "--epochs", "1", "--teacher",
                     str(run_dir / "fer4.keras"), "--teacher-flip", "--teacher-zoom", "1.09", "--teacher-targets",
                     "cached", "--class-bias", "--teacher-bias", "--out", str(cached))
    assert result.returncode == 0, result.stderr
    assert "teacher targets for" in result.stderr and (cached / "teacher_targets.npz").is_file()
    training = json.loads((cached / "fer2.json").read_text())["training"]
    assert set(training["prior_adjustment"]["class_bias"]) == {"happy", "sad"}
    assert list(training["teacher_bias"]) == ["happy", "sad"] and training["teacher_bias"]["happy"] == 0.0
    assert training["config"]["teacher_bias"] is True and "teacher bias chosen on validation" in result.stderr
    assert training["config"]["teacher_targets"] == "cached" and training["config"]["teacher_flip"] is True
    assert training["config"]["teacher_zoom"] == 1.09 and "centres enlarged 1.09 times" in result.stderr
    # A warm start needs a source trained on every one of its classes: one error line.
    result = run_cli("--data", str(data), "--init-from", str(run_dir / "fer4.keras"), "--classes", "happy,angry",
                     "--out", str(tmp_path / "wider"))
    assert result.returncode == 2 and "trained without angry" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path, data):
    result = run_cli("--data", str(data), *TINY, "--epochs", "1", "--strategy", "mirrored",
                     "--cpu-devices", "2", "--classes", "happy,sad", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stderr
    assert (tmp_path / "run" / "fer2.keras").is_file()


def test_evaluate_errors(tmp_path, data):
    result = run_cli("--model", str(tmp_path / "none.keras"), "--data", str(data), module="train.evaluate")
    assert result.returncode == 2 and "not found" in result.stderr
    fake = tmp_path / "fake.keras"
    fake.write_text("not a model")
    result = run_cli("--model", str(fake), "--data", str(data), module="train.evaluate")
    assert result.returncode == 2 and "card" in result.stderr and "Traceback" not in result.stderr
    # A card with no training split: --split validation says so and points at --split test.
    (tmp_path / "fake.json").write_text(json.dumps({
        "schema_version": 1, "name": "fake", "variant": "keras", "file": "fake.keras", "labels": ["happy", "sad"],
        "input": {"height": 48, "width": 48, "channels": 1, "color": "grayscale", "dtype": "float32",
                  "value_range": [0, 255]}, "output": {"dtype": "float32", "kind": "probabilities"}}))
    result = run_cli("--model", str(fake), "--data", str(data), "--split", "validation", module="train.evaluate")
    assert result.returncode == 2 and "records no training split" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("module", ["train", "convert"])
def test_an_unknown_log_level_is_one_error_line_not_a_traceback(module):
    done = subprocess.run([sys.executable, "-m", module, "--data", "d", "--out", "o", "--model", "m.keras",
                           "--log-level", "foo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"python -m {module}: error: argument --log-level: invalid choice: 'foo' (choose from 'debug', 'info', "
        f"'warning', 'error') (see python -m {module} --help)"]
