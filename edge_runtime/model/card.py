"""Model cards: the one source of truth for a model's labels, input contract and metrics.

Every shipped model file ``X.keras`` or ``X.tflite`` has a card ``X.json`` beside it.
Training writes the card of a ``.keras`` model; ``convert`` writes the cards of the
``.tflite`` variants; the runtime and the benchmarks only read them. All of them go through
:class:`ModelCard`: :func:`load_card` reads and checks a card, :func:`write_card` writes one, so
each field is named once, in its dataclass (:mod:`edge_runtime.model.card_schema`).

Schema (``schema_version`` 1), in the order written::

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
      "architecture": "edge", "backbone": {...}, "parameters": 123, "macs_per_face": 456,
      "training": {"config": {...}, ...},  # the run that made the Keras model
      "description": "...", "source_model": {...}, "sha256": "...", "size_bytes": 123,
      "quantization": {...}, "calibration": {...}, "ops": {...},      # .tflite variants
      "metrics": {"split": "test", "n": 3589, "accuracy": 0.8, ...},
      "created": "...", "tools": {...}, "author": "...", "license": "...", "tflite_metadata": {...}
    }

The runtime reads the contract (labels, input, output, face crop) and the test ``metrics``. The records
of how the model was made stay JSON objects here, each typed by its owner: ``training`` and ``backbone``
by ``train.records``, ``source_model``, ``quantization``, ``calibration``, ``ops`` and ``tflite_metadata``
by ``convert.records`` (read one with :func:`card_section`), so a new training or conversion field
never changes the runtime. The pixel contract
is fixed for every model we ship: raw pixels 0..255, the model normalizes inside its own graph.
Every variant takes grayscale (``channels`` 1) except ``mobile``, made for standard mobile tooling
(MediaPipe Tasks, the TFLite Task Library): ``channels`` 3, ``color`` ``rgb``, ``uint8`` input, grey
conversion inside the graph. :func:`quantize` and :func:`dequantize` are the only copies of the
int8 arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edge_runtime.atomic_io import atomic_write_text
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.model.card_schema import SchemaError, from_json, not_in_json, optional, rest, to_json

SCHEMA_VERSION = 1
#: The schema versions this reader accepts.
SCHEMA_VERSIONS = (SCHEMA_VERSION,)
#: The .tflite variants ``convert`` writes, in the order reports list them.
TFLITE_VARIANTS = ("float32", "float16", "dynamic", "int8")
#: The variant for standard mobile tooling: uint8 RGB in, uint8 probabilities out (``convert.mobile``).
MOBILE_VARIANT = "mobile"
#: Every .tflite variant we ship.
SHIPPED_TFLITE_VARIANTS = (*TFLITE_VARIANTS, MOBILE_VARIANT)
#: Every variant a card may describe: the Keras model and its .tflite variants.
VARIANTS = ("keras", *SHIPPED_TFLITE_VARIANTS)
OUTPUT_KINDS = ("probabilities", "logits")
#: the ``architecture`` of a fused ensemble (``python -m convert.ensemble``): it averages the mirror image inside
ENSEMBLE_ARCHITECTURE = "ensemble"
#: The input layouts a card may state: (channels, color).
COLOR_CHANNELS = ((1, "grayscale"), (3, "rgb"))
RECREATE = "re-create it with `python -m convert` (a .tflite card) or `python -m train` (a .keras card)"
Record = TypeVar("Record")


class ModelCardError(EdgeRuntimeError, ValueError):
    """A model card is missing, unreadable or inconsistent with its model."""


@dataclass(frozen=True)
class Quantization:
    """Affine int8 quantization of a tensor: ``real = (q - zero_point) * scale``."""

    scale: float
    zero_point: int

    @classmethod
    def from_tensor(cls, detail: dict[str, Any]) -> Quantization | None:
        """An interpreter tensor's quantization (``None`` for a float tensor, whose scale is 0)."""
        scale, zero_point = detail["quantization"]
        return cls(float(scale), int(zero_point)) if scale else None


