"""The fused ensemble graph: several trained models, each on the face and on its mirror image (and, with a
zoom, on the face's enlarged centre and its mirror), averaged with fixed weights inside one Keras model, so
one int8 file carries it all.

The optional per-class bias acts on each member's log-probabilities, ``softmax(logits + bias)``: it is folded
into each member's output layer, so the graph needs no division (which older TFLite runtimes, such as the
Task Library's, cannot run in int8) and every member's output still sums to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from train.views import face_views, view_count

PACKAGE = "fer_edge_ensemble"


@keras.saving.register_keras_serializable(PACKAGE)
class FaceViews(keras.layers.Layer):
    """``N`` faces as one batch of every view: the faces, then mirrored left to right; with ``zoom``, then
    their centre enlarged ``zoom`` times (bilinear), then that mirrored (``V*N x H x W x C``). Each member
    runs once, on every view, and its weights are stored once."""

    def __init__(self, zoom: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.zoom = None if zoom is None else float(zoom)

    @property
    def count(self) -> int:
        """How many views each face gets."""
        return view_count(self.zoom)

    def call(self, x):
        return ops.concatenate(face_views(x, self.zoom), axis=0)

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] * self.count
        return (batch, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "zoom": self.zoom}


@keras.saving.register_keras_serializable(PACKAGE)
class SplitViews(keras.layers.Layer):
    """A ``V*N`` batch as its ``V`` views' outputs, in :class:`FaceViews`' order."""

    def __init__(self, count: int, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, x):
        return ops.split(x, self.count, axis=0)    # a static split: no shape arithmetic in the graph

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape)] * self.count

    def get_config(self):
        return {**super().get_config(), "count": self.count}


def view_images(faces: np.ndarray, zoom: float | None) -> list[np.ndarray]:
    """Every view :class:`FaceViews` gives ``faces`` (``N x H x W``, any dtype), as float32 ``N x H x W``."""
    layer = FaceViews(zoom)
    views = np.asarray(layer(faces.astype(np.float32)[..., None]))
    return [v[..., 0] for v in np.split(views, layer.count)]


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
                name: str, zoom: float | None = None) -> keras.Model:
    """One model: every member on every view of :class:`FaceViews` (the face and its mirror image; with
    ``zoom``, also the enlarged centre and its mirror), its views averaged, mixed by ``weights`` (summing to
    1), each member's output shifted by ``bias`` (one value per class on the log-probabilities; ``None`` for
    none), which is folded into the member (changed in place)."""
    from train.selection import fold_class_bias

    if len(members) != len(weights):
        raise ValueError(f"{len(members)} members but {len(weights)} weights")
    height, width, channels = (int(v) for v in members[0].input_shape[1:])
    inputs = keras.Input((height, width, channels), name="pixels")
    views = FaceViews(zoom, name="face_views")
    every_view = views(inputs)                                         # V*N faces, view after view
    branches = []
    for i, member in enumerate(members):
        if bias is not None and np.any(np.asarray(bias) != 0):
            fold_class_bias(member, np.asarray(bias, np.float32))
        member.name = f"member{i + 1}_{member.name}"                    # nested models need unique names
        branches += SplitViews(views.count, name=f"member{i + 1}_views")(member(every_view))
    branch_weights = np.repeat(np.asarray(weights, np.float64) / views.count, views.count)  # views alike
    outputs = WeightedMean(branch_weights.tolist(), name="probabilities")(branches)
    return keras.Model(inputs, outputs, name=name)


def shifted(probs: np.ndarray, bias: Sequence[float] | None) -> np.ndarray:
    """``softmax(log(probs) + bias)``: a member's probabilities with the bias folded in."""
    if bias is None or not np.any(np.asarray(bias) != 0):
        return probs
    scaled = probs * np.exp(np.asarray(bias))
    return scaled / scaled.sum(axis=1, keepdims=True)


def blend(probs: Sequence[Sequence[np.ndarray]], weights: Sequence[float],
          bias: Sequence[float] | None = None) -> np.ndarray:
    """What :func:`build_fused` computes, from each member's probabilities on each view (numpy)."""
    return sum(w * np.mean([shifted(p, bias) for p in views], axis=0)
               for w, views in zip(weights, probs, strict=True))
