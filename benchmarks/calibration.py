"""``python -m benchmarks.calibration``: what a personal profile recovers, on a proxy of a fixed camera.

No data set here holds several labelled photos of one person, so the proxy is the camera, not the
person: held-out FER2013 faces pass through a fixed "camera" (gamma, contrast, a colour cast, blur,
JPEG quality), which moves every face's scores the same way, as a person's resting face moves theirs.
A profile is enrolled from K neutral faces seen through a camera (``calibration.make_profile``, what
``fer-edge enrol`` writes) and read against the card's neutral reference, for each ``alpha`` and floor:

- scored through the **same** camera, it should win back what the camera costs;
- enrolled through **another** camera, it should not (a profile belongs to one camera and its light).

The enrolment faces are the model's validation faces that both label sets call neutral; ``alpha`` is
chosen on the rest of the validation split and the test split only reports. Accuracy is over the faces
whose FER+ majority label is one of the model's classes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level
from edge_runtime.labelled_faces import scoring
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.recognition import calibration

from .accuracy import refuse_fitted_test
from .device import device_facts
from .errors import BenchmarkError
from .report import markdown_table, run_and_report, run_benchmark_command

DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_FLOORS = (0.05, 1e-4)
ENROL_SIZES = (1, 20)
DRAWS = 20  # random enrolment sets per K


@dataclass(frozen=True)
class Camera:
    """A fixed capture chain applied to a grey 48x48 face: the viewpoint (``tilt``: a camera below the face
    sees its lower half larger, as a keystone), gamma, contrast, a colour cast, blur, JPEG quality."""

    name: str
    tilt: float = 0.0  # fraction by which the top edge is narrowed
    gamma: float = 1.0
    contrast: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # B, G, R gains
    blur: float = 0.0
    jpeg: int = 95

    def __call__(self, face: np.ndarray) -> np.ndarray:
        if self.tilt:
            h, w = face.shape
            inset = self.tilt * w / 2
            src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
            dst = np.float32([[inset, 0], [w - inset, 0], [w, h], [0, h]])
            face = cv2.warpPerspective(face, cv2.getPerspectiveTransform(src, dst), (w, h),
                                       borderMode=cv2.BORDER_REPLICATE)
        x = (face.astype(np.float32) / 255.0) ** self.gamma
        x = np.clip(0.5 + (x - 0.5) * self.contrast, 0, 1)
        bgr = np.clip(np.repeat(x[..., None], 3, axis=2) * np.array(self.cast, np.float32), 0, 1)
        bgr = (bgr * 255).astype(np.uint8)
        if self.blur:
            bgr = cv2.GaussianBlur(bgr, (0, 0), self.blur)
        return cv2.imdecode(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg])[1], cv2.IMREAD_COLOR)


CAMERAS = (Camera("none"),
           Camera("dim warm webcam", gamma=1.8, contrast=0.8, cast=(0.75, 1.0, 1.25), blur=0.8, jpeg=30),
           Camera("bright cold camera", gamma=0.55, contrast=0.7, cast=(1.25, 1.0, 0.8), blur=0.0, jpeg=50),
           Camera("low, looking up", tilt=0.3, jpeg=90),
           Camera("dark, flat light", gamma=2.2, contrast=0.6, jpeg=90))


def probabilities(classifier: ExpressionClassifier, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """The classifier's probabilities for every face seen through ``camera``."""
    return np.stack([classifier.probabilities(camera(face)) for face in faces])


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy (%) over the faces with a label (>= 0)."""
    mask = labels >= 0
    return float((probs[mask].argmax(1) == labels[mask]).mean() * 100)


def scores(probs: np.ndarray, label_sets: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy on each label set."""
    return {name: round(accuracy(probs, labels), 2) for name, labels in label_sets.items()}


def calibrated(probs: np.ndarray, enrol: np.ndarray, reference: np.ndarray, alpha: float, floor: float) -> np.ndarray:
    """``probs`` re-scored against a profile of ``enrol``'s faces (reference: mean floored log-scores)."""
    profile = calibration.floored_log(enrol, floor).mean(axis=0)
    return calibration.shifted(probs, alpha * (profile - reference))


