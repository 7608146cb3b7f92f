"""EfficientNet-Lite0 behind the project's I/O contract, with ImageNet weights read without PyTorch.

Lite0 as defined by its authors: EfficientNet-B0's blocks with ReLU6 instead of swish, no
squeeze-and-excite, and a stem and head that are not scaled. Inside the graph the raw 48x48x1
pixels (0..255) are resized to ``resolution``, normalized the way the Lite models were trained on
ImageNet, ``(pixel - 127) / 128``, and copied to three channels.
Layer names follow the PyTorch state dict (``_blocks.N._depthwise_conv`` is ``block{N}_dw_conv``).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from edge_runtime.labelled_faces.loading import IMAGE_SIZE

from . import pretrained
from .errors import UserError

DEFAULT_RESOLUTION = pretrained.DEFAULT_RESOLUTION
LITE_MEAN, LITE_STD = 127.0, 128.0
# (repeats, kernel, first stride, expansion, output channels) per stage, input 32 channels from the stem.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
BN = {"epsilon": 1e-3, "momentum": 0.99}


def resize(x, resolution: int):
    """Bilinear resize to ``resolution`` (Keras' ``Resizing``, as ``tf.image.resize``).

    Called with ``training=False``: ``Resizing`` defaults to ``training=True``, and a layer's default is
    passed on to the layers after it in a call that gives no ``training`` (as export does), which would
    put BatchNorm in training mode in the converted model. Inside ``fit`` the run's ``training=True``
    still reaches every layer.
    """
    return layers.Resizing(resolution, resolution, interpolation="bilinear", name="resize")(x, training=False)


def contract_inputs(resolution: int, scale: float | tuple[float, ...] = 1.0, offset: float | tuple[float, ...] = 0.0,
                    name: str = "pixels") -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Raw 48x48x1 pixels in; out, resized to ``resolution``, three channels of ``pixel * scale + offset``
    (one value for every channel, or one per channel).

    Weightless layers only, so a pretrained backbone's weight file still lines up with its layers. The
    first op scales to 0..1: a resize shares its input's int8 range, and as the first op it could narrow
    the input's range below 0..255 (the int8 input stays ``pixel - 128``).
    """
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name=name)
    x = layers.Rescaling(1.0 / 255.0, name="unit_range")(inputs)
    x = resize(x, resolution)
    scales = scale if isinstance(scale, tuple) else (scale,) * 3
    offsets = offset if isinstance(offset, tuple) else (offset,) * 3
    if len(set(zip(scales, offsets, strict=True))) == 1:
        x = layers.Rescaling(255.0 * scales[0], offset=offsets[0], name="normalize")(x)
        return inputs, layers.Concatenate(name="gray_to_rgb")([x, x, x])
    channels = [layers.Rescaling(255.0 * s, offset=o, name=f"normalize_{c}")(x)
                for c, s, o in zip("rgb", scales, offsets, strict=True)]
    return inputs, layers.Concatenate(name="gray_to_rgb")(channels)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True, depthwise: bool = False):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """Each of Lite0's 16 MBConv blocks as (input channels, kernel, stride, expansion, output channels)."""
    specs, channels = [], STEM_CHANNELS
    for repeats, kernel, stride, expand, out in STAGES:
        for i in range(repeats):
            specs.append((channels, kernel, stride if i == 0 else 1, expand, out))
            channels = out
    return specs


def backbone(x, dropout_rate: float = 0.0):
    """Lite0's stem, 16 MBConv blocks and 1x1 head convolution; ``dropout_rate`` is stochastic depth."""
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem")
    specs = block_specs()
    for index, (cin, kernel, stride, expand, cout) in enumerate(specs):
        name = f"block{index}"
        shortcut = x
        if expand != 1:
            x = _conv_bn(x, cin * expand, 1, 1, f"{name}_expand")
        x = _conv_bn(x, cin * expand, kernel, stride, f"{name}_dw", depthwise=True)
        x = _conv_bn(x, cout, 1, 1, f"{name}_project", relu=False)
        if stride == 1 and cin == cout:
            if dropout_rate > 0:
                rate = dropout_rate * index / len(specs)
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
            x = layers.Add(name=f"{name}_add")([x, shortcut])
    return _conv_bn(x, HEAD_CHANNELS, 1, 1, "head")


