"""The fused ensemble graph: several trained models, each on the face and on its mirror image, averaged with
fixed weights (and an optional per-class bias) inside one Keras model, so one int8 file carries it all.

The bias acts as on log-probabilities, ``softmax(log(mean) + bias)``, computed as
``mean * exp(bias) / sum(mean * exp(bias))``: multiplications, a sum and a division, which convert to int8.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

PACKAGE = "fer_edge_ensemble"


@keras.saving.register_keras_serializable(PACKAGE)
class FaceAndMirror(keras.layers.Layer):
    """``N`` faces followed by the same faces mirrored left to right (``2N x H x W x C``): each member then
    runs once, on both views, and its weights are stored once."""

    def call(self, x):
        return ops.concatenate([x, ops.flip(x, axis=2)], axis=0)


@keras.saving.register_keras_serializable(PACKAGE)
class HalveBatch(keras.layers.Layer):
    """A ``2N`` batch as its two halves: the faces' outputs and the mirrored faces' outputs."""

    def call(self, x):
        half = ops.shape(x)[0] // 2
        return [x[:half], x[half:]]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape), tuple(input_shape)]


@keras.saving.register_keras_serializable(PACKAGE)
class WeightedMean(keras.layers.Layer):
    """``sum_k coefficients[k] * branch_k`` over the branches' probabilities, renormalized when ``normalize``.

    ``coefficients`` is ``K x C``: branch k's weight times ``exp(bias_c)`` for class c."""

    def __init__(self, coefficients: Sequence[Sequence[float]], normalize: bool, **kwargs):
        super().__init__(**kwargs)
        self.coefficients = [list(map(float, row)) for row in coefficients]
        self.normalize = bool(normalize)

    def call(self, branches):
        stacked = ops.stack(branches, axis=1)                          # N x K x C
        mixed = ops.sum(stacked * np.asarray(self.coefficients, np.float32)[None], axis=1)
        if self.normalize:
            mixed = mixed / ops.sum(mixed, axis=-1, keepdims=True)
        return mixed

    def get_config(self):
        return {**super().get_config(), "coefficients": self.coefficients, "normalize": self.normalize}


def coefficients(weights: Sequence[float], bias: Sequence[float] | None, num_classes: int) -> np.ndarray:
    """The ``2M x C`` coefficients of M members' weights, each split evenly between the face and its mirror
    (branches in the order member 1 face, member 1 mirror, member 2 face, ...), times ``exp(bias)``."""
    scale = np.exp(np.asarray(bias, np.float64)) if bias is not None else np.ones(num_classes)
    per_branch = np.repeat(np.asarray(weights, np.float64) / 2, 2)
    return per_branch[:, None] * scale[None, :]


def build_fused(members: Sequence[keras.Model], weights: Sequence[float], bias: Sequence[float] | None,
                name: str) -> keras.Model:
    """One model: every member on the face and on its mirror image, mixed by ``weights`` (summing to 1) and
    ``bias`` (one value per class on the log-probabilities; ``None`` or zeros for none)."""
    if len(members) != len(weights):
        raise ValueError(f"{len(members)} members but {len(weights)} weights")
    height, width, channels = (int(v) for v in members[0].input_shape[1:])
    num_classes = int(members[0].output_shape[-1])
    inputs = keras.Input((height, width, channels), name="pixels")
    both = FaceAndMirror(name="face_and_mirror")(inputs)               # 2N faces: the N faces, then mirrored
    branches = []
    for i, member in enumerate(members):
        member.name = f"member{i + 1}_{member.name}"                    # nested models need unique names
        branches += HalveBatch(name=f"member{i + 1}_views")(member(both))
    has_bias = bias is not None and bool(np.any(np.asarray(bias) != 0))
    outputs = WeightedMean(coefficients(weights, bias if has_bias else None, num_classes).tolist(),
                           normalize=has_bias, name="probabilities")(branches)
    return keras.Model(inputs, outputs, name=name)


def blend(probs: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float],
          bias: Sequence[float] | None = None) -> np.ndarray:
    """What :func:`build_fused` computes, from each member's ``(face, mirror)`` probabilities (numpy)."""
    mixed = sum(w * (p + q) / 2 for w, (p, q) in zip(weights, probs, strict=True))
    if bias is None or not np.any(np.asarray(bias) != 0):
        return mixed
    scaled = mixed * np.exp(np.asarray(bias))
    return scaled / scaled.sum(axis=1, keepdims=True)
