"""Measure whether aligning the face crop (eyes level, ``--align``) helps: accuracy, label stability, cost.

Accuracy: the FER2013 test faces are padded onto a canvas as ``benchmarks.crop_margin`` does, the canvas
is rotated by each ``--angles`` value (degrees, counter-clockwise; 0 is the faces as they come, already
roughly level), the face is detected, cropped with the recognizer's margin both unaligned and aligned,
and classified; accuracy over the faces found, against FER2013's folder labels and, where the FER+ votes
are found (``ferplus/votes.csv`` beside ``--data``, or ``--votes``), the FER+ majority labels.

Stability on ``--media`` (its photos, unlabelled_faces and every ``--video-step``-th video frame, no
labels): each frame is also rotated by +-``--stability-angle`` degrees, each face of the frame matched
with its detection in the rotated frame, and the share of faces whose label stays the same is counted
(with the mean total-variation distance of the scores), unaligned and aligned, and how far the eye-line
angle seen in the rotated frame is from the upright one's minus the rotation. Also: how often the
aligned and unaligned crops of the upright frame get the same label, and the crop time per face.

    python -m benchmarks.alignment --model models/fer4_int8.tflite --limit 1000 --video-step 2 --json OUT

Detectors: ``blazeface`` (the default, both models merged), ``short-range`` and ``full-range`` alone.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge_runtime import FaceRecognizer
from edge_runtime.atomic_io import atomic_write_json
from edge_runtime.command_line import CommandParser, add_log_level
from edge_runtime.detection.alignment import aligned_crop, eye_angle
from edge_runtime.labelled_faces.scoring import accuracy_by_label_set
from edge_runtime.model.preprocessing import crop_face, to_gray
from edge_runtime.paths import shared_dir
from edge_runtime.results import Detection

from .accuracy import TestFaces, load_test_faces, refuse_fitted_test
from .crop_margin import BORDERS, canvas_for, pick_face
from .detectors import frames_of
from .errors import BenchmarkError
from .report import run_benchmark_command

#: Detector configurations compared: name -> the BlazeFace model file (None: both merged, the default).
DETECTOR_MODELS = {"blazeface": None, "short-range": "short-range", "full-range": "full-range"}
MODES = ("unaligned", "aligned")


def rotate(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` rotated ``angle`` degrees counter-clockwise around its centre (same size, border
    replicated) and the 2x3 matrix mapping its pixels to the rotated image's."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE), matrix


def crops(gray: np.ndarray, detection: Detection, margin: float) -> dict[str, np.ndarray]:
    """The unaligned and aligned crops of one detection."""
    box = tuple(int(round(v)) for v in detection.box)
    return {"unaligned": crop_face(gray, box, margin), "aligned": aligned_crop(gray, box, margin, detection.keypoints)}


def scores(recognizer: FaceRecognizer, crop: np.ndarray) -> np.ndarray:
    """The classifier's probabilities for a crop, in the card's label order."""
    return np.array(list(recognizer.classify_face(crop).scores.values()))


def centre_face(detections: list[Detection], width: int, height: int) -> Detection:
    """The detection nearest the canvas centre (``crop_margin.pick_face``)."""
    box = pick_face([d.box for d in detections], width, height)
    return next(d for d in detections if d.box is box)


def accuracy_rows(recognizer: FaceRecognizer, name: str, test: TestFaces, angles: list[float],
                  pad: float, upscale: float, border: int) -> list[dict]:
    """Per rotation angle: faces found, the eye-line angle seen, accuracy unaligned and aligned per label set."""
    rows = []
    for angle in angles:
        predicted = {mode: np.full(len(test.faces), -1) for mode in MODES}
        tilts = []
        for i, face in enumerate(test.faces):
            canvas, _ = rotate(canvas_for(face, pad, upscale, border), angle)
            detections = recognizer.detect(canvas)
            if not detections:
                continue
            detection = centre_face(detections, canvas.shape[1], canvas.shape[0])
            tilts.append(eye_angle(detection.keypoints))
            for mode, crop in crops(canvas, detection, recognizer.margin).items():
                predicted[mode][i] = int(np.argmax(scores(recognizer, crop)))
        found = predicted["unaligned"] >= 0
        sets = {key: labels[found] for key, labels in test.label_sets.items()}
        rows.append({"detector": name, "angle": angle, "faces": len(test.faces), "found": int(found.sum()),
                     "tilt_mean": round(statistics.fmean(tilts), 2) if tilts else None,
                     **{f"accuracy_{mode}": accuracy_by_label_set(predicted[mode][found], sets) for mode in MODES},
                     "paired": {key: paired(predicted["unaligned"][found], predicted["aligned"][found], labels)
                                for key, labels in sets.items()}})
    return rows


def paired(unaligned: np.ndarray, aligned: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Faces only the aligned crop gets right (``gained``), only the unaligned one (``lost``), and the
    two-sided exact sign test's p-value of that split (McNemar's exact test)."""
    scored = labels >= 0
    right_a, right_u = aligned[scored] == labels[scored], unaligned[scored] == labels[scored]
    gained, lost = int((right_a & ~right_u).sum()), int((right_u & ~right_a).sum())
    n = gained + lost
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2 ** n if n else 1.0
    return {"gained": gained, "lost": lost, "p_value": round(min(1.0, 2 * tail), 4)}


