"""Validation against both label sets each epoch, with the FER+ prior optionally divided out.

FER+ annotators call many mildly sad faces neutral, so a model trained on their votes learns
a heavy neutral prior. Logit adjustment divides a share ``tau`` of the training prior out of
the model's output: ``softmax(logits - tau * log prior)``. It is folded into the output
layer's bias of the exported model (:func:`fold_into_bias`), so every runtime and every
.tflite variant returns the same adjusted probabilities and the card stays the one contract.
"""

from __future__ import annotations

import keras
import numpy as np

from .label_sources import ScoredFaces, accuracies, adjust_for_prior, selection_score

OUTPUT_LAYER = "probabilities"


class LabelSetValidation(keras.callbacks.Callback):
    """Adds ``val_accuracy_<label set>`` to each epoch's logs and sets ``val_accuracy`` to the
    selection criterion, at the best ``tau`` of ``taus`` (logged as ``val_prior_tau``).

    Put it first in the callback list: checkpoints and the CSV log read what it writes.
    """

    def __init__(self, faces: ScoredFaces, prior: np.ndarray, taus: tuple[float, ...], select: str,
                 batch_size: int = 256):
        super().__init__()
        self.faces, self.prior, self.taus, self.select, self.batch_size = faces, prior, taus, select, batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        x = self.faces.images.astype(np.float32)[..., None]
        probs = np.asarray(self.model.predict(x, batch_size=self.batch_size, verbose=0), np.float64)
        best = None
        for tau in self.taus:
            acc = accuracies(adjust_for_prior(probs, self.prior, tau).argmax(1), self.faces)
            score = selection_score(acc, self.select)
            if best is None or score > best[0]:
                best = (score, tau, acc)
        score, tau, acc = best
        for name, value in acc.items():
            logs[f"val_accuracy_{name}"] = value
        logs["val_prior_tau"] = tau
        logs["val_accuracy"] = score


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