def quantize(values: np.ndarray, quantization: Quantization, dtype: np.dtype | type) -> np.ndarray:
    """Real values to integers of ``dtype``: ``round(x / scale) + zero_point``, clipped to the type."""
    info = np.iinfo(dtype)
    return np.clip(np.round(values / quantization.scale) + quantization.zero_point,
                   info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Integers back to float32 reals: ``(q - zero_point) * scale``."""
    return (values.astype(np.float32) - quantization.zero_point) * quantization.scale


@dataclass(frozen=True, kw_only=True)
class CardMetrics:
    """A model's test figures: the typed ones, and in ``extra`` the figures per label set
    (``accuracy_<set>``, ``balanced_accuracy_<set>``, ``n_<set>``, ``per_class_recall_<set>``)."""

    split: str | None = optional()
    label_source: str | None = optional()
    n: int | None = optional()
    accuracy: float | None = optional()
    balanced_accuracy: float | None = optional()
    macro_f1: float | None = optional()
    per_class_recall: dict[str, float] | None = optional()
    #: a .tflite variant against the float32 .tflite of the same Keras model
    float32_accuracy: float | None = optional()
    accuracy_delta_pt: float | None = optional()
    agreement_with_float32: float | None = optional()
    #: the mobile variant against the int8 variant
    int8_accuracy: float | None = optional()
    accuracy_delta_vs_int8_pt: float | None = optional()
    agreement_with_int8: float | None = optional()
    extra: dict[str, Any] = rest()

    def get(self, key: str, default: Any = None) -> Any:
        """A figure by its card key: a typed field, else one of ``extra``; ``default`` when absent or null."""
        value = getattr(self, key) if key in _METRIC_FIELDS else self.extra.get(key)
        return default if value is None else value


_METRIC_FIELDS = frozenset(f.name for f in fields(CardMetrics)) - {"extra"}


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """What the model expects: a ``height x width x channels`` image of 0..255 pixels (1: grey, 3: RGB)."""

    height: int
    width: int
    channels: int
    color: str = "grayscale"
    dtype: str
    value_range: tuple[float, float] = (0, 255)
    #: integer inputs only
    quantization: Quantization | None = optional()


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """What the model returns: one score per label, ``probabilities`` or ``logits``, maybe int8."""

    dtype: str | None = optional()
    kind: str = "probabilities"
    quantization: Quantization | None = optional()


@dataclass(frozen=True, kw_only=True)
class FaceCrop:
    """How a face box is framed before cropping: a margin per detector, else one for all."""

    margin: float | None = optional()
    by_detector: dict[str, float] = optional(factory=dict)

    def margin_for(self, detector: str) -> float | None:
        """The margin for ``detector``: ``by_detector[detector]``, else ``margin``."""
        return self.by_detector.get(detector, self.margin)


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """A model card: the fields in the order written, and ``path``, where it is (or will be) written."""

    schema_version: int = SCHEMA_VERSION
    name: str
    variant: str
    file: str
    labels: tuple[str, ...]
    input: InputSpec
    output: OutputSpec = field(default_factory=OutputSpec)
    face_crop: FaceCrop = optional(factory=FaceCrop)
    architecture: str | None = optional()
    backbone: dict[str, Any] | None = optional()            # train.records.Backbone
    parameters: int | None = optional()
    macs_per_face: int | None = optional()
    training: dict[str, Any] | None = optional()            # train.records.TrainingRecord
    description: str | None = optional()
    source_model: dict[str, Any] | None = optional()        # convert.records.SourceModel
    sha256: str | None = optional()
    size_bytes: int | None = optional()
    quantization: dict[str, Any] | None = optional()        # convert.records.QuantizationRecord
    calibration: dict[str, Any] | None = optional()         # convert.records.CalibrationRecord
    neutral_reference: dict[str, Any] | None = optional()   # recognition.calibration.NeutralReference
    ops: dict[str, Any] | None = optional()                 # convert.records.OpsReport
    metrics: CardMetrics = optional(factory=CardMetrics)
    created: str | None = optional()
    tools: dict[str, str] | None = optional()
    author: str | None = optional()
    license: str | None = optional()
    tflite_metadata: dict[str, Any] | None = optional()     # convert.records.TfliteMetadata
    path: Path = not_in_json(compare=False)

    @property
    def model_path(self) -> Path:
        """The model file the card describes (``file`` relative to the card)."""
        return self.path.parent / self.file

    @property
    def face_margin(self) -> float | None:
        """Fraction of the face box added on each side before cropping, if the card sets it."""
        return self.face_crop.margin

    @property
    def training_config(self) -> dict[str, Any]:
        """The settings of the run that trained the model (``training.config``; empty when not recorded)."""
        config = (self.training or {}).get("config")
        return config if isinstance(config, dict) else {}


def card_section(card: ModelCard, name: str, record: type[Record]) -> Record | None:
    """The card's section ``name`` (``training``, ``quantization``, ...) read as its owner's ``record``
    dataclass; ``None`` when the card has none. A section that does not fit raises :class:`ModelCardError`
    naming the field."""
    data = getattr(card, name)
    if data is None:
        return None
    try:
        return from_json(record, data, name)
    except SchemaError as exc:
        raise ModelCardError(f"model card {card.path} has a bad field ({exc}); {RECREATE}") from exc


def card_path_for(model_path: str | os.PathLike) -> Path:
    """The card that belongs to a model file: same folder, same stem, ``.json``."""
    return Path(model_path).with_suffix(".json")


def _check_version_and_variant(raw: dict[str, Any], path: Path) -> None:
    """One clear error for a ``schema_version`` or ``variant`` this reader does not know."""
    version = raw.get("schema_version")
    if type(version) is not int or version not in SCHEMA_VERSIONS:
        raise ModelCardError(
            f"model card {path}: schema_version {version!r} is not one this fer-edge reads (accepted: "
            f"{', '.join(map(str, SCHEMA_VERSIONS))}); read it with the fer-edge that wrote it, or {RECREATE}")
    variant = raw.get("variant")
    if variant not in VARIANTS:
        raise ModelCardError(f"model card {path}: variant {variant!r} is not one of {', '.join(VARIANTS)}; "
                             f"set the variant of the model file it describes, or {RECREATE}")


def parse_card(raw: dict[str, Any], path: Path) -> ModelCard:
    """Check a card's JSON data against the schema and return it typed (``path``: where it is)."""
    if not isinstance(raw, dict):
        raise ModelCardError(f"model card {path} must hold a JSON object; {RECREATE}")
    _check_version_and_variant(raw, path)
    try:
        card = from_json(ModelCard, raw, path=Path(path))
    except SchemaError as exc:
        raise ModelCardError(f"model card {path} is missing or has a bad field ({exc}); {RECREATE}") from exc
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"model card {path} is not readable JSON ({exc})") from exc
    return parse_card(raw, path)


def card_json(card: ModelCard) -> dict[str, Any]:
    """The card as JSON data, fields in schema order (what :func:`write_card` writes)."""
    return to_json(card)


def card_text(card: ModelCard) -> str:
    """The card's file content: indented JSON and a final newline."""
    return json.dumps(card_json(card), indent=2) + "\n"


def write_card(card: ModelCard, path: str | os.PathLike | None = None) -> ModelCard:
    """Write ``card`` atomically to ``path`` (default: ``card.path``); return it with that path."""
    target = Path(path) if path is not None else card.path
    atomic_write_text(target, card_text(card))
    return card if target == card.path else replace(card, path=target)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a model file, as recorded in its card's ``sha256``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
