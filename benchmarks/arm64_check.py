"""The edge runtime on emulated 64-bit ARM (Raspberry Pi 4 and Pi 5 CPUs) gives the same answers as on x86.

``python -m benchmarks.arm64_check [--model M] [--out summary.json]``:

1. builds (or reuses) an emulated aarch64 CPython 3.11 with ``../shared/tools/arm64/make-arm64-python.sh``
   under ``<project>/.arm64/`` (``$FER_ARM64_DIR``), with the aarch64 PyPI wheels of pyproject's ``[edge]``
   extra, pinned by ``deploy/requirements-edge.txt``;
2. installs the project into it (``pip install --no-deps --target``; it is pure Python);
3. runs the real ``python -m edge_runtime`` there under the Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76)
   profiles, and here on x86, on a few of ``../shared/media/photos`` and the first frames of
   ``short_hamilton_clip.mp4``, with both detectors;
4. compares the JSON lines: same faces (boxes within a pixel), same labels, scores within one int8
   step of the model's output quantization; counts which were identical;
5. runs a stage probe (``python -m benchmarks.arm64_check probe``) on both sides that keeps every
   intermediate array (decoded pixels, grayscale, detector tensors and boxes, crops, int8 outputs,
   the classifier with and without XNNPACK on fixed inputs), so a difference is traced to its stage
   (decoder, OpenCV, LiteRT kernel) with its size; it also records that ``import edge_runtime`` works
   without TensorFlow there and that the runtime chosen is LiteRT.

Exit codes: 0 same answers, 1 a difference beyond tolerance (listed), 2 cannot run here (reason given).
Timings under emulation are ~100x slower than a real Pi and mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runtime.model_card import load_card
from edge_runtime.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
PINS_FILE = ROOT / "deploy" / "requirements-edge.txt"
DEFAULT_PHOTOS = ("obama-240p.jpg", "alex-lacamoire.png", "two_people.jpg")  # JPEG, PNG, 2 faces + downscale
VIDEO = Path("media") / "video" / "short_hamilton_clip.mp4"  # relative to the shared folder
BLAZEFACE = Path("models") / "face_detection" / "face_detection_short_range.tflite"
FER_TEST = Path("data") / "fer2013" / "test"
SCRIPT = Path("tools") / "arm64" / "make-arm64-python.sh"
DETECTORS = ("haar", "blazeface")
#: Emulated Raspberry Pi profiles: the wrapper's RPI_MODEL selects the QEMU CPU.
PROFILES = {"pi4": {"RPI_MODEL": "4", "cpu": "cortex-a72"}, "pi5": {"RPI_MODEL": "5", "cpu": "cortex-a76"}}
REFERENCE = "x86_64"
BOX_TOLERANCE_PX = 1
JSON_ROUNDING = 1e-4  # the daemon writes scores with 4 decimals: two roundings differ by at most this
DETECTOR_SCORE_RTOL = 1e-3
NETWORK_ERRORS = ("Temporary failure resolving", "Could not resolve", "Failed to fetch", "Network is unreachable",
                  "Max retries exceeded", "Name or service not known", "Connection refused", "timed out",
                  "NewConnectionError", "ConnectionError", "Could not connect", "No route to host")
RUN_TIMEOUT_S = 900
#: What each probe stage holds (keys of the probe's arrays are ``stage|item``; per-frame stages end in
#: ``_photo`` or ``_video``).
STAGES = {
    "decode": "decoding: photos by cv2.imdecode (libjpeg-turbo, libpng); video by OpenCV's FFmpeg (H.264 "
              "decoder, then swscale's YUV to BGR conversion)",
    "decode_fer": "48x48 grayscale JPEG decoding (FER2013 test faces)",
    "gray": "BGR to grayscale (cv2.cvtColor)",
    "det_haar": "Haar cascade boxes and weights (float)",
    "det_blazeface": "BlazeFace boxes and scores after anchor decoding and weighted NMS (float)",
    "kp_blazeface": "BlazeFace keypoints (float)",
    "bf_in": "BlazeFace input tensor (letterbox, cv2.resize, scaling to -1..1)",
    "bf_out": "BlazeFace raw outputs (float32 model on LiteRT with XNNPACK)",
    "cls_in_haar": "classifier input of the Haar faces (square crop, cv2.resize to 48x48, int8)",
    "cls_in_blazeface": "classifier input of the BlazeFace faces",
    "cls_out_haar": "classifier raw output of the Haar faces (each side's own crops)",
    "cls_out_blazeface": "classifier raw output of the BlazeFace faces",
    "kin": "kernel check inputs (FER2013 test faces + seeded noise), identical on every side",
    "kout_xnnpack": "kernel check: classifier raw output, LiteRT default (XNNPACK) as the runtime uses it",
    "klogits_xnnpack": "kernel check: the input of the final SOFTMAX (XNNPACK's part of the model; SOFTMAX runs "
                       "on LiteRT's own kernel)",
    "kout_xnnpack4": "kernel check: the same with 4 interpreter threads (a Pi's default)",
    "kout_builtin": "kernel check: classifier raw output, LiteRT built-in kernels (XNNPACK off)",
}
#: The raw int8 outputs of the runtime's own kernels on identical inputs may differ by at most this many steps.
KERNEL_MAX_STEPS = 1
#: Faces in frames whose decoded pixels differ between the sides must still overlap this much (IoU).
DECODED_MIN_IOU = 0.8


def stage_description(stage: str) -> str:
    """What a probe stage (``det_haar_video``, ``kout_xnnpack``...) holds."""
    base, _, kind = stage.rpartition("_")
    return STAGES.get(stage) or f"{STAGES.get(base, base)} ({kind}s)"


class CheckUnavailable(RuntimeError):
    """The check cannot run on this machine (the message says why and what to do)."""


# ------------------------------------------------------------------------------------------ requirements
def edge_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The ``[edge]`` extra of pyproject.toml: the one source of truth for the device's packages."""
    import tomllib

    return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"]["edge"])


