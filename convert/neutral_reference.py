"""``python -m convert.neutral_reference``: write the neutral reference into model cards.

The reference is the model's mean floored log-scores (:mod:`edge_runtime.recognition.calibration`) on
the neutral faces of its own validation split, re-carved from the card: the faces whose FER+ majority
label and FER2013 folder label are both ``neutral``. A personal profile is read against it
(``fer-edge run --profile``). Each card gets the reference of its own model file (int8, float, mobile);
the card is rewritten atomically and nothing else in it changes.

Example::

    python -m convert.neutral_reference --model models/fer4_int8.tflite models/fer4s_int8.tflite \\
        --data ../shared/data/fer2013
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.labelled_faces import scoring
from edge_runtime.labelled_faces.errors import FaceDataError
from edge_runtime.model.card import card_path_for, load_card, write_card
from edge_runtime.model.card_schema import to_json
from edge_runtime.model.classifier import ExpressionClassifier
from edge_runtime.recognition.calibration import FLOOR, NeutralReference, mean_log_scores

from .errors import ConvertError

log = logging.getLogger(__name__)
NEUTRAL = "neutral"


def neutral_faces(card_path: Path, data: str, votes: str | None) -> np.ndarray:
    """The validation faces of the model's training run that both label sets call neutral."""
    from train.errors import UserError
    from train.evaluate import validation_faces

    card = load_card(card_path)
    if NEUTRAL not in card.labels:
        raise ConvertError(f"{card_path}: the model has no '{NEUTRAL}' label, so it has no neutral reference")
    try:
        faces = validation_faces(card, data, scoring.resolve_votes(data, votes, required=True))
    except (UserError, FaceDataError) as exc:
        raise ConvertError(str(exc).replace("--labels ferplus needs", "the neutral reference needs")) from exc
    consensus = faces.label_sets().get("consensus")
    if consensus is None:
        raise ConvertError("the neutral reference needs the FER+ votes beside --data (ferplus/votes.csv)")
    chosen = faces.images[consensus == card.labels.index(NEUTRAL)]
    if len(chosen) == 0:
        raise ConvertError(f"{card_path}: its validation split holds no neutral face")
    return chosen


def reference_for(model: Path, faces: np.ndarray) -> NeutralReference:
    """The neutral reference of ``model`` on ``faces`` (48x48 grayscale, 0..255), without test-time flips."""
    classifier = ExpressionClassifier(model, tta="none")
    probabilities = np.stack([classifier.probabilities(face) for face in faces])
    return NeutralReference(log_scores=mean_log_scores(probabilities, tuple(classifier.labels)), floor=FLOOR,
                            faces=len(faces))


def write_reference(model: Path, faces: np.ndarray) -> NeutralReference:
    """Compute ``model``'s reference and write it into its card."""
    reference = reference_for(model, faces)
    card_path = card_path_for(model)
    write_card(replace(load_card(card_path), neutral_reference=to_json(reference)), card_path)
    return reference


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m convert.neutral_reference``."""
    p = CommandParser(prog="python -m convert.neutral_reference", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs="+", required=True, type=Path,
                   help=".tflite models, each with its card beside it (the faces come from the first card)")
    p.add_argument("--data", required=True, help="the FER2013 folder the models were trained on")
    p.add_argument("--votes", help="FER+ votes file (default: ferplus/votes.csv beside --data)")
    add_log_level(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the reference into every card given; one line per card on stdout."""
    faces = neutral_faces(card_path_for(args.model[0]), args.data, args.votes)
    for model in args.model:
        reference = write_reference(model, faces)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in reference.log_scores.items())
        print(f"{card_path_for(model)}: {reference.faces} neutral faces; mean log-scores {shown}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return run_command(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