def match(detection: Detection, matrix: np.ndarray, others: list[Detection]) -> Detection | None:
    """The detection of ``others`` whose centre is nearest ``detection``'s centre moved by ``matrix``,
    if within half the face's size."""
    x, y, w, h = detection.box
    cx, cy = matrix @ np.array([x + w / 2, y + h / 2, 1.0])
    best = min(others, key=lambda d: (d.box[0] + d.box[2] / 2 - cx) ** 2 + (d.box[1] + d.box[3] / 2 - cy) ** 2,
               default=None)
    if best is None or np.hypot(best.box[0] + best.box[2] / 2 - cx, best.box[1] + best.box[3] / 2 - cy) > max(w, h) / 2:
        return None
    return best


def stability_row(recognizer: FaceRecognizer, name: str, set_name: str, frames: list, angle: float) -> dict:
    """Label agreement of each face with itself in the frame rotated by +-``angle``, unaligned and aligned."""
    same = dict.fromkeys(MODES, 0)
    shift = dict.fromkeys(MODES, 0.0)
    faces = pairs = modes_agree = 0
    crop_ns: dict[str, list[int]] = {mode: [] for mode in MODES}
    tilt_error: list[float] = []
    for _frame_name, frame in frames:
        gray = to_gray(frame)
        base = recognizer.detect(frame)
        faces += len(base)
        base_scores = []
        for detection in base:
            box = tuple(int(round(v)) for v in detection.box)
            t0 = time.perf_counter_ns()
            crop_face(gray, box, recognizer.margin)
            t1 = time.perf_counter_ns()
            aligned_crop(gray, box, recognizer.margin, detection.keypoints)
            crop_ns["unaligned"].append(t1 - t0)
            crop_ns["aligned"].append(time.perf_counter_ns() - t1)
            base_scores.append({mode: scores(recognizer, crop)
                                for mode, crop in crops(gray, detection, recognizer.margin).items()})
            modes_agree += int(np.argmax(base_scores[-1]["unaligned"]) == np.argmax(base_scores[-1]["aligned"]))
        for sign in (1.0, -1.0):
            rotated, matrix = rotate(frame, sign * angle)
            found = recognizer.detect(rotated)
            for detection, before in zip(base, base_scores, strict=True):
                other = match(detection, matrix, found)
                if other is None:
                    continue
                pairs += 1
                tilt_before, tilt_after = eye_angle(detection.keypoints), eye_angle(other.keypoints)
                if tilt_before is not None and tilt_after is not None:  # turning by +a lowers the angle by a
                    tilt_error.append(abs((tilt_after - tilt_before + sign * angle + 180) % 360 - 180))
                for mode, crop in crops(to_gray(rotated), other, recognizer.margin).items():
                    after = scores(recognizer, crop)
                    same[mode] += int(np.argmax(after) == np.argmax(before[mode]))
                    shift[mode] += 0.5 * float(np.abs(after - before[mode]).sum())
    return {"detector": name, "set": set_name, "frames": len(frames), "faces": faces, "pairs": pairs,
            "angle": angle, "modes_agree": modes_agree / faces if faces else None,
            "eye_angle_error_deg": round(statistics.fmean(tilt_error), 2) if tilt_error else None,
            **{f"same_label_{mode}": same[mode] / pairs if pairs else None for mode in MODES},
            **{f"score_shift_{mode}": shift[mode] / pairs if pairs else None for mode in MODES},
            **{f"crop_ms_{mode}": statistics.median(crop_ns[mode]) / 1e6 if crop_ns[mode] else None
               for mode in MODES}}


def media_sets(media: Path, video_step: int, faces_limit: int | None) -> dict[str, list]:
    """Photos, (at most ``faces_limit``) unlabelled faces and every ``video_step``-th video frame."""
    if not (media / "photos").is_dir():
        raise BenchmarkError(f"media folder {media} not found (it needs photos/, unlabelled_faces/, video/); "
                             "pass --media, or --no-media")
    sets = frames_of(media)
    sets["unlabelled_faces"] = sets["unlabelled_faces"][:faces_limit]
    sets["video"] = sets["video"][::video_step]
    return sets