def parse_pins(text: str) -> dict[str, str]:
    """``name == version`` lines of a pins file (comments and blank lines skipped), names canonical."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        pins[canonicalize_name(req.name)] = specs[0].version if len(specs) == 1 and specs[0].operator == "==" \
            else f"not pinned ({req.specifier or 'no version'})"
    return pins


def pin_problems(requirements: Sequence[str], pins_text: str) -> list[str]:
    """Every way the pins disagree with the ``[edge]`` requirements (empty when consistent)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = parse_pins(pins_text)
    problems = [f"{name}: {version}; pin it with ==" for name, version in pins.items()
                if version.startswith("not pinned")]
    wanted = set()
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        wanted.add(name)
        if name not in pins:
            problems.append(f"{name} (pyproject [edge]: {text}) has no pin in {PINS_FILE.name}")
        elif not pins[name].startswith("not pinned") and not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{name}=={pins[name]} is outside pyproject's [edge] range '{req.specifier}'")
    problems += [f"{name} is pinned but not in pyproject's [edge] extra" for name in sorted(set(pins) - wanted)]
    return problems


def build_requirements_text(requirements: Sequence[str], pins_file: Path) -> str:
    """The -r file given to the build script: pyproject's ``[edge]`` lines, constrained by the pins."""
    return ("# generated by benchmarks/arm64_check.py from pyproject.toml [edge]; do not edit\n"
            + "".join(f"{r}\n" for r in requirements) + f"-c {pins_file.resolve()}\n")


# ------------------------------------------------------------------------------------------ environment
def default_arm64_dir() -> Path:
    """Where the emulated builds go: ``$FER_ARM64_DIR``, else ``<project>/.arm64`` (git-ignored)."""
    return Path(os.environ.get("FER_ARM64_DIR") or ROOT / ".arm64")


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _unavailable_if_offline(log_text: str, what: str) -> None:
    hit = next((s for s in NETWORK_ERRORS if s in log_text), None)
    if hit:
        raise CheckUnavailable(f"{what}: no package archive reachable ('{hit}'); run it where the Debian "
                               "archive and PyPI are reachable, or reuse a build via FER_ARM64_DIR")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (one check at a time uses a build)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_arm64_python(arm64_dir: Path, script: Path, requirements_text: str, pins_file: Path,
                        log: Any = print) -> Path:
    """Build or reuse the emulated Python in ``arm64_dir/py``; returns its ``py-arm64`` wrapper.

    It is rebuilt (by the script, which re-uses what it can) when the requirements, the pins or the
    script changed; an unchanged build is reused without network or root.
    """
    dest = arm64_dir / "py"
    wrapper, stamp_file = dest / "py-arm64", dest / ".fer-edge-stamp"
    pins = json.dumps(sorted(parse_pins(pins_file.read_text(encoding="utf-8")).items()))  # not its comments
    stamp = _sha256(requirements_text.encode(), pins.encode(), script.read_bytes())
    if wrapper.is_file() and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        log(f"reusing the emulated aarch64 Python in {dest}")
        return wrapper
    if os.geteuid() != 0:
        raise CheckUnavailable("building the emulated aarch64 Python needs root (apt-get); run as root, "
                               "or point FER_ARM64_DIR at a finished build")
    dest.mkdir(parents=True, exist_ok=True)
    req_file = arm64_dir / "requirements-edge.txt"
    req_file.write_text(requirements_text)
    log(f"building the emulated aarch64 Python in {dest} (about 30 s, a few minutes the first time)")
    done = subprocess.run(["bash", str(script), "-d", str(dest), "-r", str(req_file)], capture_output=True,
                          text=True, timeout=1800)
    (arm64_dir / "build.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0:
        _unavailable_if_offline(done.stdout + done.stderr, "building the emulated aarch64 Python failed")
        raise RuntimeError(f"{script} failed (exit {done.returncode}); see {arm64_dir / 'build.log'}:\n"
                           + _tail(done.stderr or done.stdout))
    stamp_file.write_text(stamp + "\n")
    return wrapper


def page_size_check(build_log: Path) -> dict[str, Any] | None:
    """The build script's Pi 5 check (every ELF LOAD segment 16 KiB-aligned), read from its log."""
    import re

    text = build_log.read_text(encoding="utf-8", errors="replace") if build_log.is_file() else ""
    found = re.search(r"16K-page check \(Pi 5\): (\d+) LOAD segments, (\d+) files not 16K-compatible", text)
    return None if found is None else {"load_segments": int(found[1]), "files_not_16k_compatible": int(found[2]),
                                       "not_ok": re.findall(r"NOT 16K-OK: (\S+)", text)}


def project_files(root: Path = ROOT) -> list[Path]:
    """What a wheel of the project is built from: pyproject.toml, README.md and its packages' files."""
    import tomllib

    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    files = [root / "pyproject.toml", root / "README.md"]
    for package in config["tool"]["setuptools"]["packages"]:
        files += sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)
    return [f for f in files if f.is_file()]


