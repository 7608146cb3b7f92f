"""Model cards: the one source of truth for a model's labels, input contract and metrics.

Every shipped model file ``X.keras`` or ``X.tflite`` has a card ``X.json`` beside it.
Training writes the card of a ``.keras`` model; ``convert`` writes the cards of the
``.tflite`` variants; the runtime and the benchmarks only read them.

Minimal schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "name": "fer4",                      # model family
      "variant": "int8",                   # keras | float32 | float16 | dynamic | int8
      "file": "fer4_int8.tflite",          # model file, relative to the card
      "labels": ["happy", "neutral", "sad", "surprise"],   # output order
      "input": {"height": 48, "width": 48, "channels": 1, "color": "grayscale",
                "dtype": "int8", "value_range": [0, 255],
                "quantization": {"scale": 1.0, "zero_point": -128}},   # only for integer I/O
      "output": {"dtype": "int8", "kind": "probabilities",
                 "quantization": {"scale": 0.00390625, "zero_point": -128}},
      "face_crop": {"margin": 0.0},        # optional: fraction of the box added on each side
      "metrics": {...}, "sha256": "...", "size_bytes": 123, ...
    }

The pixel contract is fixed for every model we ship: raw grayscale pixels 0..255;
the model normalizes inside its own graph.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
VARIANTS = ("keras", "float32", "float16", "dynamic", "int8")


class ModelCardError(ValueError):
    """A model card is missing, unreadable or inconsistent with its model."""


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: a grayscale ``height x width x channels`` image of 0..255 pixels."""

    height: int
    width: int
    channels: int
    dtype: str
    value_range: tuple[float, float]
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class ModelCard:
    """A parsed model card; ``raw`` keeps every field, including the ones not parsed here."""

    path: Path
    name: str
    variant: str
    labels: tuple[str, ...]
    input: InputSpec
    raw: dict[str, Any] = field(repr=False)

    @property
    def model_path(self) -> Path:
        """The model file the card describes (``file`` relative to the card)."""
        return self.path.parent / self.raw["file"]

    @property
    def face_margin(self) -> float | None:
        """Fraction of the face box added on each side before cropping, if the card sets it."""
        crop = self.raw.get("face_crop") or {}
        margin = crop.get("margin")
        return None if margin is None else float(margin)


def card_path_for(model_path: str | os.PathLike) -> Path:
    """The card that belongs to a model file: same folder, same stem, ``.json``."""
    return Path(model_path).with_suffix(".json")


def parse_card(raw: dict[str, Any], path: Path) -> ModelCard:
    """Validate a card's required fields and return it parsed."""
    try:
        labels = tuple(str(label) for label in raw["labels"])
        spec = raw["input"]
        quant = spec.get("quantization") or {}
        input_spec = InputSpec(
            height=int(spec["height"]),
            width=int(spec["width"]),
            channels=int(spec["channels"]),
            dtype=str(spec["dtype"]),
            value_range=tuple(spec.get("value_range", (0, 255))),
            scale=None if quant.get("scale") is None else float(quant["scale"]),
            zero_point=None if quant.get("zero_point") is None else int(quant["zero_point"]),
        )
        card = ModelCard(
            path=path,
            name=str(raw.get("name", path.stem)),
            variant=str(raw.get("variant", "")),
            labels=labels,
            input=input_spec,
            raw=raw,
        )
        raw["file"]  # noqa: B018 - required field
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelCardError(f"model card {path} is missing or has a bad field ({exc}); "
                             "re-create it with `python -m convert`") from exc
    if not labels or len(set(labels)) != len(labels):
        raise ModelCardError(f"model card {path}: 'labels' must be a non-empty list of distinct names")
    if input_spec.channels != 1:
        raise ModelCardError(f"model card {path}: only grayscale (channels 1) models are supported")
    return card


def load_card(path: str | os.PathLike) -> ModelCard:
    """Read and validate the card at ``path`` (a ``.json``, or a model file whose card is beside it)."""
    path = Path(path)
    if path.suffix != ".json":
        path = card_path_for(path)
    if not path.is_file():
        raise ModelCardError(f"model card {path} not found: every model needs its card beside it "
                             "(same name, .json); re-create it with `python -m convert`")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"model card {path} is not readable JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ModelCardError(f"model card {path} must hold a JSON object")
    return parse_card(raw, path)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a model file, as recorded in its card's ``sha256``."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
