"""Model builders. Every model takes raw grayscale pixels (48x48x1, values 0..255) and
normalizes inside its own graph; it outputs one probability per label.

- ``edge``: our CNN for int8 LiteRT/XNNPACK on ARM CPUs: plain 3x3 convolutions, BatchNorm
  (folded by the converter), ReLU, max pooling, global average pooling and one dense layer.
- ``edge-fast``: the same at half the width (a quarter of the MACs), for the fast fer4s.
- ``edge-small``: the same at a quarter of the width, for tests and quick experiments.
- ``edge-sep``: depthwise-separable residual blocks (MobileNet-style) at a fraction of ``edge``'s MACs.
- ``baseline``: the "custom CNN" family of earlier student projects (stacked Conv-BN-ReLU
  blocks with max pooling and dropout, a large dense head, about 6M parameters), for comparison.
- ``lite0`` (EfficientNet-Lite0, ``train.lite0``) and ``vgg16``, ``resnet50``, ``efficientnetb0``
  (``train.applications``): transfer learning from ImageNet, at an internal ``resolution``.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from edge_runtime.labelled_faces.loading import IMAGE_SIZE

from . import applications, lite0, pretrained

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)


def _conv_bn_relu(x, filters: int, name: str, kernel: int = 3):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    # The pixel contract: raw 0..255 in, normalized to [-1, 1] here, inside the graph.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inputs)
    return inputs, x


def build_edge(num_classes: int, width: int = 32, dropout: float = 0.4) -> keras.Model:
    """Our edge CNN: four stages of two 3x3 Conv-BN-ReLU each, widths w, 2w, 4w, 8w, max pooling
    between stages, global average pooling and one dense layer (117M MACs, 1.2M parameters at w=32).

    Plain 3x3 convolutions run in int8 on XNNPACK and train fast with TensorFlow on a CPU (in a
    one-off probe on the 2-core dev machine, a depthwise-separable variant trained 1.3x slower per
    image for 2.6x fewer MACs). BatchNorm folds into the convolutions at conversion.
    """
    inputs, x = _inputs()
    for stage, filters in enumerate((width, 2 * width, 4 * width, 8 * width), start=1):
        x = _conv_bn_relu(x, filters, f"s{stage}a")
        x = _conv_bn_relu(x, filters, f"s{stage}b")
        if stage < 4:
            x = layers.MaxPooling2D(name=f"s{stage}_pool")(x)        # 48 -> 24 -> 12 -> 6
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="fer_edge")


def _separable_block(x, filters: int, name: str):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN; a residual add when the width is unchanged, then ReLU."""
    shortcut = x
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
    if shortcut.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu")(x)


def build_edge_sep(num_classes: int, width: int = 48, dropout: float = 0.3) -> keras.Model:
    """A depthwise-separable CNN: a 3x3 stem, then four stages of two separable blocks at widths
    w, 2w, 4w, 8w (48, 24, 12 and 6 px, max pooling between), global average pooling and one dense
    layer (0.32M parameters, 39M MACs at w=48, a third of ``edge``'s). Every 3x3 filter is depthwise, so
    nearly all MACs are 1x1 convolutions, which XNNPACK runs well in int8.
    """
    inputs, x = _inputs()
    x = _conv_bn_relu(x, width, "stem")
    for stage, filters in enumerate((width, 2 * width, 4 * width, 8 * width), start=1):
        x = _separable_block(x, filters, f"s{stage}a")
        x = _separable_block(x, filters, f"s{stage}b")
        if stage < 4:
            x = layers.MaxPooling2D(name=f"s{stage}_pool")(x)        # 48 -> 24 -> 12 -> 6
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="fer_edge_sep")


def build_baseline(num_classes: int, dropout: float = 0.4) -> keras.Model:
    """The earlier projects' custom CNN family: VGG-like blocks and a wide dense head (~6M params)."""
    inputs, x = _inputs()
    for i, filters in enumerate((64, 128, 256, 512)):
        x = _conv_bn_relu(x, filters, f"b{i}a")
        x = _conv_bn_relu(x, filters, f"b{i}b")
        x = layers.MaxPooling2D(name=f"b{i}_pool")(x)
        x = layers.Dropout(0.25, name=f"b{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, use_bias=False, name="fc1")(x)
    x = layers.BatchNormalization(name="fc1_bn")(x)
    x = layers.ReLU(name="fc1_relu")(x)
    x = layers.Dropout(dropout, name="fc1_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="fer_baseline")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "edge": build_edge,
    "edge-fast": lambda n: build_edge(n, width=16, dropout=0.3),
    "edge-small": lambda n: build_edge(n, width=8, dropout=0.2),
    "edge-sep": build_edge_sep,
    "baseline": build_baseline,
    "lite0": lite0.build_lite0,
    **{name: (lambda n, name=name, **options: applications.build_application(name, n, **options))
       for name in applications.APPLICATIONS},
}
# Architectures with a pretrained backbone: they take ``weights`` and ``resolution``.
TRANSFER_ARCHITECTURES = pretrained.TRANSFER_ARCHITECTURES
# The layers a frozen warm-up trains (everything else is the backbone).
HEAD_LAYERS = ("probabilities",)


def build_model(arch: str, num_classes: int, weights: str = "none", resolution: int | None = None) -> keras.Model:
    """Build the named architecture for ``num_classes`` outputs.

    ``weights`` (``none``, ``imagenet`` or a file) and ``resolution`` (the backbone's input size,
    default 96) apply to the transfer architectures only.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if arch in TRANSFER_ARCHITECTURES:
        return ARCHITECTURES[arch](num_classes, weights=weights, resolution=resolution or lite0.DEFAULT_RESOLUTION)
    if weights != "none" or resolution:
        raise ValueError(f"--weights and --resolution apply to {', '.join(TRANSFER_ARCHITECTURES)}, not {arch}")
    return ARCHITECTURES[arch](num_classes)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates for one face through the model's conv and dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += h * w * c_out * c_in * kh * kw
        elif isinstance(layer, layers.Dense):
            total += int(layer.input.shape[-1]) * int(layer.units)
    return int(total)
