"""The type, range and choices of every setting of a training run, as :meth:`RunConfig.validate` checks them.

A rule's ``requirement`` says what the value must be, and so how to fix it; ``{field}`` placeholders
name other settings (as options of ``python -m train``, or as keys of a config file).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache
from typing import TYPE_CHECKING, Any, Union

from edge_runtime.labelled_faces.scoring import TRAIN_ON_CHOICES

from .data_checks import DROP_CHOICES
from .label_sources import LABEL_SOURCES, SELECT_CHOICES
from .labels import FER2013_CLASSES, FERPLUS_ONLY_CLASSES
from .pretrained import TRANSFER_ARCHITECTURES
from .splits import SPLIT_METHODS
from .views import ZOOM_REQUIREMENT, valid_zoom

if TYPE_CHECKING:
    from .config import RunConfig

# The names of train.models.ARCHITECTURES, checked before TensorFlow is imported.
ARCHITECTURE_NAMES = ("edge", "edge-fast", "edge-small", "edge-sep", "baseline", *TRANSFER_ARCHITECTURES)
CLASS_WEIGHTS = ("none", "sqrt", "balanced")
PRECISIONS = ("float32", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
TEACHER_TARGETS = ("online", "cached")
CLASS_NAMES = (*FER2013_CLASSES, *FERPLUS_ONLY_CLASSES)
LOWEST_RESOLUTION, HIGHEST_RESOLUTION = 32, 512
# The option setting a field when it is not --<field with dashes>; None: no option sets it.
OPTIONS = {"teachers": "--teacher", "prior_taus": "--prior-adjust", "command": None, "weights_source": None,
           "split_classes": None, "split_seed": None, "resumed_with": None, "epochs_changed": None}
TRANSFER = "|".join(TRANSFER_ARCHITECTURES)


def option(name: str) -> str:
    """The ``python -m train`` option that sets the field ``name`` (the field's name when none does)."""
    return OPTIONS.get(name, f"--{name.replace('_', '-')}") or name


@dataclass(frozen=True)
class Rule:
    """``holds(config)`` must be true, else ``field`` is reported with ``requirement``."""

    field: str
    holds: Callable[[RunConfig], bool]
    requirement: str


def _choice(name: str, choices: tuple[str, ...]) -> Rule:
    return Rule(name, lambda c: getattr(c, name) in choices, f"must be one of {', '.join(choices)}")


def _names(values: list[str] | None, allowed: tuple[str, ...], at_least: int = 0) -> bool:
    """Whether ``values`` (when set) holds ``at_least`` distinct names, each one of ``allowed``."""
    if values is None:
        return True
    return len(values) >= at_least and len(set(values)) == len(values) and set(values) <= set(allowed)


RULES = (
    Rule("data", lambda c: bool(c.data), "must name the FER2013 folder or fer2013.csv"),
    Rule("classes", lambda c: _names(c.classes, CLASS_NAMES, 2),
         f"must list two or more distinct names of {', '.join(CLASS_NAMES)}"),
    Rule("classes", lambda c: c.labels == "ferplus" or not set(c.classes) & set(FERPLUS_ONLY_CLASSES),
         "may hold contempt only with {labels} ferplus (FER+ votes alone label it)"),
    _choice("arch", ARCHITECTURE_NAMES),
    Rule("name", lambda c: bool(c.name) and not set(c.name) & set("/\\"), "must be a file name without a folder"),
    Rule("epochs", lambda c: c.epochs >= 1, "must be at least 1"),
    Rule("batch_size", lambda c: c.batch_size >= 1, "must be at least 1"),
    Rule("lr", lambda c: c.lr > 0, "must be above 0"),
    Rule("weight_decay", lambda c: c.weight_decay >= 0, "must be 0 or more"),
    Rule("label_smoothing", lambda c: 0 <= c.label_smoothing < 1, "must be from 0 to below 1"),
    Rule("mixup", lambda c: c.mixup >= 0, "must be 0 (off) or positive"),
    _choice("class_weight", CLASS_WEIGHTS),
    Rule("drop", lambda c: _names(c.drop, DROP_CHOICES), f"must list distinct names of {', '.join(DROP_CHOICES)}"),
    Rule("val_fraction", lambda c: 0 < c.val_fraction < 1, "must be between 0 and 1"),
    _choice("split_method", SPLIT_METHODS),
    _choice("train_on", TRAIN_ON_CHOICES),
    Rule("seed", lambda c: c.seed >= 0, "must be 0 or more"),
    _choice("precision", PRECISIONS),
    _choice("strategy", STRATEGIES),
    Rule("cpu_devices", lambda c: c.cpu_devices >= 0, "must be 0 or more"),
    Rule("init_from", lambda c: c.init_from is None or bool(c.init_from), "must name a trained .keras model"),
    Rule("teachers", lambda c: all(c.teachers), "must name trained .keras models"),
    Rule("teacher_weight", lambda c: 0 < c.teacher_weight <= 1 if c.teachers else c.teacher_weight == 0,
         "must be in (0, 1] with {teachers}, and 0 without"),
    Rule("teacher_flip", lambda c: not c.teacher_flip or bool(c.teachers),
         "scores faces with the teachers: add {teachers} MODEL.keras"),
    Rule("teacher_zoom", lambda c: c.teacher_zoom is None or bool(c.teachers),
         "scores faces with the teachers: add {teachers} MODEL.keras"),
    Rule("teacher_zoom", lambda c: c.teacher_zoom is None or valid_zoom(c.teacher_zoom), ZOOM_REQUIREMENT),
    Rule("teacher_bias", lambda c: not c.teacher_bias or bool(c.teachers),
         "shifts the teachers' output: add {teachers} MODEL.keras"),
    _choice("teacher_targets", TEACHER_TARGETS),
    Rule("teacher_targets", lambda c: c.teacher_targets == "online" or bool(c.teachers),
         "sets how teachers score faces: add {teachers} MODEL.keras"),
    _choice("labels", LABEL_SOURCES),
    Rule("label_blend", lambda c: 0 <= c.label_blend <= 1, "must be between 0 and 1"),
    Rule("label_blend", lambda c: c.label_blend == 1 or c.labels == "ferplus",
         "blends FER+ votes with the folder labels: add {labels} ferplus, or leave it at 1"),
    _choice("select", SELECT_CHOICES),
    Rule("prior_taus", lambda c: bool(c.prior_taus) and all(0 <= tau <= 2 for tau in c.prior_taus),
         "must each be from 0 (off) to 2"),
    Rule("guard", lambda c: c.guard is None or c.labels == "ferplus" or c.votes is not None,
         "compares recall on the consensus faces, which need FER+ votes: add {labels} ferplus or {votes}"),
    Rule("guard_margin", lambda c: c.guard_margin >= 0, "must be 0 or more points"),
    Rule("weights", lambda c: bool(c.weights), "must be none, imagenet or the path of a weights file"),
    Rule("weights", lambda c: c.weights == "none" or c.arch in TRANSFER_ARCHITECTURES,
         f"applies to {{arch}} {TRANSFER} only"),
    Rule("resolution", lambda c: c.resolution is None or c.arch in TRANSFER_ARCHITECTURES,
         f"applies to {{arch}} {TRANSFER} only"),
    Rule("resolution", lambda c: c.resolution is None or LOWEST_RESOLUTION <= c.resolution <= HIGHEST_RESOLUTION,
         f"must be from {LOWEST_RESOLUTION} to {HIGHEST_RESOLUTION} pixels"),
    Rule("freeze_epochs", lambda c: c.freeze_epochs == 0 or c.arch in TRANSFER_ARCHITECTURES,
         f"applies to {{arch}} {TRANSFER} only"),
    Rule("freeze_epochs", lambda c: 0 <= c.freeze_epochs < c.epochs, "must be from 0 to fewer than {epochs}"),
    Rule("finetune_lr_factor", lambda c: c.finetune_lr_factor is None or 0 < c.finetune_lr_factor <= 1,
         "must be in (0, 1]"),
    Rule("split_classes", lambda c: _names(c.split_classes, CLASS_NAMES, 2),
         f"must list two or more distinct names of {', '.join(CLASS_NAMES)}"),
    Rule("split_seed", lambda c: c.split_seed is None or c.split_seed >= 0, "must be 0 or more"),
)


def first_problem(config: RunConfig) -> tuple[str, str] | None:
    """``(field, requirement)`` of the first setting of the wrong type or out of range; ``None`` when all hold."""
    for name, hint in _settings(type(config)).items():
        wanted = _type_problem(hint, getattr(config, name))
        if wanted:
            return name, f"must be {wanted}"
    return next(((rule.field, rule.requirement) for rule in RULES if not rule.holds(config)), None)


@cache
def _settings(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.name not in ("extra", "key_order")}


_WANTED = {str: "text", bool: "true or false", int: "a whole number", float: "a number", dict: "a JSON object"}


def _type_problem(hint: Any, value: Any) -> str | None:
    """What ``value`` must be to fit ``hint`` (``None`` when it fits)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        inner = next(arg for arg in args if arg is not type(None))
        problem = _type_problem(inner, value)
        return problem and f"{problem} or null"
    if origin is list:
        if not isinstance(value, list):
            return "a list"
        problem = next((p for p in (_type_problem(args[0], item) for item in value) if p), None)
        return problem and f"a list of {problem.removeprefix('a ')}s"
    base = origin or hint
    fits = isinstance(value, base) and (base is bool or not isinstance(value, bool))
    if base is float:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    return None if fits else _WANTED[base]
