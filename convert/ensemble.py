"""``python -m convert.ensemble``: several trained models averaged, each also on the mirrored face, in one
verified int8 .tflite (and its mobile variant) with a card.

With ``--zoom Z`` each member also scores the face's centre enlarged ``Z`` times and its mirror image (four
views, equal weight, at twice the cost); the training augmentation zooms faces in and out, so members know it.

The members' weights (a grid over the simplex, step ``--step``) and, with ``--class-bias``, one bias per
class on every member's log-probabilities are chosen on the members' shared validation split, never on test: the
highest mean of FER+ and FER2013 accuracy; within 0.1 point, the higher FER2013 accuracy. The fused Keras
model then goes through ``convert``'s own path (calibration, int8 accuracy bound, verification, metadata,
cards) and ``convert.mobile``'s.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.labelled_faces.scoring import trained_on_test
from edge_runtime.model.card import ENSEMBLE_ARCHITECTURE, ModelCard, card_path_for, file_sha256, load_card
from edge_runtime.model.card_schema import to_json
from edge_runtime.paths import shared_dir
from train.views import ZOOM_REQUIREMENT, valid_zoom, view_count, zoom_crop

from .errors import ConvertError

log = logging.getLogger("convert.ensemble")
TIE_PT = 0.1
SPLIT_KEYS = ("drop", "val_fraction", "split_method", "seed", "split_classes", "split_seed")


@dataclass(frozen=True)
class Choice:
    """The members' weights and the class bias chosen on validation, with the validation scores."""

    weights: tuple[float, ...]
    bias: tuple[float, ...]
    validation: dict[str, float]


def accuracies(probs: np.ndarray, faces: Any) -> dict[str, float]:
    """Accuracy against every label set of ``faces`` (``ferplus``, ``fer2013``, ``consensus``), in percent."""
    predicted = probs.argmax(1)
    return {name: float((predicted[labels >= 0] == labels[labels >= 0]).mean() * 100)
            for name, labels in faces.label_sets().items()}


