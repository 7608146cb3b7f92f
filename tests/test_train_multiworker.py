"""``--strategy multiworker`` for real: two worker processes on 127.0.0.1, each with its own TF_CONFIG and
its own ``--out`` (as on two machines), training on FER+ soft labels with the command a user runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_train_ferplus import FOLDERS, planted_votes, write_votes
from tests.train_support import make_folder_dataset
from train import workers
from train.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
DIGEST = re.compile(r"final weights sha256 ([0-9a-f]{64})")
EPOCH = re.compile(r"INFO epoch (\d+/\d+) ")
RUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mw") / "fer2013"
    make_folder_dataset(root, per_class=12, test_per_class=4, classes=FOLDERS, plant=False)
    (root.parent / "ferplus").mkdir()
    write_votes(root.parent / "ferplus" / "votes.csv", planted_votes(root))
    return root


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    """Two ``python -m train`` workers; worker 0 is the chief. Each "machine" has its own folder with
    its ``--out`` run directory, its temporary directory and its log."""

    def __init__(self, tmp_path: Path, data: Path):
        self.data = data
        self.machines = [tmp_path / f"machine{i}" for i in range(2)]
        self.ports = free_ports(2)
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        for machine in self.machines:
            (machine / "tmp").mkdir(parents=True)

    def out(self, index: int) -> Path:
        return self.machines[index] / "run"

    def start(self, *args: str, name: str) -> None:
        cluster = {"worker": [f"127.0.0.1:{port}" for port in self.ports]}
        self.procs, self.logs = [], []
        for index, machine in enumerate(self.machines):
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(machine / "tmp"),
                   "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            command = [sys.executable, "-m", "train", "--data", str(self.data), "--labels", "ferplus",
                       "--arch", "edge-small", "--batch-size", "16", "--strategy", "multiworker",
                       "--out", str(self.out(index)), *args]
            log = machine / f"{name}.log"
            with log.open("w") as handle:
                self.procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle,
                                                   stderr=subprocess.STDOUT, start_new_session=True))
            self.logs.append(log)

    def wait(self, timeout: float = RUN_TIMEOUT) -> list[str]:
        """Wait for both workers; return their logs. Fails on a timeout or a non-zero exit."""
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
        texts = [log.read_text() for log in self.logs]
        for proc, text in zip(self.procs, texts, strict=True):
            assert proc.returncode == 0, text[-3000:]
        return texts

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def kill_all(self) -> None:
        for index in range(len(self.procs)):
            self.kill(index)


@pytest.fixture
def cluster(tmp_path, data):
    cluster = Cluster(tmp_path, data)
    try:
        yield cluster
    finally:
        cluster.kill_all()


def digests(logs: list[str]) -> list[str]:
    found = [DIGEST.findall(text) for text in logs]
    assert all(len(d) == 1 for d in found), found
    return [d[0] for d in found]


def epochs_logged(text: str) -> list[str]:
    return EPOCH.findall(text)


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
])
def test_the_chief_is_tensorflows_chief(tmp_path, monkeypatch, cluster, task, chief):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert workers.is_chief("multiworker") is chief
    assert workers.is_chief("default") and workers.is_chief("mirrored")
    out = workers.output_dir(tmp_path / "run", "multiworker")
    assert (out == tmp_path / "run") is chief
    assert chief or out.is_dir()


def test_a_broken_tf_config_is_one_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not a valid cluster description"):
        workers.is_chief("multiworker")
    monkeypatch.delenv("TF_CONFIG")
    assert workers.is_chief("multiworker")


@pytest.mark.slow
def test_two_workers_train_in_step_and_only_the_chief_writes(cluster):
    cluster.start("--epochs", "1", name="train")
    logs = cluster.wait()
    assert all("num_workers = 2" in text for text in logs)
    assert [epochs_logged(text) for text in logs] == [["1/1"], ["1/1"]]
    first, second = digests(logs)
    assert first == second
    run_dir = cluster.out(0)
    for name in ("config.json", "data_report.json", "history.csv", "best.weights.h5", "backup/epoch0001.weights.h5",
                 "fer4.keras", "fer4.json", "fer4.eval.json"):
        assert (run_dir / name).is_file(), name
    card = json.loads((run_dir / "fer4.json").read_text())
    assert card["metrics"]["label_source"] == "ferplus" and card["training"]["epochs_run"] == 1
    assert card["training"]["config"]["strategy"] == "multiworker"
    # The other worker's --out is never created; its checkpoints went to a scratch directory it removed.
    assert not cluster.out(1).exists()
    assert not any((cluster.machines[1] / "tmp").iterdir())


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_chiefs_checkpoint(cluster):
    cluster.start("--epochs", "3", name="first")
    metadata = cluster.out(0) / "backup" / "training_metadata.json"
    deadline = time.monotonic() + RUN_TIMEOUT
    while not metadata.is_file():
        assert time.monotonic() < deadline, "no checkpoint in time"
        assert all(proc.poll() is None for proc in cluster.procs), cluster.logs[0].read_text()[-3000:]
        time.sleep(0.05)
    cluster.kill(1)                              # a machine is lost...
    time.sleep(2)                                # (the chief, now stuck, finishes any checkpoint write)
    cluster.kill(0)                              # ...and the job is stopped
    done = json.loads(metadata.read_text())["epoch"]
    assert 1 <= done < 3, done
    # Resumed as after a single-machine stop: the same command with --resume, here without its --epochs,
    # so the other worker (which holds no config.json) must take the chief's settings to keep in step.
    cluster.start("--resume", name="resumed")
    logs = cluster.wait()
    for text in logs:
        assert epochs_logged(text) == [f"{n}/3" for n in range(done + 1, 4)], text[-3000:]
    first, second = digests(logs)
    assert first == second
    card = json.loads((cluster.out(0) / "fer4.json").read_text())
    assert card["training"]["epochs_run"] == 3
    assert not cluster.out(1).exists()