def build_lite0(num_classes: int, weights: str = "none", resolution: int = DEFAULT_RESOLUTION,
                dropout: float = 0.3, drop_connect: float = 0.2, imagenet_head: bool = False) -> keras.Model:
    """Lite0 with a new head (global pooling, dropout, softmax ``probabilities``), or with ImageNet's
    1000-way ``imagenet_logits`` head (no softmax) when ``imagenet_head`` (for checking the port).

    ``weights``: ``none``, ``imagenet`` (the installed weights package) or the path of a ``.pth`` file.
    ``drop_connect``: the stochastic-depth rate of the last block (0 in the first, linear in between).
    """
    inputs, x = contract_inputs(resolution, 1.0 / LITE_STD, -LITE_MEAN / LITE_STD)
    x = backbone(x, dropout_rate=0.0 if imagenet_head else drop_connect)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if imagenet_head:
        outputs = layers.Dense(1000, name="imagenet_logits", dtype="float32")(x)
    else:
        x = layers.Dropout(dropout, name="dropout")(x)
        outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name="fer_lite0")
    if weights != "none":
        load_torch_weights(model, read_weights(weights))
    return model


def read_weights(weights: str) -> dict[str, np.ndarray]:
    """The state dict named by ``--weights``: ``imagenet`` (the weights package) or a ``.pth`` path."""
    try:
        path = pretrained.lite0_weights_path() if weights == "imagenet" else Path(weights)
        return pretrained.read_state_dict(path)
    except (FileNotFoundError, pretrained.PthError) as exc:
        raise UserError(str(exc)) from exc


def _set_bn(layer, state: dict[str, np.ndarray], prefix: str) -> None:
    layer.set_weights([state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])


def _set_conv(layer, kernel: np.ndarray) -> None:
    # PyTorch (out, in, kh, kw) -> Keras (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1).
    order = (2, 3, 0, 1) if isinstance(layer, layers.DepthwiseConv2D) else (2, 3, 1, 0)
    layer.set_weights([np.transpose(kernel, order)])


def load_torch_weights(model: keras.Model, state: dict[str, np.ndarray]) -> int:
    """Copy Lite0's PyTorch state dict into ``model``; returns the number of tensors used.

    The ImageNet classifier ``_fc`` is used only by an ``imagenet_logits`` head.
    """
    pairs = [("stem", "_conv_stem", "_bn0"), ("head", "_conv_head", "_bn1")]
    for index in range(len(block_specs())):
        torch_block = f"_blocks.{index}"
        pairs += [(f"block{index}_dw", f"{torch_block}._depthwise_conv", f"{torch_block}._bn1"),
                  (f"block{index}_project", f"{torch_block}._project_conv", f"{torch_block}._bn2")]
        if f"{torch_block}._expand_conv.weight" in state:
            pairs.append((f"block{index}_expand", f"{torch_block}._expand_conv", f"{torch_block}._bn0"))
    used = 0
    try:
        for name, conv, bn in pairs:
            _set_conv(model.get_layer(f"{name}_conv"), state[f"{conv}.weight"])
            _set_bn(model.get_layer(f"{name}_bn"), state, bn)
            used += 5
        if "imagenet_logits" in [layer.name for layer in model.layers]:
            model.get_layer("imagenet_logits").set_weights([state["_fc.weight"].T, state["_fc.bias"]])
            used += 2
    except (KeyError, ValueError) as exc:
        raise UserError(f"the weights do not fit EfficientNet-Lite0 ({type(exc).__name__}: {exc})") from exc
    return used
