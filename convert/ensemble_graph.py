"""The fused ensemble graph: several trained models, each on the face and on its mirror image, averaged with
fixed weights inside one Keras model, so one int8 file carries it all.

The optional per-class bias acts on each member's log-probabilities, ``softmax(logits + bias)``: it is folded
into each member's output layer, so the graph needs no division (which older TFLite runtimes, such as the
Task Library's, cannot run in int8) and every member's output still sums to 1.
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
        return ops.split(x, 2, axis=0)             # a static split: no shape arithmetic in the graph

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape), tuple(input_shape)]


@keras.saving.register_keras_serializable(PACKAGE)
class WeightedMean(keras.layers.Layer):
    """``sum_k weights[k] * branch_k`` over the branches' probabilities (weights summing to 1)."""

    def __init__(self, weights: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.branch_weights = [float(w) for w in weights]

    def call(self, branches):
        stacked = ops.stack(branches, axis=1)                          # N x K x C
        return ops.sum(stacked * np.asarray(self.branch_weights, np.float32)[None, :, None], axis=1)

    def get_config(self):
        return {**super().get_config(), "weights": self.branch_weights}


def build_fused(members: Sequence[keras.Model], weights: Sequence[float], bias: Sequence[float] | None,
                name: str) -> keras.Model:
    """One model: every member on the face and on its mirror image, mixed by ``weights`` (summing to 1), each
    member's output shifted by ``bias`` (one value per class on the log-probabilities; ``None`` for none),
    which is folded into the member (changed in place)."""
    from train.selection import fold_class_bias

    if len(members) != len(weights):
        raise ValueError(f"{len(members)} members but {len(weights)} weights")
    height, width, channels = (int(v) for v in members[0].input_shape[1:])
    inputs = keras.Input((height, width, channels), name="pixels")
    both = FaceAndMirror(name="face_and_mirror")(inputs)               # 2N faces: the N faces, then mirrored
    branches = []
    for i, member in enumerate(members):
        if bias is not None and np.any(np.asarray(bias) != 0):
            fold_class_bias(member, np.asarray(bias, np.float32))
        member.name = f"member{i + 1}_{member.name}"                    # nested models need unique names
        branches += HalveBatch(name=f"member{i + 1}_views")(member(both))
    branch_weights = np.repeat(np.asarray(weights, np.float64) / 2, 2)  # the two views of a member alike
    outputs = WeightedMean(branch_weights.tolist(), name="probabilities")(branches)
    return keras.Model(inputs, outputs, name=name)


def shifted(probs: np.ndarray, bias: Sequence[float] | None) -> np.ndarray:
    """``softmax(log(probs) + bias)``: a member's probabilities with the bias folded in."""
    if bias is None or not np.any(np.asarray(bias) != 0):
        return probs
    scaled = probs * np.exp(np.asarray(bias))
    return scaled / scaled.sum(axis=1, keepdims=True)


def blend(probs: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float],
          bias: Sequence[float] | None = None) -> np.ndarray:
    """What :func:`build_fused` computes, from each member's ``(face, mirror)`` probabilities (numpy)."""
    return sum(w * (shifted(p, bias) + shifted(q, bias)) / 2 for w, (p, q) in zip(weights, probs, strict=True))
