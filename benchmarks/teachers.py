"""``python -m benchmarks.teachers``: teacher ensembles scored on a student's validation faces; the one to distil.

Every combination of up to ``--max-members`` of the ``--model`` files (trained ``.keras`` models with cards),
with and without the mirrored face (``flip``: each member also scores the mirror image and the two are
averaged, as ``python -m train --teacher-flip`` does; with ``--zoom Z`` also on the four views of
``--teacher-flip --teacher-zoom Z``, which ``python -m convert.ensemble --zoom Z`` fuses), is scored on the
validation faces of ``--split-from`` (the model the student warm-starts from: a warm start keeps its source's
split) and on the test split, against FER+ majority labels, FER2013's folder labels and the consensus faces.
The ensemble's output is the mean of its members' probabilities, each cut to the student's classes and
renormalized (the soft target ``python -m train --teacher`` distils).

A member whose own training split holds some of those validation faces would look better on them than
it is: it is flagged and its combinations are left out of the choice. Rule: the highest validation mean
of FER+ and FER2013 accuracy; within 0.1 point, the higher FER2013 validation accuracy, then the fewest
members, then the fewest views (the cheapest to cache). With ``--guard``, each ensemble's shortfall against the
guard's per-class consensus recall is shown (the student keeps the guard, not the teacher). With
``--teacher-bias``, each ensemble is scored after one bias per class chosen on the validation faces under the
guard, the targets ``python -m train --teacher-bias`` distils. Writes
``teachers.json``, ``teachers.md`` and ``teachers.png`` into ``--out``; the test split is only reported, and not
at all for an ensemble with a member that fitted it (``--train-on train+test``): its cells read ``fitted``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_runtime.command_line import CommandParser, add_log_level
from edge_runtime.labelled_faces.scoring import trained_on_test
from edge_runtime.model.card import ModelCard, ModelCardError, file_sha256, load_card
from train.views import ZOOM_REQUIREMENT, face_views, valid_zoom, view_count

from .device import device_facts
from .errors import BenchmarkError
from .report import fmt, markdown_table, new_figure, run_and_report, run_benchmark_command, save_figure

if TYPE_CHECKING:
    from train.selection import RecallGuard

log = logging.getLogger("benchmarks.teachers")
TIE_PT = 0.1
FITTED = "fitted"       # a test cell of a row whose model trained on the test faces
SETS = ("ferplus", "fer2013", "consensus")


def member_probabilities(path: Path, labels: tuple[str, ...], faces: dict[str, np.ndarray],
                         zoom: float | None = None, batch: int = 512) -> dict[str, np.ndarray]:
    """``{split: probabilities (views x faces x labels)}`` of one trained model, cut to ``labels``, on the views
    of :func:`train.views.face_views` in its order: the face, its mirror and, with ``zoom``, the enlarged
    centre and its mirror."""
    from train.distillation import load_teachers

    teacher = load_teachers([str(path)], labels)
    out = {}
    for split, images in faces.items():
        views = [np.asarray(view) for view in face_views(images.astype(np.float32)[..., None], zoom)]
        out[split] = np.stack([np.concatenate([np.asarray(teacher(view[i:i + batch]))
                                               for i in range(0, len(view), batch)]) for view in views])
    return out


def view_options(zoom: float | None) -> list[tuple[bool, float | None]]:
    """The ``(flip, zoom)`` views every ensemble is scored on: the face; with its mirror; with ``zoom``, also
    on the enlarged centre and its mirror."""
    return [(False, None), (True, None)] + ([(True, zoom)] if zoom is not None else [])


def averaged_views(probs: np.ndarray, flip: bool, zoom: float | None) -> np.ndarray:
    """The mean of the first views of ``probs`` (as :func:`member_probabilities` orders them) that ``flip`` and
    ``zoom`` take."""
    return np.mean(probs[:view_count(zoom) if flip else 1], 0)


def student_faces(student: ModelCard, data: Path, votes: Path | None) -> tuple[dict[str, Any], set[str]]:
    """``{"val": the student's validation faces (re-carved from its card), "test": the test split}``, scored
    against every label set, and the pixel hashes of the validation faces."""
    from edge_runtime.labelled_faces import scoring
    from edge_runtime.labelled_faces.errors import FaceDataError
    from train import data_checks
    from train.errors import UserError
    from train.evaluate import validation_faces

    try:
        vote_table = scoring.resolve_votes(data, votes, required=False)
        faces = {"val": validation_faces(student, str(data), vote_table),
                 "test": scoring.load_scored_split(data, "test", tuple(student.labels), vote_table)}
    except (UserError, FaceDataError) as exc:
        raise BenchmarkError(str(exc)) from exc
    return faces, set(data_checks.pixel_hashes(faces["val"].images))


def recall_guard(path: Path, labels: tuple[str, ...], val: Any, margin_pt: float) -> RecallGuard:
    """The :class:`train.selection.RecallGuard` of ``--guard``: its per-class consensus recall on ``val``."""
    from train import selection
    from train.errors import UserError

    try:
        probs = member_probabilities(path, labels, {"val": val.images})["val"][0]
    except UserError as exc:
        raise BenchmarkError(str(exc).replace("--teacher", "--guard")) from exc
    return selection.RecallGuard(reference=selection.consensus_recalls(probs.argmax(1), val), margin=margin_pt / 100)


def face_counts(args: argparse.Namespace, faces: dict[str, Any]) -> dict[str, Any]:
    """The guard and how many faces each split scores, as the benchmarks' JSON records them."""
    return {"guard": str(args.guard) if args.guard else None,
            "guard_margin": args.guard_margin if args.guard else None, "n_validation": len(faces["val"]),
            "n_test": {k: int((v >= 0).sum()) for k, v in faces["test"].label_sets().items()}}


def seen_faces(card: ModelCard, data: str, validation: set[str], cache: dict) -> int | None:
    """How many of the ``validation`` faces (pixel hashes) the member's own training split holds; ``None``
    when its card records no split. A warm start keeps its source's split, so this covers the chain."""
    from edge_runtime.labelled_faces.loading import load_split
    from train import data_checks, splits

    config = dict(card.training_config)
    if "classes" not in config or not splits.records_split(config):
        return None
    settings = splits.split_settings(config)
    key = repr(sorted(settings.items()))
    if key not in cache:
        config["classes"] = list(settings["classes"])     # every face of the folders it carved its split over
        train_all = load_split(data, "train", settings["classes"])
        test = load_split(data, "test", settings["classes"])
        train, _, _ = splits.carve_run_split(config, train_all, test, data)
        cache[key] = set(data_checks.pixel_hashes(train.images))
    return len(validation & cache[key])


def scores(probs: np.ndarray, faces) -> dict[str, Any]:
    """Accuracy, balanced accuracy and per-class recall against each label set of ``faces``."""
    from train import reports

    sets = reports.label_set_report(probs, faces, "fer2013")["label_sets"]
    out: dict[str, Any] = {}
    for name in SETS:
        if name in sets:
            out[f"accuracy_{name}"] = round(sets[name]["accuracy"], 4)
            out[f"balanced_accuracy_{name}"] = round(sets[name]["balanced_accuracy"], 4)
            out[f"recall_{name}"] = {k: round(v["recall"], 4) for k, v in sets[name]["per_class"].items()}
    both = [out[f"accuracy_{name}"] for name in ("ferplus", "fer2013") if f"accuracy_{name}" in out]
    out["mean"] = round(float(np.mean(both)), 4)
    return out


def choose(rows: Sequence[dict[str, Any]], keep_guard: bool = False) -> dict[str, Any]:
    """The rule: among ensembles of unseen members (with ``keep_guard``, those within the guard when any is),
    the highest validation mean; within ``TIE_PT`` points the higher FER2013 validation accuracy, then the
    fewest members, then the fewest views."""
    eligible = [r for r in rows if r["eligible"]]
    if keep_guard:
        eligible = [r for r in eligible if r.get("guard_shortfall") == 0] or eligible
    if not eligible:
        raise BenchmarkError("every --model trained on some of the --split-from model's validation faces (or "
                             "records no split); add models trained on its split (python -m train --init-from it)")
    best = max(r["val"]["mean"] for r in eligible)
    close = [r for r in eligible if (best - r["val"]["mean"]) * 100 <= TIE_PT + 1e-9]
    return max(close, key=lambda r: (r["val"]["accuracy_fer2013"], -len(r["members"]), not r["flip"],
                                     r.get("zoom") is None))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score every member, then every ensemble of them, on the student's validation faces and on test."""
    from train import selection
    from train.distillation import shift_probabilities
    from train.errors import UserError

    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.max_members < 1:
        raise BenchmarkError(f"--max-members {args.max_members}: give 1 or more")
    if args.zoom is not None and not valid_zoom(args.zoom):
        raise BenchmarkError(f"--zoom {args.zoom}: {ZOOM_REQUIREMENT}")
    paths = [Path(p) for p in args.model]
    student = read_card(args.split_from, "--split-from")
    cards = [read_card(p, "--model") for p in paths]
    if args.guard is not None:
        read_card(args.guard, "--guard")
    labels = tuple(student.labels)
    faces, validation = student_faces(student, args.data, args.votes)
    cache: dict = {}
    members = []
    for path, card in zip(paths, cards, strict=True):
        try:
            probs = member_probabilities(path, labels, {k: f.images for k, f in faces.items()}, args.zoom)
        except UserError as exc:
            raise BenchmarkError(str(exc).replace("--teacher", "--model")) from exc
        seen = seen_faces(card, str(args.data), validation, cache)
        members.append({"file": str(path), "name": card.name, "sha256": file_sha256(path),
                        "seen_validation_faces": seen, "fitted_test": trained_on_test(card.training_config),
                        "probs": probs})
        log.info("%s: %s of %d validation faces in its training split", path, "unknown" if seen is None else seen,
                 len(validation))
    guard = None if args.guard is None else recall_guard(args.guard, labels, faces["val"], args.guard_margin)
    rows = []
    for size in range(1, min(args.max_members, len(members)) + 1):
        for combo in itertools.combinations(range(len(members)), size):
            for flip, zoom in view_options(args.zoom):
                row: dict[str, Any] = {"members": [members[i]["file"] for i in combo], "flip": flip, "zoom": zoom,
                                       "eligible": all(members[i]["seen_validation_faces"] == 0 for i in combo)}
                probs = {split: np.mean([averaged_views(members[i]["probs"][split], flip, zoom) for i in combo], 0)
                         for split in faces}
                if args.teacher_bias:
                    bias = selection.fit_class_bias(probs["val"], faces["val"], "mean", guard)
                    probs = {split: shift_probabilities(p, bias) for split, p in probs.items()}
                    row["bias"] = dict(zip(labels, np.round(bias, 2).tolist(), strict=True))
                fitted = any(members[i]["fitted_test"] for i in combo)
                for split, scored in faces.items():
                    row[split] = None if split == "test" and fitted else scores(probs[split], scored)
                    if split == "val" and guard is not None:
                        recalls = selection.consensus_recalls(probs[split].argmax(1), scored)
                        row["guard_shortfall"] = round(guard.shortfall(recalls), 4)
                rows.append(row)
    keep_guard = bool(args.teacher_bias and guard is not None)
    chosen = choose(rows, keep_guard)
    for row in rows:
        row["chosen"] = row is chosen
    rows.sort(key=lambda r: (not r["eligible"], -r["val"]["mean"]))
    return {"benchmark": "teachers", "command": "python -m benchmarks.teachers " + shlex.join(args.argv),
            "rule": "among ensembles whose members never trained on these validation faces"
                    + (" (and, when any does, that keep the guard with their bias)" if keep_guard else "")
                    + ", the highest validation "
                    f"mean of FER+ and FER2013 accuracy; within {TIE_PT} pt, the higher FER2013 validation accuracy, "
                    f"then the fewest members, then the fewest views",
            "labels": list(labels), "split_from": str(args.split_from), "zoom": args.zoom,
            **face_counts(args, faces), "teacher_bias": args.teacher_bias,
            "members": [{k: v for k, v in m.items() if k != "probs"} for m in members], "ensembles": rows,
            "top": args.top,
            "device": device_facts(), "duration_s": round(time.perf_counter() - started, 1)}


def read_card(path: Path, option: str) -> ModelCard:
    """A trained ``.keras`` model's card, or one error line naming ``option``."""
    if not Path(path).is_file():
        raise BenchmarkError(f"{option} {path} not found")
    if Path(path).suffix != ".keras":
        raise BenchmarkError(f"{option} {path}: give a trained .keras model (its card beside it)")
    try:
        return load_card(path)
    except ModelCardError as exc:
        raise BenchmarkError(f"{option} {path}: {exc}") from exc


def ensemble_name(row: dict[str, Any]) -> str:
    """``a + b`` (file stems with their folder), ``, flip`` when mirrored faces are averaged in, ``, zoom Z``
    when the enlarged centres are too."""
    names = " + ".join(f"{Path(m).parent.name}/{Path(m).stem}" for m in row["members"])
    return names + (", flip" if row["flip"] else "") + (f", zoom {row['zoom']:g}" if row.get("zoom") else "")


def percent(row: dict[str, Any], split: str, name: str) -> str | None:
    """One accuracy of a row in percent (``None`` when the label set is absent; ``fitted`` when the row has no
    test scores because a model in it trained on the test faces)."""
    if row[split] is None:
        return FITTED
    value = row[split].get(f"accuracy_{name}")
    return None if value is None else fmt(100 * value)


def recall_text(row: dict[str, Any], split: str) -> str:
    """Per-class consensus recall, ``93.1 / 86.0 / ...`` in label order."""
    recalls = row[split].get("recall_consensus") or row[split].get("recall_fer2013") or {}
    return " / ".join(f"{100 * v:.1f}" for v in recalls.values())


def markdown(result: dict[str, Any]) -> str:
    """Members, then the ``--top`` ensembles by validation mean, the chosen one marked."""
    seen = [[m["file"], m["sha256"][:12], "unknown (no split recorded)" if m["seen_validation_faces"] is None
             else f"{m['seen_validation_faces']:,}"] for m in result["members"]]
    members = markdown_table(["model", "sha256", f"validation faces in its training split (of "
                                                  f"{result['n_validation']:,})"], seen, [False, False, True])
    eligible = [r for r in result["ensembles"] if r["eligible"]]
    shown = eligible[:result["top"]] + [r for r in eligible[result["top"]:] if len(r["members"]) == 1 or r["chosen"]]
    guard = result["guard"] is not None
    biased = bool(result.get("teacher_bias"))
    lines = [[ensemble_name(r) + (" **(chosen)**" if r["chosen"] else "")]
             + ([" / ".join(f"{v:+.1f}" for v in r["bias"].values())] if biased else [])
             + [percent(r, "val", "ferplus"),
              percent(r, "val", "fer2013"), fmt(100 * r["val"]["mean"]), recall_text(r, "val")]
             + ([fmt(100 * r["guard_shortfall"])] if guard else [])
             + [percent(r, "test", "ferplus"), percent(r, "test", "fer2013"), percent(r, "test", "consensus")]
             for r in shown]
    table = markdown_table(["teachers"] + (["teacher bias"] if biased else [])
                           + ["val FER+ %", "val FER2013 %", "val mean %", "val consensus recall %"]
                           + (["guard shortfall (pt)"] if guard else [])
                           + ["test FER+ %", "test FER2013 %", "test consensus %"], lines,
                           [False] + ([False] if biased else []) + [True, True, True, False]
                           + ([True] if guard else []) + [True] * 3)
    left_out = len(result["ensembles"]) - len(eligible)
    guard_text = scoring_notes(result, "each ensemble's teacher bias" if biased else None)
    return (f"# Teacher ensembles for a student of {result['split_from']} ({', '.join(result['labels'])})\n\n"
            f"`{result['command']}`\n\nRule: {result['rule']}. Validation: the {result['n_validation']:,} "
            f"validation faces of {result['split_from']}; consensus recall in the order "
            f"{' / '.join(result['labels'])}.{guard_text}\n\n{members}\n\n{table}\n\n"
            f"{left_out} ensemble(s) with a member that trained on these validation faces are left out.\n"
            + fitted_note(result["members"]))


def fitted_note(members: list[dict[str, Any]]) -> str:
    """The sentence under a table whose test cells read ``fitted`` (empty when no model fitted test)."""
    fitted = [m["file"] for m in members if m.get("fitted_test")]
    return (f"\n{', '.join(fitted)} fitted the test faces (--train-on train+test): test cells of the rows with "
            f"it read `{FITTED}`.\n" if fitted else "")


def scoring_notes(result: dict[str, Any], bias: str | None) -> str:
    """The sentences after a table's rule: the guard and its margin, and where ``bias`` (what was biased, e.g.
    ``each mix's class bias``) names it, the bias added to the log-probabilities before scoring."""
    guard = result["guard"] is not None
    text = (f" Guard: {result['guard']}, {result['guard_margin']:g} point(s) below its per-class consensus recall "
            f"at most." if guard else "")
    if bias:
        text += (f" Scores are after {bias} (added to its log-probabilities, order {' / '.join(result['labels'])}), "
                 f"chosen on these validation faces" + (" under the guard." if guard else "."))
    return text


def plot(result: dict[str, Any], path: Path) -> None:
    """Validation FER+ accuracy against FER2013 accuracy of every eligible ensemble, members labelled."""
    fig, axes = new_figure()
    ax = axes[0]
    eligible = [r for r in result["ensembles"] if r["eligible"] and "accuracy_ferplus" in r["val"]]
    for flip, zoom, marker, name in ((False, False, "o", "no flip"), (True, False, "s", "flip"),
                                     (True, True, "^", "flip, zoom")):
        group = [r for r in eligible if r["flip"] == flip and bool(r.get("zoom")) == zoom]
        xs = [100 * r["val"]["accuracy_fer2013"] for r in group]
        if group:
            ax.plot(xs, [100 * r["val"]["accuracy_ferplus"] for r in group], marker, alpha=0.6, label=name)
    for r in eligible:
        if len(r["members"]) == 1 and not r["flip"] or r["chosen"]:
            ax.annotate(ensemble_name(r) + (" *" if r["chosen"] else ""),
                        (100 * r["val"]["accuracy_fer2013"], 100 * r["val"]["accuracy_ferplus"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("validation accuracy on FER2013 folder labels (%)")
    ax.set_ylabel("validation accuracy on FER+ majority labels (%)")
    ax.set_title("teacher ensembles (* = chosen)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.teachers``."""
    p = CommandParser(prog="python -m benchmarks.teachers", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs="+", required=True, type=Path, help="candidate teachers (.keras, cards beside)")
    p.add_argument("--split-from", required=True, type=Path,
                   help="the model the student warm-starts from: its validation faces score the ensembles")
    p.add_argument("--data", required=True, type=Path, help="FER2013 folder (train/<class>/, test/<class>/)")
    p.add_argument("--votes", type=Path, help="FER+ votes (default: ferplus/votes.csv beside --data)")
    p.add_argument("--max-members", type=int, default=3, help="largest ensemble tried (default: %(default)s)")
    p.add_argument("--guard", type=Path, help="show each ensemble's shortfall against this model's consensus recall")
    p.add_argument("--guard-margin", type=float, default=1.0, help="points (default: %(default)s)")
    p.add_argument("--teacher-bias", action="store_true",
                   help="score each ensemble after one bias per class chosen on the validation faces under --guard "
                        "(what python -m train --teacher-bias distils)")
    p.add_argument("--zoom", type=float, metavar="Z",
                   help="also score each ensemble on the four views of python -m train --teacher-flip --teacher-zoom "
                        "Z (the face's centre enlarged Z times, and the mirror of both), as convert.ensemble --zoom "
                        "fuses them")
    p.add_argument("--top", type=int, default=15, help="ensembles listed in the table (default: %(default)s)")
    p.add_argument("--out", type=Path, help="write teachers.json, teachers.md, teachers.png here")
    add_log_level(p)
    return p


def compare(args: argparse.Namespace) -> int:
    """The command's body: score, print the table, write ``--out``."""
    return run_and_report(args, run, "teachers", markdown, plot)


def main(argv: Sequence[str] | None = None) -> int:
    """Score the teacher ensembles; 2 with one ``error:`` line on bad input."""
    return run_benchmark_command(build_parser(), compare, argv)


if __name__ == "__main__":
    sys.exit(main())
