"""Where training runs live, and their state written atomically every epoch.

A run named ``NAME`` keeps everything in ``runs_root() / NAME``: ``config.json``, the per-epoch checkpoint
``backup/`` (weights with the optimizer state, and the epoch), ``history.csv``, ``best.weights.h5``, cached
teacher targets and, once finished, the model. The root is ``$FER_EDGE_RUNS``, else
``$XDG_CACHE_HOME/fer-edge/runs``, else ``~/.cache/fer-edge/runs``: outside any work tree, so a run
survives a fresh checkout and continues with the same command.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import UserError

CONFIG_FILE = "config.json"
BACKUP_DIR = "backup"
METADATA_FILE = "training_metadata.json"
HISTORY_FILE = "history.csv"
#: held (``flock``) by the process training the run, for as long as it lives; holds that process's id
LOCK_FILE = ".lock"
#: settings that may differ when a run is continued: how it was invoked and its schedule length
CONTINUE_MAY_CHANGE = ("command", "resumed_with", "epochs_changed", "epochs")


def runs_root() -> Path:
    """``$FER_EDGE_RUNS``, else ``$XDG_CACHE_HOME/fer-edge/runs``, else ``~/.cache/fer-edge/runs``."""
    if os.environ.get("FER_EDGE_RUNS"):
        return Path(os.environ["FER_EDGE_RUNS"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "fer-edge" / "runs"


def run_dir_for(name: str) -> Path:
    """The run directory of the run called ``name`` (a plain name, no path separators)."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise UserError(f"--name {name!r}: give a plain run name (letters, digits, - and _), or a path with --out")
    return runs_root() / name


def config_mismatch(stored: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first setting a continued run would change (as ``"KEY: stored -> new"``), or ``None``.

    The schedule length (``epochs``) may change, as with ``--resume --epochs``."""
    for key in sorted(set(stored) | set(new)):
        if key in CONTINUE_MAY_CHANGE:
            continue
        if stored.get(key) != new.get(key):
            return f"{key}: {stored.get(key)!r} -> {new.get(key)!r}"
    return None


def epochs_done(run_dir: Path) -> int:
    """Epochs a run has completed, as its last checkpoint says (0 when it has none)."""
    try:
        return int(json.loads((run_dir / BACKUP_DIR / METADATA_FILE).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def atomic_save_weights(model: Any, path: Path) -> None:
    """``model.save_weights(path)`` through a temporary file in the same folder, then one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def trim_history(run_dir: Path, epochs: int) -> None:
    """Keep the first ``epochs`` rows of ``history.csv``: an epoch logged after the last checkpoint is run
    again when the run continues, so its row would otherwise appear twice."""
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) <= epochs + 1:
        return
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".history.", suffix=".csv")
    with os.fdopen(fd, "w", newline="") as handle:
        csv.writer(handle).writerows(rows[:epochs + 1])
    os.replace(tmp, path)


def hold_run(run_dir: Path) -> Any:
    """Claim ``run_dir`` for this process (created if need be) until the process ends: the open lock file,
    to keep. One error line when another process is training the run; the OS drops the claim of a process
    that dies, so a killed run never leaves a stale claim."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = (run_dir / LOCK_FILE).open("a+")
    except OSError as exc:
        raise UserError(f"cannot use {run_dir} as the run folder ({exc.strerror or exc}); "
                        "choose another --out or --name") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise UserError(f"run {run_dir.name} in {run_dir} is being trained by process {pid}; wait for it, stop "
                        "it, or choose another --name or --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def training_pid(run_dir: Path) -> int | None:
    """The id of the process training the run in ``run_dir``, or ``None`` when none is."""
    try:
        with (run_dir / LOCK_FILE).open() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


@dataclass(frozen=True)
class RunSummary:
    """How far one run got: epochs done of those planned, its best validation score, when it last wrote."""

    name: str
    path: Path
    arch: str
    epochs_done: int
    epochs_planned: int
    best_val_accuracy: float | None
    best_epoch: int | None
    updated: datetime
    finished: bool
    pid: int | None = None

    @property
    def state(self) -> str:
        """``finished``, ``training (pid N)`` or ``stopped`` (continue it with the same command)."""
        if self.finished:
            return "finished"
        return "stopped" if self.pid is None else f"training (pid {self.pid})"


def summarize(run_dir: Path) -> RunSummary | None:
    """The summary of the run in ``run_dir``, or ``None`` when it holds no run (no readable config)."""
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    scores: list[float] = []
    history = run_dir / HISTORY_FILE
    if history.is_file():
        with history.open(newline="") as handle:
            scores = [float(row["val_accuracy"]) for row in csv.DictReader(handle) if row.get("val_accuracy")]
    best = max(range(len(scores)), key=scores.__getitem__) if scores else None
    written = [p.stat().st_mtime for p in (run_dir / CONFIG_FILE, history, run_dir / BACKUP_DIR / METADATA_FILE)
               if p.exists()]
    name = str(config.get("name") or run_dir.name)
    return RunSummary(name=run_dir.name, path=run_dir, arch=str(config.get("arch", "edge")),
                      epochs_done=epochs_done(run_dir), epochs_planned=int(config.get("epochs", 0)),
                      best_val_accuracy=None if best is None else scores[best],
                      best_epoch=None if best is None else best + 1,
                      updated=datetime.fromtimestamp(max(written), UTC),
                      finished=(run_dir / f"{name}.keras").is_file(), pid=training_pid(run_dir))


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Every run under ``root`` (default :func:`runs_root`), by name."""
    root = runs_root() if root is None else root
    if not root.is_dir():
        return []
    found = (summarize(path) for path in sorted(root.iterdir()) if path.is_dir())
    return [summary for summary in found if summary is not None]


def format_runs(runs: list[RunSummary], root: Path) -> str:
    """The ``--list-runs`` table: one line per run."""
    if not runs:
        return f"no runs in {root}"
    header = f"{'run':<24} {'arch':<10} {'epochs':>9} {'best val':>9} {'at epoch':>8}  {'last update (UTC)':<19}  state"
    lines = [f"runs in {root}", header]
    for run in runs:
        best = "-" if run.best_val_accuracy is None else f"{100 * run.best_val_accuracy:.2f}"
        lines.append(f"{run.name:<24} {run.arch:<10} {f'{run.epochs_done}/{run.epochs_planned}':>9} {best:>9} "
                     f"{run.best_epoch or '-':>8}  {run.updated:%Y-%m-%d %H:%M:%S}  "
                     f"{run.state}")
    if any(run.state == "stopped" for run in runs):
        lines.append("a stopped run continues with the command it was started with (config.json, \"command\"); "
                     "add --resume when it was started with --out")
    return "\n".join(lines)
