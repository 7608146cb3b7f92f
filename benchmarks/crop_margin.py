"""Measure which face-crop margin best matches the training data's framing.

FER2013's labelled test faces (48x48, tight and centred) are padded onto a larger canvas (border
replicated, or reflected) and upscaled, so the detector sees a face with some context. The face
is detected, cropped with each margin ``m`` (fraction of the box added on each side, see
``edge_runtime.model.preprocessing.crop_box``) and classified; the margin with the best accuracy wins.
The accuracy of the original 48x48 images, classified directly, is the reference.

    python -m benchmarks.crop_margin --model models/fer4_int8.tflite --detector haar blazeface

Only the card's classes are used. ``--json OUT`` also writes the figures (atomically).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge_runtime import FaceRecognizer
from edge_runtime.atomic_io import atomic_write_json
from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.detection.detectors import DETECTORS
from edge_runtime.labelled_faces.loading import load_folder_split
from edge_runtime.model.preprocessing import crop_face
from edge_runtime.paths import shared_dir

from .accuracy import refuse_fitted_test

BORDERS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


def load_split(folder: Path, labels: tuple[str, ...], limit: int | None) -> list[tuple[np.ndarray, int]]:
    """(grayscale image, label index) for the images of the card's classes in ``folder/<class>/``
    (train's loader), at most ``limit`` per class."""
    faces = load_folder_split(folder.parent, folder.name, labels)
    per_class: dict[int, int] = {}
    items = []
    for image, label in zip(faces.images, faces.labels.tolist(), strict=True):
        per_class[label] = per_class.get(label, 0) + 1
        if limit is None or per_class[label] <= limit:
            items.append((image, label))
    return items


def canvas_for(image: np.ndarray, pad: float, upscale: float, border: int) -> np.ndarray:
    """The face padded by ``pad`` of its size on each side, then enlarged ``upscale`` times."""
    p = int(round(image.shape[0] * pad))
    padded = cv2.copyMakeBorder(image, p, p, p, p, border)
    return cv2.resize(padded, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)


def pick_face(boxes, width: int, height: int):
    """The detection nearest the canvas centre (the face we put there)."""
    return min(boxes, key=lambda b: (b[0] + b[2] / 2 - width / 2) ** 2 + (b[1] + b[3] / 2 - height / 2) ** 2)


def measure(recognizer: FaceRecognizer, items, margins, pad: float, upscale: float, border: int) -> dict:
    """Accuracy per margin over the faces the detector finds, plus the direct-classification reference."""
    correct = dict.fromkeys(margins, 0)
    reference_all = reference_found = found = 0
    started = time.perf_counter()
    for image, truth in items:
        direct = int(np.argmax(list(recognizer.classify_face(image).scores.values())) == truth)
        reference_all += direct
        canvas = canvas_for(image, pad, upscale, border)
        detections = recognizer.detect(canvas)
        if not detections:
            continue
        found += 1
        reference_found += direct
        box = tuple(int(round(v)) for v in pick_face([d.box for d in detections], *canvas.shape[::-1]))
        for margin in margins:
            scores = recognizer.classify_face(crop_face(canvas, box, margin)).scores
            correct[margin] += int(np.argmax(list(scores.values())) == truth)
    n = len(items)
    best = max(margins, key=lambda m: (correct[m], -abs(m - 0.1)))
    return {"detector": recognizer.detector.name, "images": n, "faces_found": found,
            "detection_rate": found / n if n else 0.0,
            "reference_accuracy_all": reference_all / n if n else 0.0,
            "reference_accuracy_found": reference_found / found if found else 0.0,
            "accuracy_by_margin": {str(m): correct[m] / found if found else 0.0 for m in margins},
            "best_margin": best, "seconds": round(time.perf_counter() - started, 1)}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.crop_margin``."""
    p = CommandParser(prog="python -m benchmarks.crop_margin", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="the .tflite model (default: models/fer4_int8.tflite)")
    p.add_argument("--card", help="the model card, when it is not beside the model")
    p.add_argument("--data", type=Path, help="FER2013 test split (default: $FER_SHARED/data/fer2013/test)")
    p.add_argument("--detector", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    p.add_argument("--margins", default="0,0.05,0.1,0.15,0.2,0.3")
    p.add_argument("--pad", type=float, default=0.5, help="padding per side, fraction of the face (0.5)")
    p.add_argument("--upscale", type=float, default=3.0, help="canvas enlargement (3)")
    p.add_argument("--border", choices=tuple(BORDERS), default="replicate")
    p.add_argument("--limit", type=int, help="at most this many images per class")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    add_log_level(p, default="warning")
    return p


def print_table(recognizer: FaceRecognizer, results: list[dict], margins: list[float],
                args: argparse.Namespace) -> None:
    """The markdown table: detection rate, reference accuracy and accuracy per margin, per detector."""
    sha = (recognizer.card.sha256 or "")[:12]
    print(f"model {recognizer.classifier.model_path.name} (sha256 {sha}...), {results[0]['images']} images, "
          f"pad {args.pad}, upscale {args.upscale}, border {args.border}\n")
    print("| detector | found | reference (48x48, found) | " + " | ".join(f"m={m:g}" for m in margins)
          + " | best |")
    print("|---|---|---|" + "---|" * len(margins) + "---|")
    for r in results:
        cells = " | ".join(f"{100 * r['accuracy_by_margin'][str(m)]:.1f}" for m in margins)
        print(f"| {r['detector']} | {100 * r['detection_rate']:.1f}% | "
              f"{100 * r['reference_accuracy_found']:.1f} | {cells} | {r['best_margin']:g} |")


def compare_margins(args: argparse.Namespace) -> int:
    """The command's body: measure every detector, print the table, write ``--json``."""
    margins = [float(m) for m in args.margins.split(",")]
    data = args.data or shared_dir() / "data" / "fer2013" / "test"
    results = []
    for name in args.detector:
        recognizer = FaceRecognizer(args.model, card_path=args.card, detector=name, num_threads=args.threads)
        refuse_fitted_test(recognizer.card, f"--model {args.model}")
        items = load_split(data, recognizer.labels, args.limit)
        results.append(measure(recognizer, items, margins, args.pad, args.upscale, BORDERS[args.border]))
    print_table(recognizer, results, margins, args)
    if args.json:
        atomic_write_json(args.json, {"model": str(recognizer.classifier.model_path),
                                      "model_sha256": recognizer.card.sha256, "pad": args.pad,
                                      "upscale": args.upscale, "border": args.border, "results": results})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print a markdown table; 2 with one ``error:`` line on bad input."""
    return run_command(build_parser(), compare_margins, argv, log_format=logging.BASIC_FORMAT)


if __name__ == "__main__":
    sys.exit(main())
