"""Model cards: the one source of truth for a model's labels, input contract and metrics.

Every shipped model file ``X.keras`` or ``X.tflite`` has a card ``X.json`` beside it.
Training writes the card of a ``.keras`` model; ``convert`` writes the cards of the
``.tflite`` variants; the runtime and the benchmarks only read them.

Minimal schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "name": "fer4",                      # model family
      "variant": "int8",                   # keras | float32 | float16 | dynamic | int8 | mobile
      "file": "fer4_int8.tflite",          # model file, relative to the card
      "labels": ["happy", "neutral", "sad", "surprise"],   # output order
      "input": {"height": 48, "width": 48, "channels": 1, "color": "grayscale",
                "dtype": "int8", "value_range": [0, 255],
                "quantization": {"scale": 1.0, "zero_point": -128}},   # only for integer I/O
      "output": {"dtype": "int8", "kind": "probabilities",   # or "logits" (softmax applied at runtime)
                 "quantization": {"scale": 0.00390625, "zero_point": -128}},
      "face_crop": {"margin": 0.0,         # optional: fraction of the box added on each side
                    "by_detector": {"haar": 0.05}},   # optional: per named detector
      "metrics": {"split": "test", "n": 3589, "accuracy": 0.8, ...},
      "sha256": "...", "size_bytes": 123, ...
    }

The pixel contract is fixed for every model we ship: raw pixels 0..255, the model normalizes
inside its own graph. Every variant takes grayscale (``channels`` 1) except ``mobile``, made for
standard mobile tooling (MediaPipe Tasks, the TFLite Task Library): ``channels`` 3, ``color``
``rgb``, ``uint8`` input, grey conversion inside the graph.

:class:`ModelCard` types what runtime code reads (input, output, labels, face crop, checksums and
the main metrics); every other field (training details, extra metrics such as ``accuracy_ferplus``,
``label_source``, ``balanced_accuracy``...) stays in ``raw`` (``ModelCard.raw``, ``Metrics.raw``).
:func:`quantize` and :func:`dequantize` are the only copies of the int8 arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.errors import EdgeRuntimeError

SCHEMA_VERSION = 1
#: The .tflite variants ``convert`` writes, in the order reports list them.
TFLITE_VARIANTS = ("float32", "float16", "dynamic", "int8")
#: The variant for standard mobile tooling: uint8 RGB in, uint8 probabilities out (``convert.mobile``).
MOBILE_VARIANT = "mobile"
#: Every .tflite variant we ship.
SHIPPED_TFLITE_VARIANTS = (*TFLITE_VARIANTS, MOBILE_VARIANT)
#: Every variant a card may describe: the Keras model and its .tflite variants.
VARIANTS = ("keras", *SHIPPED_TFLITE_VARIANTS)
OUTPUT_KINDS = ("probabilities", "logits")
#: The input layouts a card may state: (channels, color).
COLOR_CHANNELS = ((1, "grayscale"), (3, "rgb"))


class ModelCardError(EdgeRuntimeError, ValueError):
    """A model card is missing, unreadable or inconsistent with its model."""


@dataclass(frozen=True)
class Quantization:
    """Affine int8 quantization of a tensor: ``real = (q - zero_point) * scale``."""

    scale: float
    zero_point: int

    @classmethod
    def from_card(cls, raw: dict[str, Any] | None) -> Quantization | None:
        """A card's ``quantization`` object (``None`` when absent)."""
        if not raw or raw.get("scale") is None or raw.get("zero_point") is None:
            return None
        return cls(float(raw["scale"]), int(raw["zero_point"]))

    @classmethod
    def from_tensor(cls, detail: dict[str, Any]) -> Quantization | None:
        """An interpreter tensor's quantization (``None`` for a float tensor, whose scale is 0)."""
        scale, zero_point = detail["quantization"]
        return cls(float(scale), int(zero_point)) if scale else None

    def as_card(self) -> dict[str, float | int]:
        """The card's JSON form."""
        return {"scale": self.scale, "zero_point": self.zero_point}


