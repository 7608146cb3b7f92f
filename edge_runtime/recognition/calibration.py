"""Personal calibration: read one person's expressions against their own neutral face.

A face that looks sad or stern at rest reads as sad all day to a generic model. A **profile** holds
the mean log-scores of one person's neutral face, as the model saw it on one camera
(``fer-edge enrol``); the model card's **neutral reference** holds the model's mean log-scores on the
neutral faces of its validation split. Each face is then re-scored as::

    softmax(log(p) - ALPHA * (profile - reference))      # p * exp(-shift), renormalised

where ``profile`` and ``reference`` are means of ``log(max(p, FLOOR))``. A resting face that reads
like the reference's neutral faces keeps its scores exactly, and one that reads sadder than them is
moved back by the difference. This is person-specific normalisation as OpenFace 2.0
does it for action units (subtract the person's median appearance). The floor keeps the noisy tails of
rare classes out of the shift (a class the face scores 0 stays 0). :data:`ALPHA` and :data:`FLOOR` are
set here only; docs/calibration.md gives the measurements behind them (``python -m
benchmarks.calibration``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.atomic_io import atomic_write_bytes
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.model.card import ModelCard, ModelCardError, card_section
from edge_runtime.model.card_schema import SchemaError, from_json, to_json
from edge_runtime.results import Expression

#: Scores below this are raised to it before the log (the tails of rare classes are noise).
FLOOR = 0.05
#: How much of the difference between the profile and the reference is taken off (0: none).
ALPHA = 0.75
#: The card section that holds the model's neutral reference.
REFERENCE_SECTION = "neutral_reference"
PROFILE_VERSION = 1
#: Profiles hold no pixels, but they describe one person: readable by their owner only.
PROFILE_MODE = 0o600
ENROL_HINT = "enrol again with `fer-edge enrol --source SRC --profile FILE --model MODEL`"


class ProfileError(EdgeRuntimeError):
    """A profile that cannot be read, or that belongs to another model."""


@dataclass(frozen=True)
class NeutralReference:
    """The card's ``neutral_reference``: the model's mean floored log-scores on neutral faces."""

    log_scores: dict[str, float]
    floor: float
    faces: int
    split: str = "validation"


@dataclass(frozen=True)
class Profile:
    """One person's neutral face as one model saw it: the mean floored log-scores per label."""

    name: str
    model_sha256: str
    labels: tuple[str, ...]
    log_scores: dict[str, float]
    floor: float
    frames: int
    created: str
    tta: str = "none"
    version: int = PROFILE_VERSION

    @property
    def reads_as(self) -> tuple[str, float]:
        """The label the enrolled face reads as, and its share of the mean scores (after the floor)."""
        probs = softmax(np.array([self.log_scores[k] for k in self.labels]))
        top = int(np.argmax(probs))
        return self.labels[top], float(probs[top])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from log-scores, along the last axis."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def floored_log(probabilities: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """``log(max(p, floor))``, elementwise."""
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), floor))


def shifted(probabilities: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``softmax(log(p) - shift)``, i.e. ``p * exp(-shift)`` renormalised: the calibrated scores (rows of
    ``probabilities``). A zero shift returns ``probabilities`` (normalised) unchanged."""
    weighted = np.asarray(probabilities, dtype=np.float64) * np.exp(-np.asarray(shift, dtype=np.float64))
    return weighted / np.maximum(weighted.sum(axis=-1, keepdims=True), np.finfo(np.float64).tiny)


def mean_log_scores(probabilities: np.ndarray, labels: tuple[str, ...], floor: float = FLOOR) -> dict[str, float]:
    """The per-label mean of the floored log-scores of ``probabilities`` (one row per face)."""
    means = floored_log(np.atleast_2d(probabilities), floor).mean(axis=0)
    return {label: float(v) for label, v in zip(labels, means, strict=True)}


def make_profile(probabilities: np.ndarray, labels: tuple[str, ...], model_sha256: str, name: str,
                 tta: str = "none") -> Profile:
    """The profile of the faces in ``probabilities`` (one row per frame)."""
    return Profile(name=name, model_sha256=model_sha256, labels=tuple(labels),
                   log_scores=mean_log_scores(probabilities, labels), floor=FLOOR, frames=len(probabilities),
                   created=datetime.now(UTC).isoformat(timespec="seconds"), tta=tta)


def write_profile(profile: Profile, path: str | os.PathLike) -> None:
    """Write ``profile`` as JSON, atomically, mode 0600."""
    data = json.dumps(to_json(profile), indent=2) + "\n"
    atomic_write_bytes(path, data.encode("utf-8"), mode=PROFILE_MODE)


