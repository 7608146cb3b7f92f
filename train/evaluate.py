"""``python -m train.evaluate --model M --data D [--split test]``: evaluate a saved model.

Writes ``<model stem>.eval.json`` and ``<model stem>.confusion[.<label set>].png`` (accuracy,
balanced accuracy, per-class precision/recall/F1, confusion matrix against FER2013's folder
labels and, where FER+ votes are found, the FER+ majority labels and the consensus faces) into
``--out`` (default: beside the model; with ``--split validation`` the files are named
``<model stem>.validation.*``). The label order comes from the model's card. ``--split
validation`` re-carves the training run's own validation split from the options on the card,
the split its best epoch was chosen on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.labelled_faces import scoring
from edge_runtime.labelled_faces.loading import load_split
from edge_runtime.model.card import ModelCard, load_card

from .errors import UserError


def evaluate(model_path: Path, data: str, split: str, out_dir: Path, votes: str | None = None) -> dict:
    """Evaluate ``model_path`` on ``split`` of ``data`` against every label set; write and return the report."""
    if not model_path.is_file():
        raise UserError(f"--model {model_path} not found")
    card = load_card(model_path)
    config = card.training_config
    if split == "test" and scoring.trained_on_test(config):
        raise UserError(f"--model {model_path} trained on the test split (training.config.train_on train+test), "
                        "so its test figures would flatter it; score it on --split validation")
    label_source = config.get("labels", "fer2013")
    vote_table = scoring.resolve_votes(data, votes or config.get("votes"), required=label_source == "ferplus")
    if split == "validation":
        faces = validation_faces(card, data, vote_table)
    else:
        faces = scoring.load_scored_split(data, split, card.labels, vote_table)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from . import reports

    try:
        model = keras.models.load_model(model_path, compile=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"--model {model_path} is not a readable Keras model: {exc}") from exc
    report = reports.label_set_report(reports.predict_probabilities(model, faces.images), faces, label_source)
    report.update({"split": split, "data": str(data), "model": model_path.name})
    reports.write_reports(report, out_dir, model_path.stem, f"{model_path.stem} on the {split} split")
    return report


def validation_faces(card: ModelCard, data: str, votes=None) -> scoring.ScoredFaces:
    """The validation faces of the run that trained the model, re-carved from its card."""
    from .splits import SPLIT_KEYS, carve_run_split, records_split, split_settings

    config = dict(card.training_config)
    if not records_split(config):
        raise UserError(f"--split validation: the model's card records no training split (training.config "
                        f"{', '.join(SPLIT_KEYS)}); evaluate on --split test instead")
    classes = card.labels
    config["classes"] = list(classes)
    split_classes = split_settings(config)["classes"]
    if config.get("labels") == "ferplus":
        config["classes"] = list(split_classes)        # FER+ runs validate on every folder of their split
    train = load_split(data, "train", split_classes)
    test = load_split(data, "test", split_classes)
    return scoring.scored_faces(carve_run_split(config, train, test, data)[1], classes, votes)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m train.evaluate``."""
    p = CommandParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, type=Path, help="a .keras model with its card beside it")
    p.add_argument("--data", required=True, help="FER2013 folder or fer2013.csv")
    p.add_argument("--split", default="test",
                   help="test, train, private_test (CSV), or validation: the training run's own validation "
                        "split, re-carved from the card (default: %(default)s)")
    p.add_argument("--votes", help="FER+ votes file (default: ferplus/votes.csv beside --data, when present)")
    p.add_argument("--out", type=Path, help="output folder (default: the model's folder)")
    add_log_level(p)
    return p


def evaluate_command(args: argparse.Namespace) -> int:
    """Evaluate ``--model`` and print one accuracy line per label set."""
    report = evaluate(args.model, args.data, args.split, args.out or args.model.parent, args.votes)
    for name, sub in report["label_sets"].items():
        print(f"{args.model.name} on {args.split}, {name} labels: accuracy {sub['accuracy']:.4f} (n={sub['n']}), "
              f"balanced {sub['balanced_accuracy']:.4f}, macro F1 {sub['macro_f1']:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m train.evaluate``: 0 when the report was written, 2 with one ``error:`` line on bad input."""
    return run_command(build_parser(), evaluate_command, argv, log_format="%(asctime)s %(levelname)s %(message)s")


if __name__ == "__main__":
    sys.exit(main())
