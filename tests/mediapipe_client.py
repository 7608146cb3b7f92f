"""A MediaPipe Tasks client of our mobile models, run by tests/test_mobile_clients.py in .venv-mobile.

It needs only ``mediapipe`` (which brings numpy and OpenCV): no fer-edge code, so what it reads
comes from the .tflite file alone. Reads a JSON request on stdin and prints a JSON answer:

- ``{"model": PATH, "images": [PATH, ...]}``: MediaPipe's ImageClassifier on each grey image given
  as RGB; returns the category names by output index and each image's top-1 index.
- ``{"metadata": PATH}``: the model's TFLite Model Metadata, parsed with MediaPipe's generated
  schema code (an implementation independent of ``convert.metadata_schema``).
"""

from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")


def classify(model: str, images: list[str]) -> dict:
    """Top-1 of MediaPipe's ImageClassifier for each image, and its category names by index."""
    import cv2
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=-1)
    names: dict[int, str] = {}
    top1 = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            categories = result.classifications[0].categories
            names.update({c.index: c.category_name for c in categories})
            best = max(categories, key=lambda c: c.score)
            top1.append(best.index)
    return {"names": [names[i] for i in sorted(names)], "top1": top1}


def _metadata_buffer(data: bytes) -> bytes:
    """The bytes of the model buffer named TFLITE_METADATA (TFLite schema: Model.metadata is field 6)."""
    import flatbuffers
    from flatbuffers.table import Table

    def field(table: Table, slot: int) -> int:
        return table.Offset(4 + 2 * slot)

    buf = bytearray(data)
    model = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    entries, buffers = field(model, 6), field(model, 4)
    for i in range(model.VectorLen(entries)):
        entry = Table(model.Bytes, model.Indirect(model.Vector(entries) + 4 * i))
        name = entry.String(entry.Pos + field(entry, 0)).decode()
        if name == "TFLITE_METADATA":
            index = entry.Get(flatbuffers.number_types.Uint32Flags, entry.Pos + field(entry, 1))
            buffer = Table(model.Bytes, model.Indirect(model.Vector(buffers) + 4 * index))
            start, length = buffer.Vector(field(buffer, 0)), buffer.VectorLen(field(buffer, 0))
            return bytes(data[start:start + length])
    raise SystemExit("no TFLITE_METADATA buffer")


def metadata(model: str) -> dict:
    """The fields of the model's metadata a mobile tool reads."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    with open(model, "rb") as handle:
        data = handle.read()
    meta = schema.ModelMetadataT.InitFromPackedBuf(bytearray(_metadata_buffer(data)), 0)
    sub = meta.subgraphMetadata[0]
    inp, out = sub.inputTensorMetadata[0], sub.outputTensorMetadata[0]
    normalization = schema.ProcessUnitOptions.NormalizationOptions
    units = [u.options for u in (inp.processUnits or []) if u.optionsType == normalization]

    def text(value: bytes | None) -> str | None:
        return None if value is None else value.decode()

    return {
        "name": text(meta.name), "description": text(meta.description), "version": text(meta.version),
        "author": text(meta.author), "license": text(meta.license),
        "min_parser_version": text(meta.minParserVersion),
        "input_color_space": {1: "RGB", 2: "GRAYSCALE"}.get(inp.content.contentProperties.colorSpace),
        "normalization": [[float(v) for v in units[0].mean], [float(v) for v in units[0].std]] if units else None,
        "output_files": [[text(f.name), int(f.type)] for f in out.associatedFiles or []],
        "output_range": [float(out.stats.min[0]), float(out.stats.max[0])] if out.stats else None,
    }


if __name__ == "__main__":
    from client_io import serve  # beside this script, on sys.path when it runs

    serve(classify, metadata)