def split_cell(split: dict) -> str:
    return f"+{split['gained']}/-{split['lost']} ({split['p_value']:.2g})"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def print_tables(accuracy: list[dict], stability: list[dict]) -> None:
    """Markdown tables: accuracy per detector and rotation, then stability and crop cost per set."""
    label_sets = [k for k in ("fer2013", "ferplus") if accuracy and k in accuracy[0]["accuracy_unaligned"]]
    if accuracy:
        print("| detector | rotation | found | eye line seen (mean deg) | "
              + " | ".join(f"{k} unaligned | {k} aligned | gained/lost (p)" for k in label_sets) + " |")
        print("|---|---:|---:|---:|" + "---:|---:|---:|" * len(label_sets))
        for r in accuracy:
            cells = " | ".join(f"{pct(r['accuracy_unaligned'][k])} | {pct(r['accuracy_aligned'][k])} | "
                               f"{split_cell(r['paired'][k])}" for k in label_sets)
            print(f"| {r['detector']} | {r['angle']:+g} | {r['found']}/{r['faces']} | {r['tilt_mean']} | {cells} |")
    if stability:
        print("\n| detector | set | faces | pairs | same label unaligned | aligned | score shift unaligned | "
              "aligned | eye-angle error (deg) | aligned = unaligned (upright) | crop ms unaligned | aligned |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in stability:
            print(f"| {r['detector']} | {r['set']} | {r['faces']} | {r['pairs']} | {pct(r['same_label_unaligned'])} | "
                  f"{pct(r['same_label_aligned'])} | {r['score_shift_unaligned'] or 0:.3f} | "
                  f"{r['score_shift_aligned'] or 0:.3f} | {r['eye_angle_error_deg']} | {pct(r['modes_agree'])} | "
                  f"{r['crop_ms_unaligned'] or 0:.3f} | {r['crop_ms_aligned'] or 0:.3f} |")


def angle_list(text: str) -> list[float]:
    try:
        return [float(a) for a in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated degrees, e.g. -20,0,20 (got {text})") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.alignment``."""
    p = CommandParser(prog="python -m benchmarks.alignment", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="the .tflite model (default: models/fer4_int8.tflite)")
    p.add_argument("--card", help="the model card, when it is not beside the model")
    p.add_argument("--data", type=Path, help="FER2013 folder holding test/<class>/ (default: $FER_SHARED/data/fer2013)")
    p.add_argument("--votes", type=Path, help="FER+ votes (default: ferplus/votes.csv beside --data, if present)")
    p.add_argument("--limit", type=int, help="a seeded random N of the test faces (default: all)")
    p.add_argument("--detector", nargs="+", default=list(DETECTOR_MODELS), choices=tuple(DETECTOR_MODELS))
    p.add_argument("--angles", type=angle_list, default=[-20.0, -10.0, 0.0, 10.0, 20.0],
                   help="canvas rotations in degrees (default -20,-10,0,10,20)")
    p.add_argument("--pad", type=float, default=0.5, help="canvas padding per side, fraction of the face (0.5)")
    p.add_argument("--upscale", type=float, default=3.0, help="canvas enlargement (3)")
    p.add_argument("--border", choices=tuple(BORDERS), default="replicate")
    p.add_argument("--media", type=Path, help="photos/unlabelled_faces/video folder (default: $FER_SHARED/media)")
    p.add_argument("--no-media", action="store_true", help="skip the stability measurement")
    p.add_argument("--stability-angle", type=float, default=10.0, help="rotation for the stability check (10)")
    p.add_argument("--video-step", type=int, default=10, help="use every N-th video frame (10)")
    p.add_argument("--faces-limit", type=int, help="at most this many unlabelled_faces photos")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    add_log_level(p, default="warning")
    return p


def measure_alignment(args: argparse.Namespace) -> int:
    """The command's body: accuracy and stability per detector, the tables, ``--json``."""
    data = args.data or shared_dir() / "data" / "fer2013"
    accuracy, stability = [], []
    if args.video_step < 1:
        raise BenchmarkError(f"--video-step must be >= 1 (got {args.video_step})")
    sets = {} if args.no_media else media_sets(args.media or shared_dir() / "media", args.video_step,
                                                 args.faces_limit)
    test = None
    for name in args.detector:
        recognizer = FaceRecognizer(args.model, card_path=args.card, detector="blazeface",
                                    detector_model=DETECTOR_MODELS[name], num_threads=args.threads)
        if test is None:
            refuse_fitted_test(recognizer.card, f"--model {args.model}")
            test = load_test_faces(data, "test", recognizer.labels, args.limit, votes=args.votes)
        accuracy += accuracy_rows(recognizer, name, test, args.angles, args.pad, args.upscale,
                                  BORDERS[args.border])
        stability += [stability_row(recognizer, name, set_name, frames, args.stability_angle)
                      for set_name, frames in sets.items()]
    print(f"model {recognizer.classifier.model_path.name} (sha256 {(recognizer.card.sha256 or '')[:12]}...), "
          f"margin {recognizer.margin:g}, {test.source}, label sets {test.counts()}\n")
    print_tables(accuracy, stability)
    if args.json:
        atomic_write_json(args.json, {"model": str(recognizer.classifier.model_path),
                                      "model_sha256": recognizer.card.sha256, "margin": recognizer.margin,
                                      "label_sets": test.counts(), "pad": args.pad, "upscale": args.upscale,
                                      "border": args.border, "argv": args.argv,
                                      "accuracy": accuracy, "stability": stability})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print markdown tables; 2 with one ``error:`` line on bad input."""
    return run_benchmark_command(build_parser(), measure_alignment, argv, log_format=logging.BASIC_FORMAT)


if __name__ == "__main__":
    sys.exit(main())
