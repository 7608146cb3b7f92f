"""Our .tflite models, driven by their model cards: input preparation, output scores, batched inference.

Everything model-specific (labels, input size, value range, quantization) is read from the card
beside the model; the pixel contract is applied by :func:`edge_runtime.model.preprocessing.input_tensor`,
the same code the device runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.model.card import ENSEMBLE_ARCHITECTURE, VARIANTS, ModelCard, dequantize, load_card
from edge_runtime.model.card_schema import to_json
from edge_runtime.model.contract import check_card, run_batched
from edge_runtime.model.litert import make_interpreter
from edge_runtime.model.preprocessing import input_tensor

from .errors import BenchmarkError


def label_columns(model_labels: Sequence[str], wanted: Sequence[str], model_name: str) -> np.ndarray:
    """Column index in the model's output of each ``wanted`` label (an error if one is missing)."""
    missing = [label for label in wanted if label not in model_labels]
    if missing:
        raise BenchmarkError(f"{model_name} has no output for {', '.join(missing)} "
                             f"(its labels: {', '.join(model_labels)})")
    return np.array([list(model_labels).index(label) for label in wanted], dtype=np.int64)


def load_interpreter(path: Path, threads: int | None) -> Any:
    """Load a .tflite file with the device's runtime; a clear error if it is not a model."""
    try:
        return make_interpreter(str(path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise BenchmarkError(f"cannot load {path} as a TFLite model ({exc})") from exc


@dataclass
class CardModel:
    """One of our .tflite variants and its card; with ``tta="flip"``, scored and timed as the runtime's
    ``--tta flip`` runs it: each face and its mirror image, probabilities averaged."""

    path: Path
    card: ModelCard
    tta: str = "none"

    @classmethod
    def from_path(cls, path: str | Path) -> CardModel:
        """The model at ``path`` with the card beside it (clear errors if either is missing)."""
        path = Path(path)
        if not path.is_file():
            raise BenchmarkError(f"model file {path} not found; pass --model with an existing .tflite "
                                 "file (its card .json beside it) or --models with their folder")
        return cls(path, load_card(path))

    @property
    def name(self) -> str:
        """Model family, e.g. ``fer4``."""
        return self.card.name

    @property
    def variant(self) -> str:
        """``float32``, ``float16``, ``dynamic`` or ``int8``; ``+flip`` appended under test-time flipping."""
        return self.card.variant + ("+flip" if self.tta == "flip" else "")

    @property
    def invokes_per_face(self) -> int:
        """Inferences one face costs: 2 under ``tta="flip"``, else 1."""
        return 2 if self.tta == "flip" else 1

    @property
    def labels(self) -> tuple[str, ...]:
        """Output order, from the card."""
        return self.card.labels

    @property
    def size_bytes(self) -> int:
        """Size of the model file."""
        return self.path.stat().st_size

    def load(self, threads: int | None) -> Any:
        """Load the model with ``threads`` threads, checked against its card."""
        interpreter = load_interpreter(self.path, threads)
        problems = check_card(self.card, interpreter, self.path)
        if problems:
            raise BenchmarkError(f"{self.path} does not match its card {self.card.path}: "
                                 + "; ".join(problems))
        return interpreter

    def prepare(self, faces: np.ndarray) -> np.ndarray:
        """Model inputs ``N x H x W x C`` for uint8 face crops ``N x h x w``, as the card says; under
        ``tta="flip"``, ``2N`` inputs: each face followed by its mirror image."""
        inputs = np.concatenate([input_tensor(face, self.card.input) for face in faces])
        if self.tta != "flip":
            return inputs
        return np.stack([inputs, inputs[:, :, ::-1, :]], axis=1).reshape(-1, *inputs.shape[1:])

    def scores(self, outputs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Raw outputs -> float scores ``N x len(labels)`` in the order of ``labels`` (dequantized;
        the two views of a face averaged under ``tta="flip"``)."""
        quantization = self.card.output.quantization
        values = outputs.astype(np.float32) if quantization is None else dequantize(outputs, quantization)
        if self.tta == "flip":
            values = values.reshape(-1, 2, values.shape[-1]).mean(axis=1)
        return values[:, label_columns(self.labels, labels, self.path.name)]

    def recorded_metrics(self) -> dict[str, Any]:
        """The card's test metrics (``accuracy``, ``accuracy_delta_pt``, ``n``, ``split``), if any; none
        under ``tta="flip"``, which the card's figures were not measured with."""
        return {} if self.tta == "flip" else to_json(self.card.metrics)


def variant_order(variant: str) -> int:
    """Sort key: float32, float16, dynamic, int8 (each followed by its ``+flip``), then anything else."""
    base, _, tta = variant.partition("+")
    return 2 * (VARIANTS.index(base) if base in VARIANTS else len(VARIANTS)) + bool(tta)


def with_tta(models: Sequence[CardModel], tta: str) -> list[CardModel]:
    """``models``, plus each int8 model once more under ``tta`` (``"flip"``), right after it; not an ensemble,
    which averages the mirror image inside its graph (the runtime runs it once under ``--tta flip``)."""
    if tta == "none":
        return list(models)
    out: list[CardModel] = []
    for model in models:
        out.append(model)
        if model.card.variant == "int8" and model.card.architecture != ENSEMBLE_ARCHITECTURE:
            out.append(replace(model, tta=tta))
    return out


def discover_models(models_dir: Path | None, model_files: Sequence[str | Path]) -> list[CardModel]:
    """The models to benchmark: the ``--model`` files, else every ``*.tflite`` in ``models_dir``."""
    if model_files:
        models = [CardModel.from_path(p) for p in model_files]
    else:
        if models_dir is None or not models_dir.is_dir():
            raise BenchmarkError(f"model folder {models_dir} not found; pass --models DIR or --model FILE")
        files = sorted(models_dir.glob("*.tflite"))
        if not files:
            raise BenchmarkError(f"no .tflite model in {models_dir}; make them with `python -m convert` "
                                 "or pass --models DIR / --model FILE")
        models = [CardModel.from_path(p) for p in files]
    return sorted(models, key=lambda m: (m.name, variant_order(m.variant), m.path.name))


__all__ = ["CardModel", "discover_models", "label_columns", "load_interpreter", "run_batched",
           "variant_order", "with_tta"]
