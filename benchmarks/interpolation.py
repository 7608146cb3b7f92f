"""``python -m benchmarks.interpolation``: models on the weight line between two models, scored on validation.

Two models of one architecture that share a warm start (a model and the one it was fine-tuned from, say
fer7 trained on FER2013's labels and the fer7 fine-tuned from it on the FER+ votes) are mixed weight by
weight, ``(1 - alpha) * start + alpha * end``, BatchNorm statistics included. ``--start`` may answer more
classes than ``--end`` (fer7 beside fer4): its output layer is then cut to ``--end``'s classes. Each mix is
scored, as seen and with the mirrored face averaged in, on the validation faces of ``--split-from`` (default
``--end``) and on the test split, against FER+ majority labels, FER2013's folder labels and the consensus faces.
With ``--class-bias``, each mix is scored after one bias per class chosen on those validation faces under
``--guard`` (what ``python -m train --class-bias`` folds into a model). Both ends must be models that never
trained on those validation faces.

Rule: among the mixes that keep the guard (all, without one), the highest validation mean of FER+ and FER2013
accuracy; within 0.1 point, the higher FER2013 validation accuracy, then no flip. Writes
``interpolation.json``, ``interpolation.md`` and ``interpolation.png`` into ``--out``; the test split is only
reported, and not at all when an end fitted it (``--train-on train+test``): its cells read ``fitted``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level
from edge_runtime.labelled_faces.scoring import trained_on_test
from edge_runtime.model.card import file_sha256

from .device import device_facts
from .errors import BenchmarkError
from .report import fmt, markdown_table, new_figure, run_and_report, run_benchmark_command, save_figure
from .teachers import (
    TIE_PT,
    face_counts,
    fitted_note,
    percent,
    read_card,
    recall_guard,
    recall_text,
    scores,
    scoring_notes,
    seen_faces,
    student_faces,
)

log = logging.getLogger("benchmarks.interpolation")
DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


def parse_alphas(text: str) -> tuple[float, ...]:
    """``0,0.5,1`` as floats in [0, 1], or one error line naming the fix."""
    try:
        alphas = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise BenchmarkError(f"--alphas {text}: give comma-separated numbers from 0 to 1, e.g. 0,0.5,1") from None
    if not alphas or any(not 0 <= a <= 1 for a in alphas):
        raise BenchmarkError(f"--alphas {text}: every value must lie from 0 (--start) to 1 (--end)")
    return alphas


def mix(start: list[np.ndarray], end: list[np.ndarray], alpha: float) -> list[np.ndarray]:
    """``(1 - alpha) * start + alpha * end`` for every floating-point weight; any other weight is taken from
    ``start`` (:func:`check_same_architecture` has made sure both ends agree on it)."""
    out = []
    for a, b in zip(start, end, strict=True):
        if np.issubdtype(a.dtype, np.floating):
            out.append(((1 - alpha) * a.astype(np.float64) + alpha * b.astype(np.float64)).astype(a.dtype))
        else:
            out.append(a)
    return out


def cut_weights(model: Any, labels: tuple[str, ...], keep: tuple[str, ...]) -> list[np.ndarray]:
    """``model``'s weights with its output layer cut to the columns of ``keep`` (a subset of ``labels``): the
    softmax over the kept logits is the model's probabilities for those classes, renormalized."""
    from train.selection import OUTPUT_LAYER

    columns = [labels.index(name) for name in keep]
    return [w[..., columns] if v.path.startswith(f"{OUTPUT_LAYER}/") else w
            for v, w in zip(model.weights, model.get_weights(), strict=True)]


def check_same_architecture(start: list[np.ndarray], end: list[np.ndarray], names: tuple[Path, Path]) -> None:
    """One error line unless both weight lists have the same shapes and agree on every integer weight."""
    same = len(start) == len(end) and all(a.shape == b.shape and a.dtype == b.dtype
                                          for a, b in zip(start, end, strict=True))
    if same:
        same = all(np.array_equal(a, b) for a, b in zip(start, end, strict=True)
                   if not np.issubdtype(a.dtype, np.floating))
    if not same:
        raise BenchmarkError(f"--start {names[0]} and --end {names[1]} are not the same architecture; give two "
                             f"models of one architecture (a model and its warm start, for example)")


def probabilities(model: Any, images: np.ndarray, flip: bool, batch: int = 512) -> np.ndarray:
    """Class probabilities of ``images`` (N, 48, 48) 0..255, averaged with the mirrored face when ``flip``."""
    x = images.astype(np.float32)[..., None]
    views = (x, x[:, :, ::-1]) if flip else (x,)
    return np.mean([np.asarray(model.predict(v, batch_size=batch, verbose=0), np.float64) for v in views], 0)


def choose(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The rule: within the guard when any mix is, the highest validation mean; within ``TIE_PT`` points the
    higher FER2013 validation accuracy, then no flip."""
    eligible = [r for r in rows if r.get("guard_shortfall", 0) == 0] or list(rows)
    best = max(r["val"]["mean"] for r in eligible)
    close = [r for r in eligible if (best - r["val"]["mean"]) * 100 <= TIE_PT + 1e-9]
    return max(close, key=lambda r: (r["val"]["accuracy_fer2013"], not r["flip"]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score every mix of ``--alphas``, as seen and mirrored, on the validation faces and on test."""
    from train import selection
    from train.distillation import shift_probabilities

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    alphas = parse_alphas(args.alphas)
    split_from = args.split_from or args.end
    cards = {"--start": read_card(args.start, "--start"), "--end": read_card(args.end, "--end")}
    student = read_card(split_from, "--split-from")
    if args.guard is not None:
        read_card(args.guard, "--guard")
    labels = tuple(student.labels)
    if tuple(cards["--end"].labels) != labels or not set(labels) <= set(cards["--start"].labels):
        raise BenchmarkError(f"--end {args.end} answers {', '.join(cards['--end'].labels)} and --start {args.start} "
                             f"{', '.join(cards['--start'].labels)}, --split-from {', '.join(labels)}: the --end "
                             f"model must answer the --split-from model's classes, and --start at least those")
    faces, validation = student_faces(student, args.data, args.votes)
    cache: dict = {}
    ends = []
    for option, card in cards.items():
        path = getattr(args, option[2:])
        seen = seen_faces(card, str(args.data), validation, cache)
        if seen != 0:
            raise BenchmarkError(f"{option} {path} trained on {'unknown' if seen is None else seen} of the "
                                 f"{len(validation):,} validation faces of {split_from}; give models that never "
                                 f"trained on them (its split's models, or --split-from another model)")
        ends.append({"option": option, "file": str(path), "name": card.name, "sha256": file_sha256(path),
                     "fitted_test": trained_on_test(card.training_config)})
    import keras

    try:
        start, end = (keras.models.load_model(p, compile=False) for p in (args.start, args.end))
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"--start/--end: not a readable Keras model ({exc})") from exc
    weights = (cut_weights(start, tuple(cards["--start"].labels), labels), end.get_weights())
    check_same_architecture(*weights, (args.start, args.end))
    guard = None if args.guard is None else recall_guard(args.guard, labels, faces["val"], args.guard_margin)
    fitted = any(e["fitted_test"] for e in ends)
    rows = []
    for alpha in alphas:
        end.set_weights(mix(*weights, alpha))
        for flip in (False, True):
            probs = {split: probabilities(end, f.images, flip) for split, f in faces.items()}
            row: dict[str, Any] = {"alpha": alpha, "flip": flip}
            if args.class_bias:
                bias = selection.fit_class_bias(probs["val"], faces["val"], "mean", guard)
                probs = {split: shift_probabilities(p, bias) for split, p in probs.items()}
                row["bias"] = dict(zip(labels, np.round(bias, 2).tolist(), strict=True))
            for split, scored in faces.items():
                row[split] = None if split == "test" and fitted else scores(probs[split], scored)
            if guard is not None:
                recalls = selection.consensus_recalls(probs["val"].argmax(1), faces["val"])
                row["guard_shortfall"] = round(guard.shortfall(recalls), 4)
            log.info("alpha %.2f%s: validation mean %.2f %%", alpha, ", flip" if flip else "",
                     100 * row["val"]["mean"])
            rows.append(row)
    chosen = choose(rows)
    for row in rows:
        row["chosen"] = row is chosen
    return {"benchmark": "interpolation", "command": "python -m benchmarks.interpolation " + shlex.join(args.argv),
            "rule": f"among the mixes that keep the guard (all, without one), the highest validation mean of FER+ "
                    f"and FER2013 accuracy; within {TIE_PT} pt, the higher FER2013 validation accuracy, then no flip",
            "labels": list(labels), "ends": ends, "split_from": str(split_from),
            **face_counts(args, faces), "class_bias": args.class_bias, "mixes": rows, "device": device_facts(),
            "duration_s": round(time.perf_counter() - started, 1)}


def markdown(result: dict[str, Any]) -> str:
    """The two ends, then one line per mix, the chosen one marked."""
    ends = markdown_table(["end", "model", "sha256"], [[e["option"], e["file"], e["sha256"][:12]]
                                                       for e in result["ends"]])
    guard = result["guard"] is not None
    biased = bool(result["class_bias"])
    lines = [[f"{r['alpha']:.2f}" + (" **(chosen)**" if r["chosen"] else ""), "yes" if r["flip"] else "no"]
             + ([" / ".join(f"{v:+.1f}" for v in r["bias"].values())] if biased else [])
             + [fmt(100 * r["val"].get("accuracy_ferplus", np.nan)), fmt(100 * r["val"]["accuracy_fer2013"]),
                fmt(100 * r["val"]["mean"]), recall_text(r, "val")]
             + ([fmt(100 * r["guard_shortfall"])] if guard else [])
             + [percent(r, "test", "ferplus"), percent(r, "test", "fer2013"), percent(r, "test", "consensus")]
             for r in result["mixes"]]
    table = markdown_table(["alpha (0 = --start, 1 = --end)", "flip"] + (["class bias"] if biased else [])
                           + ["val FER+ %", "val FER2013 %", "val mean %", "val consensus recall %"]
                           + (["guard shortfall (pt)"] if guard else [])
                           + ["test FER+ %", "test FER2013 %", "test consensus %"], lines,
                           [True, False] + ([False] if biased else []) + [True, True, True, False]
                           + ([True] if guard else []) + [True] * 3)
    notes = scoring_notes(result, "each mix's class bias" if biased else None)
    return (f"# Weight interpolation for a student of {result['split_from']} ({', '.join(result['labels'])})\n\n"
            f"`{result['command']}`\n\nRule: {result['rule']}. Validation: the {result['n_validation']:,} "
            f"validation faces of {result['split_from']}; consensus recall in the order "
            f"{' / '.join(result['labels'])}.{notes}\n\n{ends}\n\n{table}\n" + fitted_note(result["ends"]))


def plot(result: dict[str, Any], path: Path) -> None:
    """Validation FER+ accuracy against FER2013 accuracy along the line, as seen and mirrored, alpha labelled."""
    fig, axes = new_figure()
    ax = axes[0]
    for flip, marker in ((False, "o-"), (True, "s-")):
        group = [r for r in result["mixes"] if r["flip"] == flip]
        xs = [100 * r["val"]["accuracy_fer2013"] for r in group]
        ys = [100 * r["val"].get("accuracy_ferplus", np.nan) for r in group]
        ax.plot(xs, ys, marker, alpha=0.7, label="flip" if flip else "no flip")
        for r, x, y in zip(group, xs, ys, strict=True):
            ax.annotate(f"{r['alpha']:g}" + (" *" if r["chosen"] else ""), (x, y), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.set_xlabel("validation accuracy on FER2013 folder labels (%)")
    ax.set_ylabel("validation accuracy on FER+ majority labels (%)")
    ax.set_title("(1 - alpha) x start + alpha x end (* = chosen)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.interpolation``."""
    p = CommandParser(prog="python -m benchmarks.interpolation", description=__doc__.split("\n\n")[0])
    p.add_argument("--start", required=True, type=Path, help="the model at alpha 0 (.keras, card beside)")
    p.add_argument("--end", required=True, type=Path, help="the model at alpha 1, of the same architecture")
    p.add_argument("--split-from", type=Path,
                   help="the model whose validation faces score the mixes (default: --end)")
    p.add_argument("--data", required=True, type=Path, help="FER2013 folder (train/<class>/, test/<class>/)")
    p.add_argument("--votes", type=Path, help="FER+ votes (default: ferplus/votes.csv beside --data)")
    p.add_argument("--alphas", default=",".join(f"{a:g}" for a in DEFAULT_ALPHAS),
                   help="comma-separated mixing weights of --end (default: %(default)s)")
    p.add_argument("--guard", type=Path, help="keep every class's consensus recall near this model's")
    p.add_argument("--guard-margin", type=float, default=1.0, help="points (default: %(default)s)")
    p.add_argument("--class-bias", action="store_true",
                   help="score each mix after one bias per class chosen on the validation faces under --guard")
    p.add_argument("--out", type=Path, help="write interpolation.json, .md and .png here")
    add_log_level(p)
    return p


def compare(args: argparse.Namespace) -> int:
    """The command's body: score, print the table, write ``--out``."""
    return run_and_report(args, run, "interpolation", markdown, plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Score the weight line; 2 with one ``error:`` line on bad input."""
    return run_benchmark_command(build_parser(), compare, argv)


if __name__ == "__main__":
    sys.exit(main())
