"""The probe: every intermediate array of the runtime's recognizer and the runtime's facts, on one side.

Run by the check on each side as ``python -m tools.arm64 probe ...``. The frames go through the
runtime's own :meth:`FaceRecognizer.recognize`; a :class:`RecognizeTrace` hands back what it
detected and cropped. The kernel check then runs the classifier on identical inputs with and
without XNNPACK. Only the runtime's dependencies are imported (no TensorFlow).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import edge_runtime
from edge_runtime import FaceRecognizer, open_source
from edge_runtime.atomic_io import atomic_write_json, atomic_write_with
from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.model.litert import interpreter_class, make_interpreter
from edge_runtime.model.preprocessing import input_tensor, to_gray
from edge_runtime.recognition.recognizer import RecognizeTrace

from .settings import DETECTORS


def cpu_features() -> str:
    """The CPU's feature flags (aarch64 ``Features``; on x86 only the SIMD ones that matter here)."""
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
        ops = interpreter._get_ops_details()  # no public API lists the ops
    except Exception:  # informational only
        return None
    softmax = [op for op in ops if op.get("op_name") == "SOFTMAX"]
    return int(softmax[-1]["inputs"][0]) if softmax else None


def read_frames(photos: str, video: str, max_frames: int) -> list[tuple[str, np.ndarray]]:
    """``(key, image)`` of every photo and of the first ``max_frames`` video frames."""
    frames = []
    with open_source(photos) as source:
        frames += [(f"photo={Path(f.source).name}", f.image) for f in source]
    with open_source(video) as source:
        for f in source:
            if f.index >= max_frames:
                break
            frames.append((f"video={f.index}", f.image))
    return frames


def recognizer_arrays(recognizer: FaceRecognizer, frames: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """What the recognizer computed on every frame: boxes, BlazeFace tensors, classifier inputs and outputs."""
    arrays: dict[str, np.ndarray] = {}
    detector = recognizer.detector.name
    classifier = recognizer.classifier
    out_index = classifier.interpreter.get_output_details()[0]["index"]
    for key, image in frames:
        kind = key.split("=")[0]
        trace = RecognizeTrace()
        recognizer.recognize(image, trace=trace)
        found = trace.detections
        arrays[f"det_{detector}_{kind}|{key}"] = np.array([[*d.box, d.score] for d in found],
                                                          np.float64).reshape(-1, 5)
        if detector == "blazeface":
            itp = recognizer.detector.interpreter
            arrays[f"kp_blazeface_{kind}|{key}"] = np.array([d.keypoints for d in found], np.float64)
            arrays[f"bf_in_{kind}|{key}"] = itp.get_tensor(itp.get_input_details()[0]["index"]).copy()
            for i, detail in enumerate(sorted(itp.get_output_details(), key=lambda d: d["index"])):
                arrays[f"bf_out_{kind}|{key}|{i}"] = itp.get_tensor(detail["index"]).copy()
        for i, crop in trace.crops.items():
            arrays[f"cls_in_{detector}_{kind}|{key}|{i}"] = input_tensor(crop, recognizer.card.input)
            classifier.probabilities(crop)
            arrays[f"cls_out_{detector}_{kind}|{key}|{i}"] = classifier.interpreter.get_tensor(out_index).copy()
    return arrays


def kernel_arrays(recognizer: FaceRecognizer, model: str, fer: Path | None, per_label: int,
                  threads: int) -> dict[str, np.ndarray]:
    """The classifier on identical inputs (FER2013 test faces and seeded noise), with and without XNNPACK."""
    arrays: dict[str, np.ndarray] = {}
    card = recognizer.card
    faces = []
    for label in card.labels:
        folder = fer / label if fer else None
        for path in sorted(folder.glob("*.jpg"))[:per_label] if folder and folder.is_dir() else []:
            gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            arrays[f"decode_fer|{label}:{path.name}"] = gray
            faces.append(gray)
    rng = np.random.default_rng(0)  # PCG64: the same numbers on every platform
    faces += [rng.integers(0, 256, (card.input.height, card.input.width), dtype=np.uint8) for _ in range(4)]
    cls, _runtime = interpreter_class()
    interpreters = {"xnnpack": recognizer.classifier.interpreter,
                    "xnnpack_4_threads": make_interpreter(model, num_threads=4)}  # a Pi's default thread count
    resolver = getattr(sys.modules.get(cls.__module__), "OpResolverType", None)
    if resolver is not None:
        builtin = cls(model_path=model, num_threads=threads,
                      experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        builtin.allocate_tensors()
        interpreters["builtin"] = builtin
    logits = softmax_input(interpreters["xnnpack"])
    for i, face in enumerate(faces):
        tensor = input_tensor(face, card.input)
        arrays[f"kernel_in|{i}"] = tensor
        for name, itp in interpreters.items():
            itp.set_tensor(itp.get_input_details()[0]["index"], tensor)
            itp.invoke()
            arrays[f"kernel_out_{name}|{i}"] = itp.get_tensor(itp.get_output_details()[0]["index"]).copy()
            if name == "xnnpack" and logits is not None:
                arrays[f"kernel_logits_xnnpack|{i}"] = itp.get_tensor(logits).copy()
    return arrays


def runtime_facts(recognizer: FaceRecognizer, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Machine, versions, runtime, TensorFlow's absence, and whether 4 threads gave 1 thread's outputs."""
    versions = {}
    for package in ("ai-edge-litert", "numpy", "opencv-python-headless"):
        try:
            versions[package] = version(package)
        except Exception:  # informational
            versions[package] = None
    one_thread = "kernel_out_xnnpack|"
    four_threads = "kernel_out_xnnpack_4_threads|"
    return {
        "machine": platform.machine(), "python": platform.python_version(), "cpu_features": cpu_features(),
        "versions": versions, "runtime": recognizer.runtime_name, "interpreter_runtime": interpreter_class()[1],
        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
        "tensorflow_imported": sorted({m.split(".")[0] for m in sys.modules
                                       if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")}),
        "edge_runtime_file": edge_runtime.__file__, "opencv": cv2.__version__, "arrays": len(arrays),
        "xnnpack_4_threads_same_as_1": all(arrays[k].tobytes() == arrays[k.replace(four_threads, one_thread)]
                                           .tobytes() for k in arrays if k.startswith(four_threads)),
    }


def probe(args: argparse.Namespace) -> int:
    """Record every intermediate array of the recognizer and the runtime facts (runs on either side)."""
    frames = read_frames(args.photos, args.video, args.frames)
    arrays: dict[str, np.ndarray] = {}
    for key, image in frames:
        kind = key.split("=")[0]
        arrays[f"decode_{kind}|{key}"] = image
        arrays[f"gray_{kind}|{key}"] = to_gray(image)
    recognizer = None
    for detector in DETECTORS:
        recognizer = FaceRecognizer(args.model, detector=detector, num_threads=args.threads,
                                    detector_model=args.blazeface_model if detector == "blazeface" else None)
        arrays.update(recognizer_arrays(recognizer, frames))
    arrays.update(kernel_arrays(recognizer, str(args.model), Path(args.fer) if args.fer else None,
                                args.fer_per_label, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out / "arrays.npz", lambda tmp: np.savez(tmp, **arrays))
    atomic_write_json(out / "meta.json", runtime_facts(recognizer, arrays))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tools.arm64 probe``."""
    p = CommandParser(prog="python -m tools.arm64 probe",
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
    add_log_level(p, default="warning")
    return p


def probe_main(argv: Sequence[str]) -> int:
    """``python -m tools.arm64 probe ...`` (run by the check on each side)."""
    return run_command(build_parser(), probe, argv)
