"""Validation against both label sets each epoch, with the FER+ prior optionally divided out.

FER+ annotators call many mildly sad faces neutral, so a model trained on their votes learns
a heavy neutral prior. Logit adjustment divides a share ``tau`` of the training prior out of
the model's output: ``softmax(logits - tau * log prior)``. It is folded into the output
layer's bias of the exported model (:func:`fold_into_bias`), so every runtime and every
.tflite variant returns the same adjusted probabilities and the card stays the one contract.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from edge_runtime.labelled_faces.scoring import ScoredFaces

from .label_sources import accuracies, adjust_for_prior, selection_score

log = logging.getLogger(__name__)

OUTPUT_LAYER = "probabilities"


def consensus_recalls(predicted: np.ndarray, faces: ScoredFaces) -> np.ndarray:
    """Recall of each class on the consensus faces (FER2013 label = FER+ majority); NaN where a class has none."""
    labels = faces.label_sets().get("consensus", faces.fer2013)
    return np.array([(predicted[labels == i] == i).mean() if (labels == i).any() else np.nan
                     for i in range(len(faces.classes))])


@dataclass(frozen=True)
class RecallGuard:
    """Clear expressions must not be lost: every class's consensus recall on validation stays within
    ``margin`` (a fraction) of a reference model's (``--guard MODEL``) on the same faces."""

    reference: np.ndarray
    margin: float

    def shortfall(self, recalls: np.ndarray) -> float:
        """How far the worst class falls below its floor (0 when every class is within the margin)."""
        gap = np.nan_to_num(self.reference - self.margin - recalls, nan=0.0)
        return float(max(gap.max(), 0.0))


class LabelSetValidation(keras.callbacks.Callback):
    """Adds ``val_accuracy_<label set>`` to each epoch's logs and sets ``val_accuracy`` to the
    selection criterion, at the best ``tau`` of ``taus`` (logged as ``val_prior_tau``).

    With a :class:`RecallGuard`, only a ``tau`` that keeps every class's consensus recall within the
    guard's margin counts; an epoch where none does scores ``-shortfall`` (``val_guard_shortfall``), so
    any epoch within the guard beats every epoch outside it. Put it first in the callback list:
    checkpoints and the CSV log read what it writes.

    ``float32_twin`` builds the same architecture in float32: when the model trains in mixed
    precision, each epoch's weights are scored in that twin, as the shipped (float32) model will be.
    """

    def __init__(self, faces: ScoredFaces, prior: np.ndarray, taus: tuple[float, ...], select: str,
                 guard: RecallGuard | None = None, batch_size: int = 256,
                 float32_twin: Callable[[], keras.Model] | None = None):
        super().__init__()
        self.faces, self.prior, self.taus, self.select, self.batch_size = faces, prior, taus, select, batch_size
        self.guard = guard
        self.float32_twin, self._twin = float32_twin, None

    def scoring_model(self) -> keras.Model:
        """The model to score: the trained one, or its float32 twin holding the same weights."""
        if self.float32_twin is None or getattr(self.model, "compute_dtype", "float32") == "float32":
            return self.model
        if self._twin is None:
            self._twin = self.float32_twin()
        self._twin.set_weights(self.model.get_weights())
        return self._twin

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        x = self.faces.images.astype(np.float32)[..., None]
        probs = np.asarray(self.scoring_model().predict(x, batch_size=self.batch_size, verbose=0), np.float64)
        best = None
        for tau in self.taus:
            predicted = adjust_for_prior(probs, self.prior, tau).argmax(1)
            acc = accuracies(predicted, self.faces)
            score = selection_score(acc, self.select)
            shortfall = 0.0 if self.guard is None else self.guard.shortfall(consensus_recalls(predicted, self.faces))
            key = score if shortfall == 0 else -shortfall
            if best is None or key > best[0]:
                best = (key, tau, acc, shortfall)
        key, tau, acc, shortfall = best
        for name, value in acc.items():
            logs[f"val_accuracy_{name}"] = value
        logs["val_prior_tau"] = tau
        if self.guard is not None:
            logs["val_guard_shortfall"] = shortfall
        logs["val_accuracy"] = key


