"""The check: build or reuse the emulated Python, run the daemon and the probe on every side, summarize."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runtime.atomic_io import atomic_write_json, atomic_write_text

from .build import (
    _tail,
    build_requirements_text,
    edge_requirements,
    ensure_arm64_python,
    install_project,
    locked,
    pin_problems,
)
from .options import CheckOptions
from .report import format_summary, summarize
from .settings import (
    BLAZEFACE,
    DETECTORS,
    FER_TEST,
    PINS_FILE,
    PROFILES,
    REFERENCE,
    ROOT,
    RUN_TIMEOUT_S,
    SCRIPT,
    VIDEO,
    CheckUnavailable,
)


@dataclass
class Side:
    """Where one side runs: a command prefix, its environment and working folder."""

    name: str
    python: list[str]
    env: dict[str, str]
    cwd: Path


def make_sides(opts: CheckOptions, wrapper: Path, project: Path) -> list[Side]:
    """The x86 reference (this Python, the source tree) and one emulated side per Pi profile."""
    common = {"FER_SHARED": str(opts.shared), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    host_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    sides = [Side(REFERENCE, [sys.executable], {**host_env, **common}, ROOT)]
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8", "PYTHONPATH": str(project), **common}
    for name in opts.profiles:
        cwd = opts.workdir / name  # not the project root: the installed copy must be the one imported
        cwd.mkdir(parents=True, exist_ok=True)
        sides.append(Side(name, [str(wrapper)], {**base, "RPI_MODEL": PROFILES[name]["RPI_MODEL"]}, cwd))
    return sides


def daemon_args(opts: CheckOptions, source: Path, detector: str, output: Path, video: bool) -> list[str]:
    """``python -m edge_runtime`` arguments for one run (scores unsmoothed so raw outputs are compared)."""
    args = ["-m", "edge_runtime", "--source", str(source), "--model", str(opts.model), "--output", str(output),
            "--detector", detector, "--threads", str(opts.threads), "--smoothing", "1", "--log-level", "warning"]
    if detector == "blazeface":
        args += ["--detector-model", str(opts.shared / BLAZEFACE)]
    if video:
        args += ["--max-frames", str(opts.frames)]
    return args


def probe_args(opts: CheckOptions, photos: Path, out: Path) -> list[str]:
    """``python -m tools.arm64 probe`` arguments."""
    return ["-m", "tools.arm64", "probe", "--photos", str(photos), "--video", str(opts.shared / VIDEO),
            "--frames", str(opts.frames), "--model", str(opts.model), "--blazeface-model",
            str(opts.shared / BLAZEFACE), "--fer", str(opts.shared / FER_TEST), "--fer-per-label",
            str(opts.fer_per_label), "--threads", str(opts.threads), "--out", str(out)]


def run_one(side: Side, args: list[str], log_file: Path) -> dict[str, Any]:
    """Run ``side.python + args``; returns exit code, wall time and the stderr tail."""
    started = time.monotonic()
    try:
        done = subprocess.run(side.python + args, cwd=side.cwd, env=side.env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"returncode": -1, "wall_s": RUN_TIMEOUT_S, "stderr": f"timed out after {RUN_TIMEOUT_S} s"}
    log_file.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    return {"returncode": done.returncode, "wall_s": round(time.monotonic() - started, 1),
            "stderr": _tail(done.stderr, 8)}


def link_photos(shared: Path, names: Sequence[str], folder: Path) -> Path:
    """A folder of symlinks to the chosen shared photos (nothing is copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = folder / name
        if not link.exists():
            link.symlink_to(shared / "media" / "photos" / name)
    return folder


def check_inputs(opts: CheckOptions) -> Path:
    """Raise :class:`CheckUnavailable` when shared assets or the build script are missing; the script path."""
    script = opts.shared / SCRIPT
    needed = [script, opts.shared / VIDEO, opts.shared / BLAZEFACE] + \
        [opts.shared / "media" / "photos" / p for p in opts.photos]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise CheckUnavailable(f"shared assets not found: {', '.join(missing)} (set FER_SHARED to ../shared)")
    if not opts.model.is_file() or not opts.model.with_suffix(".json").is_file():
        raise FileNotFoundError(f"model {opts.model} or its card {opts.model.with_suffix('.json')} not found")
    return script


def run_check(opts: CheckOptions, log: Any = print) -> dict[str, Any]:
    """Build/reuse, run both sides, compare; returns the summary (also written to ``opts.summary``)."""
    started = time.monotonic()
    script = check_inputs(opts)
    requirements = edge_requirements()
    problems = pin_problems(requirements, PINS_FILE.read_text(encoding="utf-8"))
    if problems:
        raise RuntimeError(f"{PINS_FILE} disagrees with pyproject.toml [edge]: " + "; ".join(problems))
    opts.workdir.mkdir(parents=True, exist_ok=True)
    with locked(opts.arm64_dir):
        wrapper = ensure_arm64_python(opts.arm64_dir, script, build_requirements_text(requirements, PINS_FILE),
                                      PINS_FILE, log)
        project = install_project(opts.arm64_dir / "project", log=log)
        built = time.monotonic()
        sides = make_sides(opts, wrapper, project)
        photos = link_photos(opts.shared, opts.photos, opts.workdir / "photos")
        video = opts.shared / VIDEO
        jobs = []
        for side in sides:
            out = opts.workdir / side.name
            out.mkdir(parents=True, exist_ok=True)
            jobs.append((side, "probe", probe_args(opts, photos, out / "probe"), out / "probe.log"))
            for detector in DETECTORS:
                for kind, source in (("photos", photos), ("video", video)):
                    jsonl = out / f"{detector}-{kind}.jsonl"
                    jobs.append((side, f"{detector}-{kind}", daemon_args(opts, source, detector, jsonl,
                                                                          kind == "video"), out / f"{jsonl.stem}.log"))
        log(f"running {len(jobs)} jobs ({len(sides) - 1} emulated profiles x 5, and x86), {opts.jobs} at a time")
        with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
            runs = list(pool.map(lambda job: (job[0].name, job[1], run_one(job[0], job[2], job[3])), jobs))
    ran = time.monotonic()
    summary = summarize(opts, runs, project)
    summary["seconds"] = {"build_and_install": round(built - started, 1), "runs": round(ran - built, 1),
                          "total": round(time.monotonic() - started, 1)}
    for path in filter(None, (opts.summary, opts.arm64_dir / "last-summary.json")):
        atomic_write_json(path, summary)
    atomic_write_text(opts.arm64_dir / "last-summary.txt", format_summary(summary) + "\n")
    return summary