def quantize(values: np.ndarray, quantization: Quantization, dtype: np.dtype | type) -> np.ndarray:
    """Real values to integers of ``dtype``: ``round(x / scale) + zero_point``, clipped to the type."""
    info = np.iinfo(dtype)
    return np.clip(np.round(values / quantization.scale) + quantization.zero_point,
                   info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Integers back to float32 reals: ``(q - zero_point) * scale``."""
    return (values.astype(np.float32) - quantization.zero_point) * quantization.scale


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: a ``height x width x channels`` image of 0..255 pixels (1: grey, 3: RGB)."""

    height: int
    width: int
    channels: int
    dtype: str
    value_range: tuple[float, float]
    scale: float | None = None
    zero_point: int | None = None
    color: str = "grayscale"

    @property
    def quantization(self) -> Quantization | None:
        """The input quantization (integer inputs only)."""
        if self.scale is None or self.zero_point is None:
            return None
        return Quantization(self.scale, self.zero_point)


@dataclass(frozen=True)
class OutputSpec:
    """What the model returns: one score per label, ``probabilities`` or ``logits``, maybe int8."""

    dtype: str | None = None
    kind: str = "probabilities"
    quantization: Quantization | None = None


@dataclass(frozen=True)
class FaceCrop:
    """How a face box is framed before cropping: a margin per detector, else one for all."""

    margin: float | None = None
    by_detector: dict[str, float] = field(default_factory=dict)

    def margin_for(self, detector: str) -> float | None:
        """The margin for ``detector``: ``by_detector[detector]``, else ``margin``."""
        return self.by_detector.get(detector, self.margin)


@dataclass(frozen=True)
class Metrics:
    """The test metrics a card records; fields not typed here stay in ``raw``."""

    split: str | None = None
    n: int | None = None
    accuracy: float | None = None
    float32_accuracy: float | None = None
    accuracy_delta_pt: float | None = None
    agreement_with_float32: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ModelCard:
    """A parsed model card; ``raw`` keeps every field, including the ones not typed here."""

    path: Path
    name: str
    variant: str
    file: str
    labels: tuple[str, ...]
    input: InputSpec
    output: OutputSpec = field(default_factory=OutputSpec)
    face_crop: FaceCrop = field(default_factory=FaceCrop)
    metrics: Metrics = field(default_factory=Metrics)
    sha256: str | None = None
    size_bytes: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model_path(self) -> Path:
        """The model file the card describes (``file`` relative to the card)."""
        return self.path.parent / self.file

    @property
    def face_margin(self) -> float | None:
        """Fraction of the face box added on each side before cropping, if the card sets it."""
        return self.face_crop.margin


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


def _input_spec(spec: dict[str, Any]) -> InputSpec:
    quant = Quantization.from_card(spec.get("quantization"))
    return InputSpec(height=int(spec["height"]), width=int(spec["width"]), channels=int(spec["channels"]),
                     dtype=str(spec["dtype"]), value_range=tuple(spec.get("value_range", (0, 255))),
                     scale=None if quant is None else quant.scale,
                     zero_point=None if quant is None else quant.zero_point,
                     color=str(spec.get("color", "grayscale")))


def _output_spec(spec: dict[str, Any]) -> OutputSpec:
    return OutputSpec(dtype=_optional(spec.get("dtype"), str), kind=str(spec.get("kind", "probabilities")),
                      quantization=Quantization.from_card(spec.get("quantization")))


def _face_crop(crop: dict[str, Any]) -> FaceCrop:
    by_detector = {str(k): float(v) for k, v in (crop.get("by_detector") or {}).items() if v is not None}
    return FaceCrop(margin=_optional(crop.get("margin"), float), by_detector=by_detector)


def _metrics(metrics: dict[str, Any]) -> Metrics:
    floats = {key: _optional(metrics.get(key), float)
              for key in ("accuracy", "float32_accuracy", "accuracy_delta_pt", "agreement_with_float32")}
    return Metrics(split=_optional(metrics.get("split"), str), n=_optional(metrics.get("n"), int),
                   raw=dict(metrics), **floats)


def card_path_for(model_path: str | os.PathLike) -> Path:
    """The card that belongs to a model file: same folder, same stem, ``.json``."""
    return Path(model_path).with_suffix(".json")


def parse_card(raw: dict[str, Any], path: Path) -> ModelCard:
    """Validate a card's required fields and return it parsed."""
    try:
        card = ModelCard(
            path=path,
            name=str(raw.get("name", path.stem)),
            variant=str(raw.get("variant", "")),
            file=str(raw["file"]),
            labels=tuple(str(label) for label in raw["labels"]),
            input=_input_spec(raw["input"]),
            output=_output_spec(raw.get("output") or {}),
            face_crop=_face_crop(raw.get("face_crop") or {}),
            metrics=_metrics(raw.get("metrics") or {}),
            sha256=_optional(raw.get("sha256"), str),
            size_bytes=_optional(raw.get("size_bytes"), int),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelCardError(f"model card {path} is missing or has a bad field ({exc}); "
                             "re-create it with `python -m convert`") from exc
    if not card.labels or len(set(card.labels)) != len(card.labels):
        raise ModelCardError(f"model card {path}: 'labels' must be a non-empty list of distinct names")
    if (card.input.channels, card.input.color) not in COLOR_CHANNELS:
        raise ModelCardError(f"model card {path}: input must be channels 1 with color grayscale or channels 3 "
                             f"with color rgb (got channels {card.input.channels}, color {card.input.color})")
    if card.output.kind not in OUTPUT_KINDS:
        raise ModelCardError(f"model card {path}: output.kind must be one of {', '.join(OUTPUT_KINDS)}")
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
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