def _check_scores(scores: dict[str, float], labels: tuple[str, ...], what: str) -> None:
    if tuple(scores) != tuple(labels):
        raise ValueError(f"{what} has labels {', '.join(scores)}, not the model's {', '.join(labels)}")
    if not all(np.isfinite(v) and v <= 0 for v in scores.values()):
        raise ValueError(f"{what} holds a log-score that is not a finite number <= 0")


def load_profile(path: str | os.PathLike) -> Profile:
    """Read and check a profile; one :class:`ProfileError` line when it is unreadable or malformed."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        profile = from_json(Profile, raw, "profile")
        if profile.version != PROFILE_VERSION:
            raise ValueError(f"version {profile.version} is not {PROFILE_VERSION}")
        if not (0 < profile.floor < 1) or profile.frames < 1:
            raise ValueError("its floor must be in (0, 1) and its frames at least 1")
        _check_scores(profile.log_scores, profile.labels, "it")
    except FileNotFoundError:
        raise ProfileError(f"--profile {path} not found; {ENROL_HINT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SchemaError, ValueError, TypeError) as exc:
        raise ProfileError(f"--profile {path} is not a valid profile ({exc}); {ENROL_HINT}") from exc
    return profile


def neutral_reference(card: ModelCard) -> NeutralReference | None:
    """The card's neutral reference, checked against its labels; ``None`` when the card has none."""
    reference = card_section(card, REFERENCE_SECTION, NeutralReference)
    if reference is None:
        return None
    try:
        _check_scores(reference.log_scores, tuple(card.labels), f"{REFERENCE_SECTION}")
        if not (0 < reference.floor < 1) or reference.faces < 1:
            raise ValueError(f"{REFERENCE_SECTION}.floor must be in (0, 1) and .faces at least 1")
    except ValueError as exc:
        raise ModelCardError(f"model card {card.path}: {exc}; re-create it with `python -m convert`") from exc
    return reference


class Calibration:
    """A profile checked against the model it is applied to, ready to re-score faces.

    Raises :class:`ProfileError` when the profile was enrolled with another model (its sha256 or its
    labels differ) or the model's card has no neutral reference."""

    def __init__(self, profile: Profile, card: ModelCard, model_sha256: str, alpha: float = ALPHA) -> None:
        if profile.model_sha256 != model_sha256:
            raise ProfileError(f"profile {profile.name!r} was enrolled with another model (sha256 "
                               f"{profile.model_sha256[:12]}…, this one is {model_sha256[:12]}…); {ENROL_HINT}")
        if tuple(profile.labels) != tuple(card.labels):
            raise ProfileError(f"profile {profile.name!r} has labels {', '.join(profile.labels)}, the model "
                               f"{', '.join(card.labels)}; {ENROL_HINT}")
        reference = neutral_reference(card)
        if reference is None:
            raise ProfileError(f"model card {card.path} has no {REFERENCE_SECTION}, so a profile cannot be "
                               "applied; re-create the card with `python -m convert.neutral_reference`")
        if reference.floor != profile.floor:
            raise ProfileError(f"profile {profile.name!r} floors scores at {profile.floor:g}, the card's reference "
                               f"at {reference.floor:g}; {ENROL_HINT}")
        self.profile = profile
        self.labels = tuple(card.labels)
        self.floor = profile.floor
        self.shift = alpha * (np.array([profile.log_scores[k] for k in self.labels])
                              - np.array([reference.log_scores[k] for k in self.labels]))

    @property
    def name(self) -> str:
        """The profile's name, carried by every calibrated face."""
        return self.profile.name

    def probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows in the model's label order)."""
        return shifted(probabilities, self.shift)

    def expression(self, expression: Expression, min_confidence: float = 0.0) -> Expression:
        """``expression`` re-scored: calibrated label and scores, the raw scores and the profile's name."""
        raw = np.array([expression.scores[k] for k in self.labels])
        calibrated = self.probabilities(raw)
        top = int(np.argmax(calibrated))
        label = self.labels[top] if calibrated[top] >= min_confidence else None
        return replace(expression, label=label, scores=dict(zip(self.labels, map(float, calibrated), strict=True)),
                       raw_scores=dict(expression.scores), profile=self.name)


def profile_summary(profile: Profile) -> dict[str, Any]:
    """What ``fer-edge enrol`` prints about a profile it wrote."""
    label, share = profile.reads_as
    return {"profile": profile.name, "frames": profile.frames, "reads_as": label, "share": round(share, 3),
            "model_sha256": profile.model_sha256}
