"""Named runs in the runs folder: continued by the same command, listed with how far each got."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.train_support import make_folder_dataset

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--arch", "edge-small", "--batch-size", "16", "--val-fraction", "0.25", "--mixup", "0.2"]


def run_train(runs: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "FER_EDGE_RUNS": str(runs)}
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer")
    make_folder_dataset(root, per_class=12, test_per_class=4)
    return root


def history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_runs_default_to_the_cache_folder(monkeypatch, tmp_path):
    from train.run_store import run_dir_for, runs_root

    monkeypatch.delenv("FER_EDGE_RUNS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert runs_root() == tmp_path / "cache" / "fer-edge" / "runs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert runs_root() == Path.home() / ".cache" / "fer-edge" / "runs"
    monkeypatch.setenv("FER_EDGE_RUNS", str(tmp_path / "runs"))
    assert run_dir_for("fer7_sep") == tmp_path / "runs" / "fer7_sep"


HOLDER = """
import sys, time
from pathlib import Path
from train.run_store import hold_run
claim = hold_run(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(120)
"""


def test_a_run_in_training_is_claimed_and_listed_with_its_process(tmp_path, data):
    runs = tmp_path / "runs"
    run_dir = runs / "busy"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"name": "busy", "arch": "edge", "epochs": 5}))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        listed = run_train(runs, "--list-runs")
        assert listed.stdout.splitlines()[2].endswith(f"training (pid {holder.pid})"), listed.stdout
        second = run_train(runs, "--data", str(data), "--classes", "happy,neutral", "--epochs", "1",
                           "--name", "busy")
        assert second.returncode == 2
        errors = [line for line in second.stderr.splitlines() if line.strip()]
        assert errors == [f"python -m train: error: run busy in {run_dir} is being trained by process "
                          f"{holder.pid}; wait for it, stop it, or choose another --name or --out"]
        assert json.loads((run_dir / "config.json").read_text())["epochs"] == 5     # untouched
    finally:
        holder.kill()
        holder.wait()
    assert run_train(runs, "--list-runs").stdout.splitlines()[2].endswith("stopped")    # the claim died with it


def test_list_runs_shows_how_far_each_got(tmp_path):
    runs = tmp_path / "runs"
    stopped = runs / "fer7_sep"
    (stopped / "backup").mkdir(parents=True)
    (stopped / "config.json").write_text(json.dumps({"name": "fer7_sep", "arch": "edge-sep", "epochs": 160}))
    (stopped / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 3}))
    (stopped / "history.csv").write_text("epoch,loss,val_accuracy\n0,1.2,0.61\n1,1.0,0.7342\n2,0.9,0.70\n")
    finished = runs / "fer4"
    (finished / "backup").mkdir(parents=True)
    (finished / "config.json").write_text(json.dumps({"name": "fer4", "arch": "edge", "epochs": 2}))
    (finished / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 2}))
    (finished / "fer4.keras").write_bytes(b"model")
    (runs / "not_a_run").mkdir()

    result = run_train(runs, "--list-runs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"runs in {runs}"
    assert len(lines) == 5                                    # heading, header, a line per run, the hint
    fer4 = next(line for line in lines if line.startswith("fer4 "))
    assert fer4.split()[1:3] == ["edge", "2/2"] and fer4.endswith("finished")
    sep = next(line for line in lines if line.startswith("fer7_sep"))
    assert sep.split()[1:5] == ["edge-sep", "3/160", "73.42", "2"] and sep.endswith("stopped")
    assert "--resume" in lines[-1]

    empty = run_train(tmp_path / "none", "--list-runs")
    assert empty.returncode == 0 and empty.stdout.strip() == f"no runs in {tmp_path / 'none'}"


def test_a_named_run_with_other_settings_is_one_error_line(tmp_path, data):
    from train.cli import build_parser, make_config

    runs = tmp_path / "runs"
    args = ["--data", str(data), *TINY, "--epochs", "3", "--name", "tiny"]
    stored = make_config(build_parser().parse_args(args)).to_dict()
    (runs / "tiny").mkdir(parents=True)
    (runs / "tiny" / "config.json").write_text(json.dumps(stored))

    result = run_train(runs, *args, "--lr", "0.01")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert f"run tiny in {runs / 'tiny'} was started with other settings (lr: 0.002 -> 0.01)" in result.stderr
    assert "--force" in result.stderr
    assert json.loads((runs / "tiny" / "config.json").read_text()) == stored       # left as it was

    result = run_train(runs, *args, "--resume")
    assert result.returncode == 2 and "a named run (no --out) continues by itself" in result.stderr


@pytest.mark.slow
def test_a_run_killed_after_an_epoch_continues_to_the_same_result(tmp_path, data):
    """Killed once its first epoch is checkpointed, then started again with the same command, a run ends
    where the same run without a stop ends: same per-epoch losses, same final model."""
    runs = tmp_path / "runs"
    args = ["--data", str(data), *TINY, "--epochs", "4", "--seed", "3"]
    whole = run_train(runs, *args, "--name", "whole")
    assert whole.returncode == 0, whole.stderr

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "FER_EDGE_RUNS": str(runs)}
    proc = subprocess.Popen([sys.executable, "-m", "train", *args, "--name", "cut"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metadata = runs / "cut" / "backup" / "training_metadata.json"
    deadline = time.time() + 300
    while not metadata.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(metadata.read_text())["epoch"]
    assert 1 <= done < 4 and not (runs / "cut" / "cut.keras").exists()
    assert (runs / "cut" / "backup" / f"epoch{done:04d}.weights.h5").is_file()

    listing = run_train(runs, "--list-runs")
    assert f"{done}/4" in next(line for line in listing.stdout.splitlines() if line.startswith("cut "))

    again = run_train(runs, *args, "--name", "cut")
    assert again.returncode == 0, again.stderr
    assert f"continuing run cut in {runs / 'cut'} after {done} epochs" in again.stderr
    assert "epoch 1/4" not in again.stderr

    rows_whole, rows_cut = history(runs / "whole"), history(runs / "cut")
    assert [r["epoch"] for r in rows_cut] == [0, 1, 2, 3]
    for key in ("loss", "val_accuracy"):
        assert [r[key] for r in rows_cut] == pytest.approx([r[key] for r in rows_whole], rel=1e-3, abs=1e-4), key
    import keras

    test = np.stack([np.full((48, 48, 1), v, np.float32) for v in (0, 90, 180, 255)])
    probs_whole = keras.models.load_model(runs / "whole" / "whole.keras", compile=False).predict(test, verbose=0)
    probs_cut = keras.models.load_model(runs / "cut" / "cut.keras", compile=False).predict(test, verbose=0)
    np.testing.assert_allclose(probs_cut, probs_whole, atol=1e-3)


def test_a_refused_start_leaves_no_run_folder(tmp_path, data):
    missing = tmp_path / "typo"
    result = run_train(tmp_path / "runs", "--data", str(data), "--classes", "happy,neutral", "--resume",
                       "--out", str(missing))
    assert result.returncode == 2
    assert "holds no run to resume" in result.stderr
    assert not missing.exists()
