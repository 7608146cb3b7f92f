"""The earlier projects' transfer-learning systems, VGG16, ResNet50 and EfficientNetB0 from
``keras.applications``, behind the project's I/O contract.

Raw 48x48x1 pixels (0..255) in; inside the graph they are resized to ``resolution``, copied to three
channels and given the preprocessing each network was trained with on ImageNet; then the backbone,
global average pooling, dropout and a softmax ``probabilities`` layer. The backbone's layers are part
of the model itself (not a nested model), so freezing, MAC counting and warm starts see each one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import keras
from keras import layers

from .errors import UserError
from .lite0 import DEFAULT_RESOLUTION, contract_inputs

# VGG16's and ResNet50's ImageNet preprocessing ("caffe"): RGB to BGR, minus this mean per channel. On a
# gray face the three channels are equal, so the channel swap changes nothing.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _constructors() -> dict[str, Callable[..., keras.Model]]:
    return {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50,
            "efficientnetb0": keras.applications.EfficientNetB0}


APPLICATIONS = ("vgg16", "resnet50", "efficientnetb0")
# Keras' no-top ImageNet weights files, for the error that asks for --weights PATH.
NOTOP_FILES = {"vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
               "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
               "efficientnetb0": "efficientnetb0_notop.h5"}


def _preprocess(name: str, resolution: int):
    """The contract's input and the tensor the ``name`` backbone expects (its own ImageNet preprocessing)."""
    if name == "efficientnetb0":                    # rescales and normalizes 0..255 itself
        return contract_inputs(resolution)
    return contract_inputs(resolution, 1.0, tuple(-m for m in CAFFE_MEAN_BGR))


def resolve_weights(name: str, weights: str) -> str | None:
    """``none`` -> no weights, ``imagenet`` -> Keras' download, anything else -> a weights file path."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    if not Path(weights).is_file():
        raise UserError(f"--weights {weights}: file not found (give the {name} no-top .h5 weights file)")
    return str(weights)


@contextlib.contextmanager
def _download_returns(path: str | None) -> Iterator[None]:
    """Within, Keras' download of the ImageNet weights returns the local file ``path`` (when given).

    A file is then loaded exactly as the downloaded one would be (EfficientNetB0 adds a layer for
    ImageNet weights that it leaves out for any other weights file).
    """
    if path is None:
        yield
        return
    from keras.src.utils import file_utils

    with mock.patch.object(file_utils, "get_file", return_value=path):
        yield


def build_application(name: str, num_classes: int, weights: str = "none",
                      resolution: int = DEFAULT_RESOLUTION, dropout: float = 0.3) -> keras.Model:
    """``name`` (vgg16, resnet50, efficientnetb0) with a new head for ``num_classes``.

    ``weights``: ``none``, ``imagenet`` (Keras downloads the weights on first use) or the path of the
    file that download would bring (the application's no-top ``.h5``, see ``NOTOP_FILES``).
    """
    if name not in APPLICATIONS:
        raise ValueError(f"unknown application {name!r}; choose one of {', '.join(APPLICATIONS)}")
    inputs, x = _preprocess(name, resolution)
    source = resolve_weights(name, weights)
    local = source if source not in (None, "imagenet") else None
    try:
        with _download_returns(local):
            base = _constructors()[name](include_top=False, weights=source and "imagenet", input_tensor=x)
    except Exception as exc:  # a failed download surfaces as many exception types
        if source != "imagenet":
            raise UserError(f"--weights {weights} does not fit {name}: {str(exc).splitlines()[0][:200]}") from exc
        raise UserError(f"--weights imagenet: could not download the {name} ImageNet weights (no internet "
                        f"here?); fetch {NOTOP_FILES[name]} where there is internet and give --weights PATH "
                        "to it") from exc
    x = layers.GlobalAveragePooling2D(name="gap")(base.output)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"fer_{name}")