BIAS_STEPS = tuple(round(0.1 * i, 1) for i in range(-10, 11))   # -1.0 .. 1.0 in log-probability


def fit_class_bias(probs: np.ndarray, faces: ScoredFaces, select: str, guard: RecallGuard | None,
                   steps: tuple[float, ...] = BIAS_STEPS, rounds: int = 4) -> np.ndarray:
    """One additive bias per class on the log-probabilities, chosen on ``faces`` by coordinate ascent:
    the best selection score among the biases that keep the guard (the first class stays at 0, as a
    softmax ignores a common shift). A bias only moves when it gains at least one face."""
    logp = np.log(np.maximum(np.asarray(probs, np.float64), 1e-12))
    one_face = 0.5 / max(len(faces), 1)

    def key(bias: np.ndarray) -> float:
        predicted = (logp + bias).argmax(1)
        shortfall = 0.0 if guard is None else guard.shortfall(consensus_recalls(predicted, faces))
        return selection_score(accuracies(predicted, faces), select) if shortfall == 0 else -shortfall

    return ascend_bias(key, logp.shape[1], one_face, steps, rounds)


def ascend_bias(key: Callable[[np.ndarray], float], classes: int, one_face: float,
                steps: tuple[float, ...] = BIAS_STEPS, rounds: int = 4) -> np.ndarray:
    """Coordinate ascent of one bias per class on ``key`` (higher is better): the first class stays at 0,
    each step tried smallest first, and a move must gain more than ``one_face``."""
    bias = np.zeros(classes)
    best = key(bias)
    for _ in range(rounds):
        moved = False
        for c in range(1, classes):
            for step in sorted(steps, key=abs):
                trial = bias.copy()
                trial[c] = step
                score = key(trial)
                if score > best + one_face:
                    best, bias, moved = score, trial, True
        if not moved:
            break
    return bias


def fold_class_bias(model: keras.Model, bias: np.ndarray) -> None:
    """Add ``bias`` (one value per class) to the output layer's bias: ``softmax(logits + bias)``."""
    layer = model.get_layer(OUTPUT_LAYER)
    kernel, current = layer.get_weights()
    layer.set_weights([kernel, (current + bias).astype(current.dtype)])


def apply_class_bias(model: keras.Model, faces: ScoredFaces, select: str,
                     guard: RecallGuard | None) -> tuple[np.ndarray, float | None]:
    """Choose the per-class bias on ``faces`` (:func:`fit_class_bias`) and fold it into ``model``; returns the
    bias and the guard's shortfall with it folded in (``None`` without a guard)."""
    x = faces.images.astype(np.float32)[..., None]
    bias = fit_class_bias(np.asarray(model.predict(x, batch_size=256, verbose=0)), faces, select, guard)
    fold_class_bias(model, bias)
    log.info("class bias chosen on validation: %s", ", ".join(f"{c} {b:+.1f}" for c, b in zip(faces.classes, bias,
                                                                                                strict=True)))
    if guard is None:
        return bias, None
    predicted = np.asarray(model.predict(x, batch_size=256, verbose=0)).argmax(1)
    return bias, guard.shortfall(consensus_recalls(predicted, faces))


def class_prior(targets: np.ndarray) -> np.ndarray:
    """The training prior: the mean target of each class."""
    return targets.mean(axis=0).astype(np.float64)


def fold_into_bias(model: keras.Model, prior: np.ndarray, tau: float) -> None:
    """Subtract ``tau * log(prior)`` from the output layer's bias (logit adjustment inside the graph)."""
    if tau == 0:
        return
    layer = model.get_layer(OUTPUT_LAYER)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, (bias - tau * np.log(np.maximum(prior, 1e-12))).astype(bias.dtype)])
