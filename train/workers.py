"""Who writes the run directory in a multi-worker run (``--strategy multiworker``, cluster from TF_CONFIG).

Only the chief writes ``--out``: the task of type ``chief``, or worker 0 when the cluster has no
chief (TensorFlow's own rule). Every other worker takes part in the same training but writes its
checkpoints, history and logs into a private scratch directory that is removed when it exits.
No TensorFlow import here: the CLI asks before TensorFlow is loaded.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError

_scratch: Path | None = None


def task() -> tuple[str, int, dict]:
    """This process's task type, index and cluster from TF_CONFIG (``worker``, 0, {} without one)."""
    raw = os.environ.get("TF_CONFIG") or "{}"
    try:
        spec = json.loads(raw)
        kind, index = spec.get("task", {}).get("type", "worker"), int(spec.get("task", {}).get("index", 0))
        cluster = spec.get("cluster") or {}
    except (ValueError, AttributeError, TypeError) as exc:
        raise UserError(f"TF_CONFIG is not a valid cluster description ({exc}): {raw[:200]}") from None
    return kind, index, cluster


def is_chief(strategy: str = "multiworker") -> bool:
    """Whether this process writes the run directory: always, unless it is a non-chief worker of a
    ``multiworker`` run."""
    if strategy != "multiworker":
        return True
    kind, index, cluster = task()
    return kind == "chief" or (kind == "worker" and index == 0 and not cluster.get("chief"))


def output_dir(run_dir: Path, strategy: str) -> Path:
    """Where this process writes: ``run_dir`` on the chief, else a scratch directory removed at exit."""
    global _scratch
    if is_chief(strategy):
        return run_dir
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="fer-edge-worker-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch
