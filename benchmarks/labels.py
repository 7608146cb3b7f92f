"""``python -m benchmarks.labels``: the label-source frontier, FER+ accuracy against FER2013-label accuracy.

Reads the cards of models trained at several ``--label-blend`` values (``.keras`` or ``.tflite`` cards
written by ``python -m train`` / ``python -m convert``): one point per model on validation (from its
training record) and on test (its card's metrics), the peer measured on the same test faces. The model
the blend rule picks (highest validation mean of the two accuracies; within 0.1 point, the higher
FER2013 accuracy) is marked. Writes ``labels.json``, ``labels.md`` and ``labels.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_runtime.command_line import CommandParser, add_log_level
from edge_runtime.model.card import ModelCardError, load_card
from train.records import TrainingRecord, training_record

from .accuracy import accuracies, load_test_faces, refuse_fitted_test
from .device import device_facts
from .errors import BenchmarkError
from .peer import PEER_LABELS, PeerModel, default_peer_path
from .report import fmt, markdown_table, new_figure, run_and_report, run_benchmark_command, save_figure

log = logging.getLogger("benchmarks.labels")
TIE_PT = 0.1


def model_point(path: Path) -> dict[str, Any]:
    """A trained model's blend, prior adjustment and accuracies (validation and test, both label sets)."""
    try:
        card = load_card(path)
    except ModelCardError as exc:
        raise BenchmarkError(f"--model {path}: {exc}") from exc
    refuse_fitted_test(card, f"--model {path}")
    training = training_record(card)
    config = training.config
    metrics = card.metrics
    val = training.best_val_accuracy_by_label_set or {}
    if "ferplus" not in val or metrics.get("accuracy_ferplus") is None:
        raise BenchmarkError(f"--model {path}: its card has no FER+ scores; train it with FER+ votes available "
                             "(python -m train ... --votes PATH)")
    return {"file": str(path), "name": card.name, "labels": list(card.labels), "guard_met": guard_met(path, training),
            "guard": guard_identity(training),
            "label_source": config.get("labels", "fer2013"),
            "blend": config.get("label_blend", 0.0 if config.get("labels", "fer2013") == "fer2013" else 1.0),
            "prior_tau": training.prior_adjustment.tau if training.prior_adjustment else 0.0,
            "val_fer2013": val["fer2013"], "val_ferplus": val["ferplus"],
            "val_mean": round((val["fer2013"] + val["ferplus"]) / 2, 4),
            "test_fer2013": metrics.get("accuracy_fer2013"), "test_ferplus": metrics.get("accuracy_ferplus"),
            "test_n_fer2013": metrics.get("n_fer2013"), "test_n_ferplus": metrics.get("n_ferplus")}


def guard_met(path: Path, training: TrainingRecord) -> bool | None:
    """Whether the epoch a ``--guard`` run chose kept the guard (``None``: trained without one, or not recorded).

    Read from the card (``training.guard.met``) or, for runs that do not record it, from the run's
    ``history.csv`` beside the model (``val_guard_shortfall`` at the chosen epoch); a card copied away
    from its run without that field has no answer."""
    guard = training.guard
    if guard is None:
        return None
    if guard.met is not None:
        return guard.met
    history = path.parent / "history.csv"
    if not history.is_file() or not training.best_epoch:
        return None
    with history.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[training.best_epoch - 1].get("val_guard_shortfall") or 1.0) == 0.0


def guard_identity(training: TrainingRecord) -> str | None:
    """The guard a run kept to, as ``<file name> <sha256 prefix>, <margin> pt`` (``None``: no guard)."""
    guard = training.guard
    return None if guard is None else f"{Path(guard.model).name} {guard.sha256[:8]}, {guard.margin_pt:g} pt"


def one_guard(points: Sequence[dict[str, Any]]) -> bool:
    """Whether every guarded run kept to the same guard (model file and margin): only then do their
    ``kept``/``missed`` compare."""
    return len({p.get("guard") for p in points if p.get("guard") is not None}) <= 1


def choose(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The blend rule: among runs that kept their ``--guard`` (all runs, when none had one, or when the runs
    had different guards), the highest validation mean; within ``TIE_PT`` points, the higher FER2013
    validation accuracy."""
    if one_guard(points):
        guarded = [p for p in points if p.get("guard_met")]
        points = guarded or [p for p in points if p.get("guard") is None] or list(points)
    best = max(p["val_mean"] for p in points)
    close = [p for p in points if (best - p["val_mean"]) * 100 <= TIE_PT]
    return max(close, key=lambda p: p["val_fer2013"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read every model's point, measure the peer on the test faces, pick the blend."""
    started = time.perf_counter()
    points = [model_point(Path(m)) for m in args.model]
    labels = tuple(points[0]["labels"])
    if any(tuple(p["labels"]) != labels for p in points):
        raise BenchmarkError("--model files have different labels; compare models of one class set")
    peer = None
    peer_path = args.peer or default_peer_path()
    if args.data is not None and peer_path is not None and all(c in PEER_LABELS for c in labels):
        model = PeerModel.from_path(peer_path)
        test = load_test_faces(args.data, "test", labels, votes=args.votes)
        acc = accuracies(model, model.load(args.threads), test)
        peer = {"file": str(peer_path), "test_fer2013": round(acc["fer2013"], 4),
                "test_ferplus": round(acc["ferplus"], 4) if "ferplus" in acc else None}
    chosen = choose(points)
    for p in points:
        p["chosen"] = p is chosen
    return {"benchmark": "labels", "command": "python -m benchmarks.labels " + shlex.join(args.argv),
            "rule": ("among runs that kept their --guard (all, when none had one), the highest validation mean "
                     if one_guard(points) else "the runs had different guards, so their guard status does not "
                     "compare: among all runs, the highest validation mean ")
                    + f"of FER+ and FER2013 accuracy; within {TIE_PT} pt, the higher FER2013 validation accuracy",
            "labels": list(labels), "points": points, "peer": peer,
            "device": device_facts(), "duration_s": round(time.perf_counter() - started, 1)}


def markdown(result: dict[str, Any]) -> str:
    """The frontier as a table, best blend marked."""
    def guard(point: dict[str, Any]) -> str:
        if point.get("guard") is None:
            return "none"
        return {None: "not recorded", True: "kept", False: "missed"}[point["guard_met"]] + f" ({point['guard']})"

    lines = [[f"{p['blend']:g}" + (" (chosen)" if p["chosen"] else ""), f"{p['prior_tau']:g}",
              guard(p),
              fmt(100 * p["val_ferplus"]), fmt(100 * p["val_fer2013"]), fmt(100 * p["val_mean"]),
              fmt(100 * p["test_ferplus"]), fmt(100 * p["test_fer2013"]), p["file"]]
             for p in sorted(result["points"], key=lambda p: p["blend"])]
    if result["peer"]:
        peer = result["peer"]
        lines.append(["peer", None, None, None, None, None, fmt(None if peer["test_ferplus"] is None
                                                          else 100 * peer["test_ferplus"]),
                      fmt(100 * peer["test_fer2013"]), peer["file"]])
    table = markdown_table(["blend", "prior τ", "guard", "val FER+ %", "val FER2013 %", "val mean %", "test FER+ %",
                            "test FER2013 %", "model"], lines, [False, True, False] + [True] * 5 + [False])
    return f"# Label-source frontier ({', '.join(result['labels'])})\n\n`{result['command']}`\n\n" \
           f"Rule: {result['rule']}.\n\n{table}\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """FER+ accuracy (y) against FER2013 accuracy (x), validation and test, one point per blend."""
    fig, axes = new_figure()
    ax = axes[0]
    for split, marker in (("val", "o"), ("test", "s")):
        xs = [100 * p[f"{split}_fer2013"] for p in result["points"]]
        ys = [100 * p[f"{split}_ferplus"] for p in result["points"]]
        ax.plot(xs, ys, marker, label="validation" if split == "val" else "test")
        for p, x, y in zip(result["points"], xs, ys, strict=True):
            guard = {True: ", guard kept", False: ", guard missed", None: ""}[p["guard_met"]]
            ax.annotate(f"A={p['blend']:g} τ={p['prior_tau']:g}{guard}" + ("*" if p["chosen"] else ""), (x, y),
                        textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    peer = result["peer"]
    if peer and peer["test_ferplus"] is not None:
        ax.plot([100 * peer["test_fer2013"]], [100 * peer["test_ferplus"]], "k^", label="peer (test)")
    ax.set_xlabel("accuracy on FER2013 folder labels (%)")
    ax.set_ylabel("accuracy on FER+ majority labels (%)")
    ax.set_title(f"label blend frontier ({len(result['labels'])} classes; * = chosen)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.labels``."""
    p = CommandParser(prog="python -m benchmarks.labels", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs="+", required=True, help="trained models (.keras or .tflite, cards beside)")
    p.add_argument("--data", type=Path, help="FER2013 folder: the peer is measured on its test split")
    p.add_argument("--votes", type=Path, help="FER+ votes (default: ferplus/votes.csv beside --data)")
    p.add_argument("--peer", type=Path, help="the peer .tflite (default: ../shared's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="write labels.json, labels.md, labels.png here")
    add_log_level(p)
    return p


def compare(args: argparse.Namespace) -> int:
    """The command's body: read the points, print the table, write ``--out``."""
    return run_and_report(args, run, "labels", markdown, plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the models' label-source points; 2 with one ``error:`` line on bad input."""
    return run_benchmark_command(build_parser(), compare, argv)


if __name__ == "__main__":
    sys.exit(main())