def install_project(target: Path, root: Path = ROOT, log: Any = print) -> Path:
    """``pip install --no-deps --target`` the project into ``target`` (again only when its files changed).

    The wheel is built from a staged copy, so nothing is written into the source tree.
    """
    files = project_files(root)
    stamp = _sha256(*(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() for f in files))
    stamp_file = target / ".fer-edge-stamp"
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        log(f"reusing the project installed in {target}")
        return target
    log(f"installing the project into {target} (pip install --no-deps --target)")
    with tempfile.TemporaryDirectory(prefix="fer-edge-stage-") as stage:
        for f in files:
            copy = Path(stage) / f.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, copy)
        shutil.rmtree(target, ignore_errors=True)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                               "--target", str(target), stage], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
    if done.returncode != 0:
        _unavailable_if_offline(done.stdout + done.stderr, "installing the project failed")
        raise RuntimeError(f"pip install of the project failed:\n{_tail(done.stderr)}")
    stamp_file.write_text(stamp + "\n")
    return target


# ------------------------------------------------------------------------------------------ the runs
@dataclass
class Side:
    """Where one side runs: a command prefix, its environment and working folder."""

    name: str
    python: list[str]
    env: dict[str, str]
    cwd: Path


@dataclass
class CheckOptions:
    """What the check runs on (see ``--help``)."""

    model: Path
    workdir: Path
    summary: Path | None = None
    shared: Path = field(default_factory=shared_dir)
    arm64_dir: Path = field(default_factory=default_arm64_dir)
    photos: tuple[str, ...] = DEFAULT_PHOTOS
    frames: int = 5
    fer_per_label: int = 3
    threads: int = 1
    profiles: tuple[str, ...] = tuple(PROFILES)
    jobs: int = 2

    def __post_init__(self) -> None:
        # every side runs in its own folder: paths must be absolute
        self.model, self.workdir, self.shared, self.arm64_dir = (
            Path(p).resolve() for p in (self.model, self.workdir, self.shared, self.arm64_dir))
        self.summary = None if self.summary is None else Path(self.summary).resolve()


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
    """``python -m benchmarks.arm64_check probe`` arguments."""
    return ["-m", "benchmarks.arm64_check", "probe", "--photos", str(photos), "--video", str(opts.shared / VIDEO),
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


# ------------------------------------------------------------------------------------------ comparison
def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _box_diff(a: Sequence[int], b: Sequence[int]) -> int:
    return max(abs(int(x) - int(y)) for x, y in zip(a, b, strict=True))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _pair_faces(ref: list[dict], other: list[dict]) -> list[tuple[dict, dict]]:
    """Pair faces by nearest box (greedy), so a reordering by a tiny score change is not a difference."""
    pairs, left = [], list(other)
    for face in ref:
        best = min(left, key=lambda o: _box_diff(face["box"], o["box"]))
        left.remove(best)
        pairs.append((face, best))
    return pairs


def _face_stats() -> dict[str, Any]:
    return {"frames": 0, "faces": 0, "identical": 0, "within_tolerance": 0, "labels_equal": True,
            "max_box_px": 0, "min_iou": 1.0, "max_score_diff": 0.0, "max_score_steps": 0.0,
            "max_score_steps_same_box": 0.0, "max_detector_score_diff": 0.0, "label_flips_box_moved": 0}


def compare_records(ref: list[dict], other: list[dict], step: float, what: str,
                    pixels_differ: Callable[[dict], bool] | None = None) -> dict[str, Any]:
    """Compare two runs' JSON lines face by face.

    Frames whose decoded pixels are the same on both sides (``pixels_differ`` false) must agree:
    boxes within ``BOX_TOLERANCE_PX`` px, the same label, every score within one output ``step``
    (plus the JSON's 4-decimal rounding), detector scores within ``DETECTOR_SCORE_RTOL``. Their
    figures are at the top level. Frames decoded differently (``decoded_differently``) must give the
    same faces (same count, IoU >= ``DECODED_MIN_IOU``) with the same labels, except where the box
    moved: the classifier then saw another crop, which can tip a near tie (counted in
    ``label_flips_box_moved``); the size of their other differences is measured. A face is
    *identical* when its JSON is. ``problems`` lists the rest.
    """
    same, decoded = _face_stats(), _face_stats()
    problems: list[str] = []
    index = {(r["source"], r["frame"]): r for r in other}
    if len(other) != len(ref):
        problems.append(f"{what}: {len(other)} frames instead of {len(ref)}")
    for rec in ref:
        key = (rec["source"], rec["frame"])
        mate = index.get(key)
        if mate is None:
            problems.append(f"{what}: frame {key} missing")
            continue
        strict = not (pixels_differ and pixels_differ(rec))
        stats = same if strict else decoded
        stats["frames"] += 1
        if len(mate["faces"]) != len(rec["faces"]):
            problems.append(f"{what}: frame {key}: {len(mate['faces'])} faces instead of {len(rec['faces'])}")
            continue
        for a, b in _pair_faces(rec["faces"], mate["faces"]):
            stats["faces"] += 1
            box, iou = _box_diff(a["box"], b["box"]), box_iou(a["box"], b["box"])
            score = max(abs(a["scores"][k] - b["scores"].get(k, float("inf"))) for k in a["scores"])
            det = abs(a["detector_score"] - b["detector_score"])
            stats["max_box_px"] = max(stats["max_box_px"], box)
            stats["min_iou"] = min(stats["min_iou"], round(iou, 4))
            stats["max_score_diff"] = max(stats["max_score_diff"], round(score, 6))
            if step > 0:
                stats["max_score_steps"] = max(stats["max_score_steps"], round(score / step, 2))
                if box == 0:  # what the pixels alone changed, without a crop shift
                    stats["max_score_steps_same_box"] = max(stats["max_score_steps_same_box"], round(score / step, 2))
            stats["max_detector_score_diff"] = max(stats["max_detector_score_diff"], round(det, 6))
            same_label = a["label"] == b["label"]
            stats["labels_equal"] &= same_label
            stats["identical"] += a == b
            if strict:
                ok = (box <= BOX_TOLERANCE_PX and score <= step + JSON_ROUNDING and same_label
                      and det <= DETECTOR_SCORE_RTOL * max(1.0, abs(a["detector_score"])) + JSON_ROUNDING)
            else:
                ok = iou >= DECODED_MIN_IOU and (same_label or box > 0)
                stats["label_flips_box_moved"] += not same_label and box > 0
            ok = ok and a.get("track_id") == b.get("track_id")
            stats["within_tolerance"] += ok
            if not ok:
                problems.append(f"{what}: frame {key}{'' if strict else ' (decoded differently)'}: "
                                f"x86 {a} vs {b}")
    return {**same, "decoded_differently": decoded, "problems": problems}


def compare_arrays(ref: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per probe stage: how many arrays are bit-identical, and the size of the differences of the rest."""
    import numpy as np

    stages: dict[str, dict[str, Any]] = {}
    for key in sorted(set(ref) | set(other)):
        stage = key.split("|", 1)[0]
        s = stages.setdefault(stage, {"items": 0, "identical": 0, "missing": 0, "shape_differs": 0,
                                      "max_abs_diff": 0.0, "elements_differing": 0, "elements": 0})
        s["items"] += 1
        if key not in ref or key not in other:
            s["missing"] += 1
            continue
        a, b = np.asarray(ref[key]), np.asarray(other[key])
        if a.shape != b.shape or a.dtype != b.dtype:
            s["shape_differs"] += 1
            continue
        s["elements"] += int(a.size)
        if a.tobytes() == b.tobytes():
            s["identical"] += 1
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        s["max_abs_diff"] = max(s["max_abs_diff"], float(diff.max()))
        s["elements_differing"] += int(np.count_nonzero(diff))
    return stages


def load_probe(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A probe's ``meta.json`` and its arrays."""
    import numpy as np

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    with np.load(folder / "arrays.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return meta, arrays


def meta_problems(side: str, meta: dict[str, Any], project: Path | None) -> list[str]:
    """What a probe's facts must say: LiteRT, no TensorFlow, the right machine and CPU profile."""
    problems = []
    if meta["runtime"] != "ai_edge_litert":
        problems.append(f"{side}: the runtime chosen is {meta['runtime']}, not LiteRT (ai_edge_litert)")
    if meta["tensorflow_imported"]:
        problems.append(f"{side}: edge_runtime imported {meta['tensorflow_imported']}")
    if side == REFERENCE:
        return problems
    if meta["machine"] != "aarch64":
        problems.append(f"{side}: machine is {meta['machine']}, not aarch64")
    if meta["tensorflow_installed"]:
        problems.append(f"{side}: TensorFlow is importable in the emulated Python (it must not be there)")
    if project is not None and not Path(meta["edge_runtime_file"]).is_relative_to(project):
        problems.append(f"{side}: edge_runtime came from {meta['edge_runtime_file']}, not the installed copy")
    dotprod = "asimddp" in meta["cpu_features"].split()
    if dotprod != (side == "pi5"):
        problems.append(f"{side}: CPU features '{meta['cpu_features']}' are not those of a "
                        f"{PROFILES[side]['cpu']} (dot product {'missing' if side == 'pi5' else 'present'})")
    return problems


def output_step(model: Path) -> float:
    """The int8 step of the model's scores: its card's output quantization scale (0 for float outputs)."""
    quant = (load_card(model).raw.get("output") or {}).get("quantization") or {}
    return float(quant.get("scale") or 0.0)


# ------------------------------------------------------------------------------------------ the check
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
    from edge_runtime.atomic_io import atomic_write_json, atomic_write_text

    for path in filter(None, (opts.summary, opts.arm64_dir / "last-summary.json")):
        atomic_write_json(path, summary)
    atomic_write_text(opts.arm64_dir / "last-summary.txt", format_summary(summary) + "\n")
    return summary


def frames_decoded_differently(ref: Mapping[str, Any], other: Mapping[str, Any],
                                video: Path) -> Callable[[dict], bool]:
    """A predicate on daemon records: were this frame's decoded pixels different on the two sides?"""
    differ = {key.split("|", 1)[1] for key in ref if key.startswith("decode_")
              and (key not in other or ref[key].tobytes() != other[key].tobytes())}

    def predicate(record: dict) -> bool:
        if record["source"] == str(video):
            return f"video={record['frame']}" in differ
        return f"photo={Path(record['source']).name}" in differ

    return predicate


def summarize(opts: CheckOptions, runs: list[tuple[str, str, dict]], project: Path) -> dict[str, Any]:
    """Compare every emulated side with x86; the summary dict (``ok``, ``problems``, figures)."""
    step = output_step(opts.model)
    problems = [f"{side} {job}: exit {r['returncode']}: {r['stderr']}" for side, job, r in runs if r["returncode"]]
    card = json.loads(opts.model.with_suffix(".json").read_text(encoding="utf-8"))
    summary: dict[str, Any] = {
        "ok": False, "model": {"file": str(opts.model), "name": card.get("name"), "variant": card.get("variant"),
                               "output_step": step, "sha256": card.get("sha256")},
        "workload": {"photos": list(opts.photos), "video": str(VIDEO), "video_frames": opts.frames,
                     "detectors": list(DETECTORS), "threads": opts.threads, "smoothing": "off"},
        "tolerance": {"box_px": BOX_TOLERANCE_PX, "score": f"one output step ({step}) + {JSON_ROUNDING} rounding",
                      "label": "equal"},
        "wall_s": {f"{side} {job}": r["wall_s"] for side, job, r in runs},
        "sides": {}, "problems": problems,
    }
    ref_dir = opts.workdir / REFERENCE
    ref_meta = ref_arrays = None
    if (ref_dir / "probe" / "meta.json").is_file():
        ref_meta, ref_arrays = load_probe(ref_dir / "probe")
        summary["sides"][REFERENCE] = {"facts": ref_meta}
        problems += meta_problems(REFERENCE, ref_meta, None)
    for side in opts.profiles:
        entry: dict[str, Any] = {"cpu": PROFILES[side]["cpu"], "daemon": {}}
        side_dir = opts.workdir / side
        pixels_differ = None
        if (side_dir / "probe" / "meta.json").is_file() and ref_arrays is not None:
            meta, arrays = load_probe(side_dir / "probe")
            entry["facts"] = meta
            problems += meta_problems(side, meta, project)
            entry["stages"] = compare_arrays(ref_arrays, arrays)
            entry["differences"] = [
                {"stage": stage, "what": stage_description(stage), "identical": f"{st['identical']}/{st['items']}",
                 "max_abs_diff": st["max_abs_diff"], "shape_differs": st["shape_differs"],
                 "share_of_values": round(st["elements_differing"] / st["elements"], 4) if st["elements"] else None}
                for stage, st in entry["stages"].items() if st["identical"] != st["items"]]
            for stage in ("kout_xnnpack", "kout_xnnpack4"):  # the runtime's kernels on identical inputs
                kernel = entry["stages"].get(stage, {})
                if not kernel.get("items") or kernel["missing"] or kernel["shape_differs"] or \
                        kernel["max_abs_diff"] > KERNEL_MAX_STEPS:
                    problems.append(f"{side}: {stage}: the classifier's int8 outputs on identical inputs differ by "
                                    f"more than {KERNEL_MAX_STEPS} step: {kernel}")
            pixels_differ = frames_decoded_differently(ref_arrays, arrays, opts.shared / VIDEO)
        else:
            problems.append(f"{side}: no probe results to compare")
        for detector in DETECTORS:
            ref_records, other_records = [], []
            for kind in ("photos", "video"):
                name = f"{detector}-{kind}.jsonl"
                if (ref_dir / name).is_file() and (side_dir / name).is_file():
                    ref_records += read_jsonl(ref_dir / name)
                    other_records += read_jsonl(side_dir / name)
            if not ref_records:
                problems.append(f"{side} {detector}: no output to compare")
                continue
            result = compare_records(ref_records, other_records, step, f"{side} {detector}", pixels_differ)
            problems += result.pop("problems")
            entry["daemon"][detector] = result
        summary["sides"][side] = entry
    x86_versions = (ref_meta or {}).get("versions", {})
    arm_versions = next((s["facts"]["versions"] for s in summary["sides"].values()
                         if "facts" in s and s is not summary["sides"].get(REFERENCE)), {})
    summary["versions"] = {REFERENCE: x86_versions, "aarch64": arm_versions,
                           "same": bool(x86_versions) and x86_versions == arm_versions}
    pages = page_size_check(opts.arm64_dir / "build.log")
    summary["pi5_16k_pages"] = pages
    if pages and pages["files_not_16k_compatible"]:
        problems.append(f"{pages['files_not_16k_compatible']} aarch64 libraries will not load on a Pi 5's 16 KiB-page "
                        f"kernel: {pages['not_ok']}")
    summary["ok"] = not problems
    return summary


def stage_line(stage: str, s: dict[str, Any]) -> str:
    """One probe stage's comparison as text."""
    text = f"{stage:24} {s['identical']:3d}/{s['items']:<3d} bit-identical"
    if s["identical"] != s["items"]:
        share = s["elements_differing"] / s["elements"] if s["elements"] else 0.0
        text += f"; max |diff| {s['max_abs_diff']:.3g} in {share:.1%} of {s['elements']} values"
        text += f", {s['shape_differs']} differ in shape/count" if s["shape_differs"] else ""
        text += f", {s['missing']} missing" if s["missing"] else ""
    return text


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable report of a summary."""
    model, w = summary["model"], summary["workload"]
    lines = [f"emulated aarch64 vs x86: model {model['name']} ({model['variant']}, int8 step "
             f"{model['output_step']:.6g}), {len(w['photos'])} photos + {w['video_frames']} video frames, "
             f"both detectors, threads {w['threads']}",
             f"{'profile':8} {'detector':10} {'pixels':9} {'faces':>5} {'identical':>9} {'ok':>4} {'box px':>6} "
             f"{'min IoU':>7} {'score steps':>11} {'(same box)':>10} labels"]
    for side, entry in summary["sides"].items():
        for detector, r in entry.get("daemon", {}).items():
            for group, g in (("same", r), ("differ", r["decoded_differently"])):
                if g["faces"] or group == "same":
                    lines.append(f"{side:8} {detector:10} {group:9} {g['faces']:5d} {g['identical']:9d} "
                                 f"{g['within_tolerance']:4d} {g['max_box_px']:6d} {g['min_iou']:7.3f} "
                                 f"{g['max_score_steps']:11.2f} {g['max_score_steps_same_box']:10.2f} "
                                 f"{'same' if g['labels_equal'] else 'DIFFER'}"
                                 + (f" ({g['label_flips_box_moved']} where the box moved)"
                                    if g["label_flips_box_moved"] else ""))
    for side, entry in summary["sides"].items():
        if "stages" not in entry:
            continue
        facts = entry["facts"]
        lines.append(f"{side} ({entry['cpu']}; cpu features: {facts['cpu_features']}; runtime {facts['runtime']}; "
                     f"TensorFlow installed: {facts['tensorflow_installed']}, imported: "
                     f"{facts['tensorflow_imported'] or 'no'}; 4 threads = 1 thread: "
                     f"{facts.get('xnnpack_4_threads_same_as_1')}) - stages vs x86:")
        lines += ["  " + stage_line(stage, s) for stage, s in entry["stages"].items()]
    pages = summary.get("pi5_16k_pages")
    if pages:
        lines.append(f"Pi 5 16 KiB pages: {pages['load_segments']} ELF LOAD segments of the aarch64 wheels and "
                     f"Python checked, {pages['files_not_16k_compatible']} files not compatible")
    v = summary.get("versions", {})
    lines.append(f"versions: x86 {v.get(REFERENCE)}, aarch64 {v.get('aarch64')}"
                 + ("" if v.get("same") else " (NOT the same: differences may come from versions)"))
    if "seconds" in summary:
        lines.append(f"time: {summary['seconds']} s (emulated timings mean nothing for a real Pi)")
    lines.append("verdict: " + ("same answers" if summary["ok"] else
                                "DIFFERENT:\n  " + "\n  ".join(summary["problems"][:20])))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the probe
def _cpu_features() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("features", "flags"):
            return value.strip() if key.strip().lower() == "features" else \
                " ".join(f for f in value.split() if f.startswith(("avx", "sse4", "fma", "vnni")))
    return ""


def softmax_input(interpreter: Any) -> int | None:
    """The tensor feeding the model's final SOFTMAX, when it is readable after ``invoke``.

    XNNPACK does not take int8 SOFTMAX, so its input is the output of the delegated part and stays
    readable: comparing it separates the delegated kernels from LiteRT's own SOFTMAX kernel.
    """
    try:
        ops = interpreter._get_ops_details()  # noqa: SLF001 - no public API lists the ops
    except Exception:  # noqa: BLE001 - informational only
        return None
    softmax = [op for op in ops if op.get("op_name") == "SOFTMAX"]
    return int(softmax[-1]["inputs"][0]) if softmax else None


def probe(args: argparse.Namespace) -> int:
    """Record every intermediate array of the pipeline and the runtime facts (runs on either side)."""
    import importlib.util
    import platform
    from importlib.metadata import version

    import cv2
    import numpy as np

    import edge_runtime
    from edge_runtime import FaceRecognizer, open_source
    from edge_runtime.atomic_io import atomic_write_json, atomic_write_with
    from edge_runtime.litert_runtime import interpreter_class, make_interpreter
    from edge_runtime.preprocessing import input_tensor, to_gray
    from edge_runtime.recognizer import clip_box

    arrays: dict[str, np.ndarray] = {}
    frames = []
    with open_source(args.photos) as source:
        frames += [(f"photo={Path(f.source).name}", f.image) for f in source]
    with open_source(args.video) as source:
        for f in source:
            if f.index >= args.frames:
                break
            frames.append((f"video={f.index}", f.image))
    for key, image in frames:
        kind = key.split("=")[0]
        arrays[f"decode_{kind}|{key}"] = image
        arrays[f"gray_{kind}|{key}"] = to_gray(image)
    recognizer = None
    for detector in DETECTORS:
        recognizer = FaceRecognizer(args.model, detector=detector, num_threads=args.threads,
                                    detector_model=args.blazeface_model if detector == "blazeface" else None)
        classifier = recognizer.classifier
        out_index = classifier.interpreter.get_output_details()[0]["index"]
        for key, image in frames:
            kind = key.split("=")[0]
            found = recognizer.detect(image)
            arrays[f"det_{detector}_{kind}|{key}"] = np.array([[*d.box, d.score] for d in found],
                                                              np.float64).reshape(-1, 5)
            if detector == "blazeface":
                itp = recognizer.detector.interpreter
                arrays[f"kp_blazeface_{kind}|{key}"] = np.array([d.keypoints for d in found], np.float64)
                arrays[f"bf_in_{kind}|{key}"] = itp.get_tensor(itp.get_input_details()[0]["index"]).copy()
                for i, detail in enumerate(sorted(itp.get_output_details(), key=lambda d: d["index"])):
                    arrays[f"bf_out_{kind}|{key}|{i}"] = itp.get_tensor(detail["index"]).copy()
            height, width = image.shape[:2]
            for i, detection in enumerate(found):
                box = clip_box(detection.box, width, height)
                if box is None:
                    continue
                crop = recognizer.crop(image, box)
                arrays[f"cls_in_{detector}_{kind}|{key}|{i}"] = input_tensor(crop, recognizer.card.input)
                classifier.probabilities(crop)
                arrays[f"cls_out_{detector}_{kind}|{key}|{i}"] = classifier.interpreter.get_tensor(out_index).copy()
    # The kernel check: the same inputs on both sides, with and without XNNPACK.
    card = recognizer.card
    faces = []
    fer = Path(args.fer) if args.fer else None
    for label in card.labels:
        folder = fer / label if fer else None
        for path in sorted(folder.glob("*.jpg"))[: args.fer_per_label] if folder and folder.is_dir() else []:
            gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            arrays[f"decode_fer|{label}:{path.name}"] = gray
            faces.append(gray)
    rng = np.random.default_rng(0)  # PCG64: the same numbers on every platform
    faces += [rng.integers(0, 256, (card.input.height, card.input.width), dtype=np.uint8) for _ in range(4)]
    cls, runtime = interpreter_class()
    interpreters = {"xnnpack": recognizer.classifier.interpreter,
                    "xnnpack4": make_interpreter(str(args.model), num_threads=4)}  # a Pi's default thread count
    resolver = getattr(sys.modules.get(cls.__module__), "OpResolverType", None)
    if resolver is not None:
        builtin = cls(model_path=str(args.model), num_threads=args.threads,
                      experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        builtin.allocate_tensors()
        interpreters["builtin"] = builtin
    logits = softmax_input(interpreters["xnnpack"])
    for i, face in enumerate(faces):
        tensor = input_tensor(face, card.input)
        arrays[f"kin|{i}"] = tensor
        for name, itp in interpreters.items():
            itp.set_tensor(itp.get_input_details()[0]["index"], tensor)
            itp.invoke()
            arrays[f"kout_{name}|{i}"] = itp.get_tensor(itp.get_output_details()[0]["index"]).copy()
            if name == "xnnpack" and logits is not None:
                arrays[f"klogits_xnnpack|{i}"] = itp.get_tensor(logits).copy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out / "arrays.npz", lambda tmp: np.savez(tmp, **arrays))
    versions = {}
    for package in ("ai-edge-litert", "numpy", "opencv-python-headless"):
        try:
            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - informational
            versions[package] = None
    atomic_write_json(out / "meta.json", {
        "machine": platform.machine(), "python": platform.python_version(), "cpu_features": _cpu_features(),
        "versions": versions, "runtime": recognizer.runtime_name, "interpreter_runtime": runtime,
        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
        "tensorflow_imported": sorted({m.split(".")[0] for m in sys.modules
                                       if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")}),
        "edge_runtime_file": edge_runtime.__file__, "opencv": cv2.__version__, "arrays": len(arrays),
        "xnnpack_4_threads_same_as_1": all(arrays[k].tobytes() == arrays[k.replace("kout_xnnpack4|", "kout_xnnpack|")]
                                           .tobytes() for k in arrays if k.startswith("kout_xnnpack4|"))})
    return 0


# ------------------------------------------------------------------------------------------ command line
def probe_main(argv: Sequence[str]) -> int:
    """``python -m benchmarks.arm64_check probe ...`` (run by the check on each side)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.arm64_check probe",
                                description="Record the pipeline's intermediate arrays (for the arm64 check).")
    p.add_argument("--photos", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--model", required=True)
    p.add_argument("--blazeface-model", required=True)
    p.add_argument("--fer", help="FER2013 test folder (label/*.jpg) for the kernel check")
    p.add_argument("--fer-per-label", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    return probe(p.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check (or, with ``probe`` first, the probe); see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["probe"]:
        return probe_main(argv[1:])
    from edge_runtime.paths import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="python -m benchmarks.arm64_check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="int8 .tflite with its card (default: bundled)")
    p.add_argument("--out", type=Path, help="also write the summary JSON here (always: <arm64 dir>/last-summary.json)")
    p.add_argument("--workdir", type=Path, help="keep the runs' outputs here (default: a temporary folder)")
    p.add_argument("--arm64-dir", type=Path, default=default_arm64_dir(), help="emulated builds (default: .arm64)")
    p.add_argument("--shared", type=Path, default=shared_dir(), help="shared assets (default: ../shared)")
    p.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS), help="names in shared media/photos")
    p.add_argument("--frames", type=int, default=5, help="first video frames to process (default 5)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads on every side (default 1)")
    p.add_argument("--profiles", nargs="+", choices=list(PROFILES), default=list(PROFILES))
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fer-arm64-")))
        opts = CheckOptions(model=args.model, workdir=workdir, summary=args.out,
                            shared=args.shared, arm64_dir=args.arm64_dir, photos=tuple(args.photos),
                            frames=args.frames, threads=args.threads, profiles=tuple(args.profiles), jobs=args.jobs)
        try:
            summary = run_check(opts)
        except CheckUnavailable as exc:
            print(f"error: cannot run the arm64 check here: {exc}", file=sys.stderr)
            return 2
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(format_summary(summary))
    print(f"summary: {opts.summary or opts.arm64_dir / 'last-summary.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
