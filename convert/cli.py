"""``python -m convert``: trained Keras model -> verified int8/float32/float16/dynamic .tflite + cards."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge_runtime.command_line import EXIT_FAILURE, CommandParser, add_log_level, fail, run_command
from edge_runtime.errors import FerEdgeError
from edge_runtime.paths import shared_dir

from .calibration import MIN_SAMPLES
from .errors import ConvertError
from .quantize import VARIANTS

if TYPE_CHECKING:
    from edge_runtime.model.card import ModelCard

    from .conversion import Options

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
log = logging.getLogger("convert")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m convert``."""
    p = CommandParser(prog="python -m convert", description=__doc__)
    p.add_argument("--model", required=True, nargs="+", metavar="KERAS",
                   help="trained .keras model(s), each with its card (.json) beside it")
    p.add_argument("--data", default=str(shared_dir() / "data" / "fer2013"),
                   help="FER2013 folder (train/<class>/, test/<class>/) or fer2013.csv: calibration images "
                        "come from train, accuracy is measured on test (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: the model's folder)")
    p.add_argument("--calibration-samples", type=int, default=500, metavar="N",
                   help=f"representative images for int8 calibration, at least {MIN_SAMPLES} "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the calibration sample (default: %(default)s)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="VARIANT",
                   help=f"variants to write: {', '.join(VARIANTS)} (default: all; float32 is always "
                        "converted as the accuracy reference)")
    p.add_argument("--max-int8-drop", type=float, default=0.5,
                   help="largest test accuracy loss of int8 against float32, in percentage points "
                        "(default: %(default)s)")
    p.add_argument("--max-int8-mb", type=float, default=2.0,
                   help="largest int8 file size in MiB (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of the test-split evaluation")
    p.add_argument("--threads", type=int, default=2, help="LiteRT threads for the evaluation")
    add_log_level(p)
    return p


def options_from(args: argparse.Namespace) -> Options:
    """The conversion settings of the command line (an error naming the option when one is out of range)."""
    if args.max_int8_drop < 0 or args.max_int8_mb <= 0 or args.batch_size < 1 or args.threads < 1:
        raise ConvertError("--max-int8-drop must be >= 0 and --max-int8-mb, --batch-size, --threads > 0")
    from .conversion import Options  # TensorFlow is imported only when needed

    return Options(calibration_samples=args.calibration_samples, seed=args.seed,
                   variants=tuple(args.variants), max_int8_drop_pt=args.max_int8_drop,
                   max_int8_bytes=int(args.max_int8_mb * 1024 * 1024),
                   batch_size=args.batch_size, threads=args.threads)


def print_written(out: Path, cards: list[ModelCard]) -> None:
    """One line per written variant: file, size, accuracy, difference from float32."""
    for card in cards:
        m = card.metrics
        print(f"{out / card.file}\t{card.size_bytes} bytes\taccuracy {m.accuracy:.4f}"
              f"\t{m.accuracy_delta_pt:+.2f} pt vs float32")


def add_neutral_references(out: Path, cards: list[ModelCard], data: str) -> None:
    """Write the neutral reference (personal calibration) into every written card whose model has a neutral
    label, when the FER+ votes are beside ``data``; else say why there is none."""
    from .neutral_reference import NEUTRAL, neutral_faces, write_reference

    if not cards or NEUTRAL not in cards[0].labels:
        return
    try:
        faces = neutral_faces(out / cards[0].file, data, None)
    except ConvertError as exc:
        log.warning("no neutral reference in the cards, so profiles cannot be used with them (%s)", exc)
        return
    for card in cards:
        write_reference(out / card.file, faces)


def convert_models(args: argparse.Namespace) -> int:
    """Convert every ``--model``; an unexpected failure is one ``error:`` line and exit 1."""
    try:
        options = options_from(args)
        from .conversion import convert_model

        for model in args.model:
            out = Path(args.out or Path(model).parent)
            cards = convert_model(model, args.data, out, options)
            add_neutral_references(out, cards, args.data)
            print_written(out, cards)
    except FerEdgeError:
        raise
    except Exception as exc:  # one line, not a traceback, from a CLI
        log.debug("unexpected failure", exc_info=True)
        reason = (str(exc).strip().splitlines() or [""])[0]
        return fail(f"unexpected {type(exc).__name__}: {reason} (run with --log-level DEBUG for details)",
                    EXIT_FAILURE)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 bad input or failed verification, 1 unexpected)."""
    return run_command(build_parser(), convert_models, argv, log_format=LOG_FORMAT)