def weight_grid(members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with components in multiples of ``step``."""
    n = round(1 / step)

    def parts(left: int, slots: int):
        if slots == 1:
            yield (left,)
            return
        for k in range(left + 1):
            for rest in parts(left - k, slots - 1):
                yield (k, *rest)

    return [tuple(round(k / n, 6) for k in combo) for combo in parts(n, members)]


def fit_bias(probs: list[tuple[np.ndarray, ...]], weights: tuple[float, ...], val: Any) -> np.ndarray:
    """One bias per class on every member's log-probabilities, by coordinate ascent on ``val`` as
    ``python -m train --class-bias`` chooses one (steps of 0.1 from -1 to +1, the first class at 0, a move
    must gain at least one face): the best mean of FER+ and FER2013 accuracy of the blend."""
    from train.selection import ascend_bias

    from .ensemble_graph import blend

    one_face = 0.5 / max(len(val), 1)

    def key(bias: np.ndarray) -> float:
        scores = accuracies(blend(probs, weights, bias), val)
        return 0.5 * (scores["ferplus"] + scores["fer2013"]) / 100

    return ascend_bias(key, probs[0][0].shape[1], one_face)


def choose(probs: list[tuple[np.ndarray, ...]], val: Any, step: float, class_bias: bool) -> Choice:
    """The rule of the module docstring over every weight vector (each with its own class bias)."""
    from .ensemble_graph import blend

    rows = []
    for weights in weight_grid(len(probs), step):
        bias = fit_bias(probs, weights, val) if class_bias else np.zeros(probs[0][0].shape[1])
        scores = accuracies(blend(probs, weights, bias), val)
        rows.append((0.5 * (scores["ferplus"] + scores["fer2013"]), scores["fer2013"], weights, bias, scores))
    top = max(row[0] for row in rows)
    best = max((row for row in rows if row[0] >= top - TIE_PT), key=lambda row: (row[1], row[0]))
    return Choice(tuple(best[2]), tuple(round(float(b), 2) for b in best[3]),
                  {k: round(v, 2) for k, v in best[4].items()})


def read_members(paths: list[str]) -> list[ModelCard]:
    """The members' cards: Keras models with the same labels, input and validation split."""
    cards = []
    for path in paths:
        if not Path(path).is_file() or Path(path).suffix != ".keras":
            raise ConvertError(f"--member {path}: not a .keras file; give trained models with their cards")
        cards.append(load_card(card_path_for(Path(path))))
    first = cards[0]
    for card, path in zip(cards[1:], paths[1:], strict=True):
        if card.labels != first.labels or card.input != first.input:
            raise ConvertError(f"--member {path}: its labels or input differ from {paths[0]}'s; the members must "
                               "answer the same classes for the same faces")
        if split_of(card) != split_of(first):
            raise ConvertError(f"--member {path} was validated on other faces than {paths[0]} ({split_of(card)} "
                               f"against {split_of(first)}); weights chosen on one's validation faces would be "
                               "chosen on faces the other trained on")
    return cards


def split_of(card: ModelCard) -> dict[str, Any]:
    """The settings that decide a model's validation faces, as training reads them from its card's config
    (a split seed left unset is the run's seed)."""
    from train.splits import split_settings

    return split_settings(card.training_config)


def member_probabilities(paths: list[str], faces: dict[str, Any],
                         zoom: float | None) -> tuple[list, dict[str, list]]:
    """The loaded members and, per split, each member's probabilities on every view of the faces
    (:class:`~convert.ensemble_graph.FaceViews`; Keras float32)."""
    import keras

    import train.models  # noqa: F401  (registers the architectures' custom layers)

    from .ensemble_graph import view_images

    models = [keras.models.load_model(path, compile=False) for path in paths]
    probs: dict[str, list] = {}
    for split, scored in faces.items():
        views = [v[..., None] for v in view_images(scored.images, zoom)]
        probs[split] = [tuple(m.predict(v, batch_size=256, verbose=0) for v in views) for m in models]
    return models, probs


def views_record(zoom: float | None, size: int) -> dict[str, Any]:
    """The card's description of the views every member scores."""
    if zoom is None:
        return {"views": "each member on the face and on its mirror image, equal weight", "zoom": None}
    side = zoom_crop(size, zoom)[1]
    return {"views": f"each member on the face, its mirror image, its centre enlarged {zoom:g} times (the centre "
                     f"{side} of {size} px, bilinear) and that mirrored, equal weight", "zoom": zoom}


def fused_card(path: Path, members: list[ModelCard], paths: list[str], choice: Choice, metrics: Any,
               model: Any, command: str, zoom: float | None) -> dict[str, Any]:
    """The Keras card of the fused model: the members by sha256 and weight, the choice and how to repeat it."""
    first = json.loads(Path(members[0].path).read_text())
    config = {key: value for key, value in members[0].training_config.items()
              if key in (*SPLIT_KEYS, "data", "classes", "labels", "votes", "name")}
    config.update(name=path.stem, command=command)
    if any(trained_on_test(c.training_config) for c in members):
        config["train_on"] = "train+test"       # the fused model has seen what any member saw
    ensemble = {
        "members": [{"file": p, "name": c.name, "sha256": file_sha256(p), "architecture": c.architecture,
                     "weight": w} for p, c, w in zip(paths, members, choice.weights, strict=True)],
        **views_record(zoom, members[0].input.height),
        "class_bias": dict(zip(members[0].labels, choice.bias, strict=True)),
        "class_bias_applies_to": "each member's log-probabilities (folded into its output layer), before the mean",
        "chosen_on": "validation", "rule": "highest mean of FER+ and FER2013 accuracy on the members' shared "
                                           f"validation faces; within {TIE_PT} point, the higher FER2013",
        "validation_accuracy": choice.validation, "command": command,
    }
    return {**first, "name": path.stem, "file": path.name, "architecture": ENSEMBLE_ARCHITECTURE,
            "parameters": int(model.count_params()),
            "macs_per_face": view_count(zoom) * sum(c.macs_per_face or 0 for c in members),
            "training": {"config": config, "ensemble": ensemble}, "metrics": metrics,
            "backbone": None}


def build(args: argparse.Namespace) -> int:
    """Choose the blend on validation, write the fused Keras model to a temporary folder, convert it."""
    from edge_runtime.labelled_faces import scoring
    from train import reports
    from train.evaluate import validation_faces

    from . import conversion, mobile
    from .ensemble_graph import blend, build_fused

    if not args.max_int8_drop >= 0:
        raise ConvertError(f"--max-int8-drop must be 0 or more points (got {args.max_int8_drop})")
    if args.zoom is not None and not valid_zoom(args.zoom):
        raise ConvertError(f"--zoom {args.zoom}: {ZOOM_REQUIREMENT}, or leave it out for the face and its mirror only")
    members = read_members(args.member)
    votes = scoring.resolve_votes(args.data, None, required=True)
    split = "validation" if any(trained_on_test(c.training_config) for c in members) else "test"
    faces = {"val": validation_faces(members[0], args.data, votes)}
    if split == "test":                     # a member that fitted test is reported on validation
        faces["test"] = scoring.load_scored_split(args.data, "test", tuple(members[0].labels), votes)
    models, probs = member_probabilities(args.member, faces, args.zoom)
    choice = choose(probs["val"], faces["val"], args.step, args.class_bias)
    log.info("chosen on %d validation faces: weights %s, class bias %s; validation %s", len(faces["val"]),
             choice.weights, choice.bias, choice.validation)
    fused = build_fused(models, choice.weights, choice.bias, args.name, args.zoom)
    held_out = "test" if split == "test" else "val"
    report = reports.label_set_report(blend(probs[held_out], choice.weights, choice.bias), faces[held_out], "ferplus")
    report.update(split=split)
    command = "python -m convert.ensemble " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="ensemble-") as tmp:
        path = Path(tmp) / f"{args.name}.keras"
        fused.save(path)
        metrics = to_json(reports.card_metrics(report))
        card_path_for(path).write_text(json.dumps(fused_card(path, members, args.member, choice, metrics, fused,
                                                             command, args.zoom), indent=1))
        options = conversion.Options(variants=("int8",), max_int8_bytes=int(args.max_int8_mb * 1024 * 1024),
                                     calibration_samples=args.calibration_samples, max_int8_drop_pt=args.max_int8_drop)
        for card in conversion.convert_model(path, args.data, args.out, options):
            print(f"{Path(args.out) / card.file}\t{card.size_bytes} bytes\taccuracy {card.metrics.accuracy:.4f}")
        if args.mobile:
            card = mobile.convert_mobile(path, args.data, args.out, options)
            print(f"{card.model_path}\t{card.size_bytes} bytes\taccuracy {card.metrics.accuracy:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m convert.ensemble``."""
    p = CommandParser(prog="python -m convert.ensemble", description=__doc__.split("\n\n")[0])
    p.add_argument("--member", required=True, nargs="+", metavar="KERAS",
                   help="trained .keras models with their cards, validated on the same faces")
    p.add_argument("--name", required=True, help="the fused model's name: writes NAME_int8.tflite (+ card)")
    p.add_argument("--data", default=str(shared_dir() / "data" / "fer2013"),
                   help="FER2013 folder with ferplus/votes.csv beside it (default: %(default)s)")
    p.add_argument("--out", default="models", help="output folder (default: %(default)s)")
    p.add_argument("--step", type=float, default=0.05, help="weight grid step (default: %(default)s)")
    p.add_argument("--zoom", type=float, default=None, metavar="Z",
                   help="also score each member on the face's centre enlarged Z times and its mirror, e.g. 1.09 "
                        "(twice the cost; default: the face and its mirror only)")
    p.add_argument("--class-bias", action="store_true",
                   help="also choose one bias per class on validation, applied inside the graph")
    p.add_argument("--mobile", action="store_true", help="also write NAME_mobile.tflite (convert.mobile)")
    p.add_argument("--calibration-samples", type=int, default=500, metavar="N")
    p.add_argument("--max-int8-mb", type=float, default=8.0, help="largest int8 file, MiB (default: %(default)s)")
    p.add_argument("--max-int8-drop", type=float, default=0.5, metavar="POINTS",
                   help="largest accuracy loss of int8 against float32, in percentage points, as python -m convert "
                        "checks it (default: %(default)s)")
    add_log_level(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Build the fused model; 0 when written, 2 with one ``error:`` line on bad input or a failed check."""
    return run_command(build_parser(), build, argv, log_format="%(asctime)s %(levelname)s %(message)s")


if __name__ == "__main__":
    sys.exit(main())