def enrol_sets(pool: int, k: int, seed: int) -> list[np.ndarray]:
    """``DRAWS`` random sets of ``k`` enrolment faces out of ``pool`` (one set of all when k >= pool)."""
    rng = np.random.default_rng(seed)
    return [np.arange(pool)] if k >= pool else [rng.choice(pool, k, replace=False) for _ in range(DRAWS)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score every camera x enrolment camera x K x alpha x floor on validation and test."""
    from train.evaluate import validation_faces  # the card's split, re-carved (desktop only)

    started = time.perf_counter()
    classifier = ExpressionClassifier(args.model, tta="none")
    card, labels = classifier.card, tuple(classifier.labels)
    refuse_fitted_test(card, f"--model {args.model}")
    if "neutral" not in labels:
        raise BenchmarkError(f"{args.model} has no neutral label to enrol")
    votes = scoring.resolve_votes(args.data, args.votes, required=True)
    val = validation_faces(card, str(args.data), votes)
    test = scoring.load_scored_split(args.data, "test", labels, votes)
    neutral = val.label_sets()["consensus"] == labels.index("neutral")
    pool, rest = val.images[neutral], {k: v[~neutral] for k, v in val.label_sets().items()}
    reference_probs = probabilities(classifier, pool, CAMERAS[0])
    probs = {cam.name: {"enrol": probabilities(classifier, pool, cam),
                        "val": probabilities(classifier, val.images[~neutral], cam),
                        "test": probabilities(classifier, test.images, cam)} for cam in CAMERAS}
    rows = []
    for floor in args.floors:
        reference = calibration.floored_log(reference_probs, floor).mean(axis=0)
        for cam in CAMERAS:
            for split, sets in (("val", rest), ("test", test.label_sets())):
                rows.append({"camera": cam.name, "enrolled_on": None, "k": 0, "alpha": 0.0, "floor": floor,
                             "split": split, **scores(probs[cam.name][split], sets)})
                for enrol_cam in CAMERAS:
                    for k in ENROL_SIZES:
                        draws = enrol_sets(len(pool), k, seed=k)
                        for alpha in args.alphas:
                            per_draw = [scores(calibrated(probs[cam.name][split], probs[enrol_cam.name]["enrol"][d],
                                                          reference, alpha, floor), sets) for d in draws]
                            rows.append({"camera": cam.name, "enrolled_on": enrol_cam.name, "k": k, "alpha": alpha,
                                         "floor": floor, "split": split,
                                         **{n: round(float(np.mean([s[n] for s in per_draw])), 2)
                                            for n in per_draw[0]}})
    return {"model": str(args.model), "labels": list(labels), "enrol_pool": len(pool), "draws": DRAWS,
            "n_validation": int((rest["ferplus"] >= 0).sum()), "n_test": int((test.label_sets()["ferplus"] >= 0).sum()),
            "cameras": [vars(c) for c in CAMERAS], "rows": rows, "choice": choose(rows),
            "command": "python -m benchmarks.calibration " + " ".join(args.argv), "device": device_facts(),
            "duration_s": round(time.perf_counter() - started, 1)}


def both(row: dict[str, Any]) -> float:
    """The mean of FER+ and FER2013 accuracy: moving along the label frontier does not count as a gain."""
    return (row["ferplus"] + row["fer2013"]) / 2


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The alpha and floor with the best validation accuracy (mean of both label sets) for profiles of the
    camera's own 20 faces, averaged over the cameras that change the picture."""
    same = [r for r in rows if r["split"] == "val" and r["k"] == max(ENROL_SIZES)
            and r["enrolled_on"] == r["camera"] != "none"]
    keys = sorted({(r["alpha"], r["floor"]) for r in same}, key=lambda key: (key[0], -key[1]))
    mean = {key: float(np.mean([both(r) for r in same if (r["alpha"], r["floor"]) == key])) for key in keys}
    alpha, floor = max(keys, key=lambda key: (round(mean[key], 2), -key[0]))
    return {"alpha": alpha, "floor": floor, "val_mean": round(mean[(alpha, floor)], 2),
            "val_mean_without": round(mean[(0.0, floor)], 2) if (0.0, floor) in mean else None}


def markdown(result: dict[str, Any]) -> str:
    """Test accuracy per camera and floor (FER+ / FER2013): no profile; a profile of the camera's own 20
    faces; of another camera's 20 faces; of one face of someone else, through the same camera."""
    choice = result["choice"]
    alphas = sorted({r["alpha"] for r in result["rows"] if r["alpha"] > 0})
    cameras = [c["name"] for c in result["cameras"]]
    k = max(ENROL_SIZES)

    def cell(rows: list[dict[str, Any]]) -> str:
        return f"{np.mean([r['ferplus'] for r in rows]):.2f} / {np.mean([r['fer2013'] for r in rows]):.2f}"

    kinds = ((f"this camera's, {k} faces", lambda r, cam: r["enrolled_on"] == cam and r["k"] == k),
             (f"other cameras', {k} faces", lambda r, cam: r["enrolled_on"] not in (cam, None) and r["k"] == k),
             ("one other person's face, this camera", lambda r, cam: r["enrolled_on"] == cam and r["k"] == 1))
    out = [f"Test accuracy (%), FER+ / FER2013, of `{result['model']}` through each camera ({result['n_test']} "
           f"faces; one person's face: the mean of {result['draws']} draws). Best on validation for the cameras' "
           f"own {k}-face profiles (mean of both label sets): alpha {choice['alpha']:g}, floor "
           f"{choice['floor']:g} ({choice['val_mean']:.2f} against {choice['val_mean_without']:.2f} without).\n"]
    for floor in sorted({r["floor"] for r in result["rows"]}, reverse=True):
        test = [r for r in result["rows"] if r["split"] == "test" and r["floor"] == floor]
        lines = []
        for cam in cameras:
            base = [r for r in test if r["camera"] == cam and r["enrolled_on"] is None]
            for name, pick in kinds:
                lines.append([cam, cell(base), name, *[cell([r for r in test if r["camera"] == cam
                                                             and r["alpha"] == a and pick(r, cam)]) for a in alphas]])
        out.append(f"\nFloor {floor:g}:\n\n" + markdown_table(
            ["camera", "no profile", "profile", *[f"alpha {a:g}" for a in alphas]], lines))
    return "\n".join(out)


def plot(result: dict[str, Any], path: Path) -> None:
    """Test accuracy against alpha per camera: its own 20-face profile, and other cameras' (dashed)."""
    from .report import new_figure, save_figure

    fig, (ax,) = new_figure()
    choice = result["choice"]
    for cam in [c["name"] for c in result["cameras"]][1:]:
        same = sorted((r["alpha"], both(r)) for r in result["rows"] if r["split"] == "test" and
                      r["camera"] == cam and r["enrolled_on"] == cam and r["k"] == max(ENROL_SIZES)
                      and r["floor"] == choice["floor"])
        other = sorted((r["alpha"], both(r)) for r in result["rows"] if r["split"] == "test" and
                       r["camera"] == cam and r["enrolled_on"] not in (cam, None) and r["k"] == max(ENROL_SIZES)
                       and r["floor"] == choice["floor"])
        line, = ax.plot(*zip(*same, strict=True), marker="o", label=f"{cam}: own profile")
        means = {a: np.mean([v for b, v in other if b == a]) for a, _ in other}
        ax.plot(list(means), list(means.values()), linestyle="--", color=line.get_color(),
                label=f"{cam}: another camera's")
    ax.set_xlabel("alpha")
    ax.set_ylabel("test accuracy (%), mean of FER+ and FER2013")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.calibration``."""
    p = CommandParser(prog="python -m benchmarks.calibration", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("models/fer4_int8.tflite"),
                   help="the .tflite model, card beside it (default: %(default)s)")
    p.add_argument("--data", required=True, type=Path, help="FER2013 folder (train/<class>/, test/<class>/)")
    p.add_argument("--votes", type=Path, help="FER+ votes (default: ferplus/votes.csv beside --data)")
    p.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS))
    p.add_argument("--floors", type=float, nargs="+", default=list(DEFAULT_FLOORS))
    p.add_argument("--out", type=Path, help="write calibration.json, .md and .png here")
    add_log_level(p)
    return p


def compare(args: argparse.Namespace) -> int:
    """The command's body."""
    return run_and_report(args, run, "calibration", markdown, plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Score the proxy; 2 with one ``error:`` line on bad input."""
    return run_benchmark_command(build_parser(), compare, argv)


if __name__ == "__main__":
    sys.exit(main())
