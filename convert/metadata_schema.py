"""The few tables of the TFLite Model Metadata schema we write, built with the ``flatbuffers`` Builder.

The schema is ``metadata_schema.fbs`` of tensorflow/tflite-support (also shipped by MediaPipe as
``mediapipe/tasks/metadata/metadata_schema.fbs``); slot numbers below are the field positions of
its tables (a union takes two slots: its type, then its value). Writing these few tables by hand
avoids tflite-support, whose protobuf 3.20 pin clashes with TensorFlow in one environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flatbuffers

FILE_IDENTIFIER = b"M001"
#: The schema version whose features we use (names, image properties, normalization, label files).
MIN_PARSER_VERSION = "1.0.0"
COLOR_SPACES = {"RGB": 1, "GRAYSCALE": 2}
TENSOR_AXIS_LABELS = 2
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2      # union ContentProperties
_NORMALIZATION_OPTIONS = 1                          # union ProcessUnitOptions


@dataclass(frozen=True)
class ImageInput:
    """The input tensor: an image of ``color_space``, normalized as ``(pixel - mean) / std`` if float."""

    name: str
    description: str
    color_space: str
    mean: float | None = None
    std: float | None = None
    value_min: float | None = None
    value_max: float | None = None


@dataclass(frozen=True)
class ProbabilityOutput:
    """The output tensor: one score per label of the associated label file."""

    name: str
    description: str
    labels_file: str
    labels_description: str


@dataclass(frozen=True)
class ModelInfo:
    """The model-level fields of the metadata."""

    name: str
    description: str
    version: str
    author: str
    license: str
    image: ImageInput
    output: ProbabilityOutput


def _vector(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder: flatbuffers.Builder, values: Sequence[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def _table(builder: flatbuffers.Builder, n_slots: int, offsets: dict[int, int],
           bytes_: dict[int, int] | None = None) -> int:
    """A table of ``n_slots`` fields: ``offsets`` (slot -> offset), ``bytes_`` (slot -> byte value)."""
    builder.StartObject(n_slots)
    for slot, offset in offsets.items():
        builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, value in (bytes_ or {}).items():
        builder.PrependInt8Slot(slot, value, 0)
    return builder.EndObject()


def _stats(builder: flatbuffers.Builder, low: float, high: float) -> int:
    return _table(builder, 2, {0: _floats(builder, [high]), 1: _floats(builder, [low])})


def _input_tensor(builder: flatbuffers.Builder, image: ImageInput) -> int:
    name, description = builder.CreateString(image.name), builder.CreateString(image.description)
    properties = _table(builder, 2, {}, {0: COLOR_SPACES[image.color_space]})
    content = _table(builder, 3, {1: properties}, {0: _IMAGE_PROPERTIES})
    fields = {0: name, 1: description, 3: content}
    if image.mean is not None and image.std is not None:
        options = _table(builder, 2, {0: _floats(builder, [image.mean]), 1: _floats(builder, [image.std])})
        unit = _table(builder, 2, {1: options}, {0: _NORMALIZATION_OPTIONS})
        fields[4] = _vector(builder, [unit])
    if image.value_min is not None and image.value_max is not None:
        fields[5] = _stats(builder, image.value_min, image.value_max)
    return _table(builder, 7, fields)


def _output_tensor(builder: flatbuffers.Builder, output: ProbabilityOutput) -> int:
    name, description = builder.CreateString(output.name), builder.CreateString(output.description)
    file_name, file_description = builder.CreateString(output.labels_file), builder.CreateString(
        output.labels_description)
    labels = _table(builder, 5, {0: file_name, 1: file_description}, {2: TENSOR_AXIS_LABELS})
    content = _table(builder, 3, {1: _table(builder, 0, {})}, {0: _FEATURE_PROPERTIES})
    fields = {0: name, 1: description, 3: content, 5: _stats(builder, 0.0, 1.0), 6: _vector(builder, [labels])}
    return _table(builder, 7, fields)


def build(info: ModelInfo) -> bytes:
    """The ``ModelMetadata`` flatbuffer (file identifier ``M001``) of ``info``."""
    builder = flatbuffers.Builder(1024)
    inp = _input_tensor(builder, info.image)
    out = _output_tensor(builder, info.output)
    subgraph = _table(builder, 10, {2: _vector(builder, [inp]), 3: _vector(builder, [out])})
    strings = {slot: builder.CreateString(text) for slot, text in
               ((0, info.name), (1, info.description), (2, info.version), (4, info.author),
                (5, info.license), (7, MIN_PARSER_VERSION))}
    root = _table(builder, 8, {**strings, 3: _vector(builder, [subgraph])})
    builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
