"""TFLite Model Metadata from the model card: ``python -m convert.metadata models/*.tflite``.

The card stays the one source of truth; this module writes what it says into the .tflite file so
that standard mobile tooling (MediaPipe Tasks, the TFLite Task Library, Android Studio ML Model
Binding) can read the model's name, labels and input contract:

- the ``ModelMetadata`` flatbuffer (:mod:`convert.metadata_schema`) in a model buffer named
  ``TFLITE_METADATA``, as tflite-support's ``MetadataPopulator`` does;
- the labels, one per line, as the associated file ``labels.txt`` in a zip appended to the model.

Stamping is idempotent (an earlier stamp is replaced). Stamping a shipped file changes its bytes,
so the command also records the new ``sha256`` and ``size_bytes`` (and the ``author``,
``license`` and ``tflite_metadata`` fields it wrote from) in the card.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import flatbuffers

from edge_runtime.atomic_io import atomic_write_bytes
from edge_runtime.command_line import CommandParser, add_log_level, run_command
from edge_runtime.model.card import InputSpec, ModelCard, load_card, write_card
from edge_runtime.model.card_schema import to_json
from edge_runtime.model.metadata import LABELS_FILE

from . import metadata_schema as schema
from .cards import sha256_bytes
from .errors import ConvertError
from .records import TfliteMetadata

log = logging.getLogger(__name__)

METADATA_NAME = "TFLITE_METADATA"
DEFAULT_AUTHOR = "The fer-edge authors"
DEFAULT_LICENSE = "MIT"
TFLITE_IDENTIFIER = b"TFL3"


def _normalization(spec: InputSpec) -> tuple[float | None, float | None]:
    """``(mean, std)`` mapping pixels 0..255 to the card's float ``value_range``; none for integer input."""
    if spec.dtype != "float32":
        return None, None
    low, high = (float(v) for v in spec.value_range)
    std = 255.0 / (high - low)
    return 0.0 - low * std + 0.0, std


def model_info(card: ModelCard) -> schema.ModelInfo:
    """The metadata a card describes (labels, input colour and scaling, output, provenance)."""
    spec, labels = card.input, list(card.labels)
    color = "RGB" if spec.channels == 3 else "GRAYSCALE"
    mean, std = _normalization(spec)
    low, high = spec.value_range
    pixels = (f"{spec.height}x{spec.width} {color} face crop, {spec.dtype} pixels 0..255"
              + (f" (normalized: (pixel - {mean:g}) / {std:g})" if mean is not None else ""))
    source = (card.source_model or {}).get("sha256") or "unknown"
    version = f"{(card.tools or {}).get('fer-edge', '0')}+{source[:12]}"
    kind = card.output.kind
    detail = card.description or ""
    return schema.ModelInfo(
        name=f"{card.name} {card.variant}",
        description=(f"Facial expression of one tight, centred face crop: {', '.join(labels)}. "
                     f"{detail[:1].upper()}{detail[1:]}".strip()),
        version=version,
        author=card.author or DEFAULT_AUTHOR,
        license=card.license or DEFAULT_LICENSE,
        image=schema.ImageInput(name="image", description=pixels, color_space=color, mean=mean, std=std,
                                value_min=float(low) if mean is not None else None,
                                value_max=float(high) if mean is not None else None),
        output=schema.ProbabilityOutput(
            name="probability", description=f"{kind} of the {len(labels)} expressions, in label-file order",
            labels_file=LABELS_FILE, labels_description="Expression labels, one per output, in output order"),
    )


def stamp(model: bytes, card: ModelCard) -> bytes:
    """``model`` with the card's metadata and label file (any earlier stamp replaced)."""
    try:                             # LiteRT's copy of the TFLite schema; TensorFlow's where LiteRT is absent
        from ai_edge_litert import schema_py_generated as tfl
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as tfl

    if model[4:8] != TFLITE_IDENTIFIER:
        raise ConvertError("not a TFLite flatbuffer (no TFL3 identifier)")
    tree = tfl.ModelT.InitFromPackedBuf(bytearray(model), 0)
    metadata = schema.build(model_info(card))
    entries = [m for m in (tree.metadata or []) if m.name.decode() == METADATA_NAME]
    if entries:                      # reuse the earlier stamp's buffer: other buffer indices stay
        tree.buffers[entries[0].buffer].data = bytearray(metadata)
    else:
        buffer = tfl.BufferT()
        buffer.data = bytearray(metadata)
        tree.buffers.append(buffer)
        entry = tfl.MetadataT()
        entry.name, entry.buffer = METADATA_NAME.encode(), len(tree.buffers) - 1
        tree.metadata = [*(tree.metadata or []), entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo(LABELS_FILE, date_time=(1980, 1, 1, 0, 0, 0)),
                         "\n".join(card.labels) + "\n")
    return out.getvalue()


def record_in_card(card: ModelCard, model: bytes) -> ModelCard:
    """The card with the stamped file's checksum and size, and the metadata fields it was written from."""
    info = model_info(card)
    normalization = None if info.image.mean is None else {"mean": info.image.mean, "std": info.image.std}
    return replace(card, author=card.author or DEFAULT_AUTHOR, license=card.license or DEFAULT_LICENSE,
                   tflite_metadata=to_json(TfliteMetadata(
                       format="TFLite Model Metadata", name=info.name, version=info.version,
                       min_parser_version=schema.MIN_PARSER_VERSION, labels_file=LABELS_FILE,
                       color_space=info.image.color_space, normalization=normalization)),
                   sha256=sha256_bytes(model), size_bytes=len(model))


def stamp_file(path: str | Path) -> ModelCard:
    """Stamp the .tflite at ``path`` from its card, check it loads as its card says, write both."""
    from edge_runtime.model.contract import check_card
    from edge_runtime.model.litert import make_interpreter

    path = Path(path)
    if path.suffix != ".tflite" or not path.is_file():
        raise ConvertError(f"{path} is not a .tflite file; give the shipped models, e.g. models/*.tflite")
    card = load_card(path)
    model = stamp(path.read_bytes(), card)
    card = record_in_card(card, model)
    tmp = path.with_name(f".{path.stem}.stamped.tflite")
    try:
        tmp.write_bytes(model)
        problems = check_card(card, make_interpreter(str(tmp), num_threads=1), tmp)
    finally:
        tmp.unlink(missing_ok=True)
    if problems:
        raise ConvertError(f"{path} no longer matches its card once stamped: {'; '.join(problems)}")
    atomic_write_bytes(path, model)
    return write_card(card)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m convert.metadata``."""
    parser = CommandParser(prog="python -m convert.metadata", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="TFLITE", help=".tflite files, each with its card beside it")
    add_log_level(parser)
    return parser


def stamp_all(args: argparse.Namespace) -> int:
    """Stamp every given .tflite in turn, one line each; the first bad one stops the command."""
    for model in args.models:
        card = stamp_file(model)
        print(f"{model}\t{card.size_bytes} bytes\tsha256 {(card.sha256 or '')[:12]}\t{', '.join(card.labels)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stamp every given .tflite from its card; 0 when all were written, 2 on the first bad one."""
    return run_command(build_parser(), stamp_all, argv, log_format="%(levelname)s %(message)s")


if __name__ == "__main__":
    sys.exit(main())
