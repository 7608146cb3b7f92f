"""Comparing two sides of the check: the daemon's JSON lines face by face, the probe's arrays stage by stage."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_runtime.model.card import load_card
from edge_runtime.recognition.tracking import iou as box_iou

from .settings import (
    BOX_TOLERANCE_PX,
    DECODED_MIN_IOU,
    DETECTOR_SCORE_RTOL,
    JSON_ROUNDING,
    PROFILES,
    REFERENCE,
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _box_diff(a: Sequence[int], b: Sequence[int]) -> int:
    return max(abs(int(x) - int(y)) for x, y in zip(a, b, strict=True))


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
    quantization = load_card(model).output.quantization
    return 0.0 if quantization is None else quantization.scale


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
