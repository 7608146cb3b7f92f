"""The expression classifier: one .tflite model and its card, loaded once, checked against each other."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ModelError
from .litert_runtime import make_interpreter
from .model_card import ModelCard, file_sha256, load_card
from .paths import DEFAULT_MODEL
from .preprocessing import input_tensor
from .results import Expression

log = logging.getLogger(__name__)


def resolve_model_path(model_path: str | Path | None) -> Path:
    """The model file to load: ``model_path`` or the bundled default; a clear error when missing."""
    if model_path is None:
        if not DEFAULT_MODEL.is_file():
            raise ModelError(f"the bundled model {DEFAULT_MODEL} does not exist yet (it is made by "
                             "training and `python -m convert`); pass --model PATH/TO/model.tflite")
        return DEFAULT_MODEL
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found; pass --model with the path of a .tflite "
                         "file that has its model card (.json) beside it")
    return path


def _quant_matches(card_q: tuple[float | None, int | None], model_q: tuple[float, int]) -> bool:
    scale, zero_point = card_q
    return scale is not None and zero_point is not None and \
        abs(scale - model_q[0]) <= 1e-6 * max(1.0, abs(model_q[0])) and zero_point == model_q[1]


def check_card(card: ModelCard, model_path: Path, interpreter) -> list[str]:
    """Every way the card disagrees with the loaded model (empty when they match)."""
    problems = []
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    spec = card.input
    want_shape = (1, spec.height, spec.width, spec.channels)
    if tuple(int(v) for v in inp["shape"]) != want_shape:
        problems.append(f"input shape is {tuple(inp['shape'])}, the card says {want_shape}")
    if np.dtype(inp["dtype"]).name != spec.dtype:
        problems.append(f"input dtype is {np.dtype(inp['dtype']).name}, the card says {spec.dtype}")
    elif np.issubdtype(np.dtype(inp["dtype"]), np.integer) and \
            not _quant_matches((spec.scale, spec.zero_point), inp["quantization"]):
        problems.append(f"input quantization is {inp['quantization']}, the card says "
                        f"scale={spec.scale}, zero_point={spec.zero_point}")
    n_out = int(out["shape"][-1])
    if n_out != len(card.labels):
        problems.append(f"the model has {n_out} outputs, the card lists {len(card.labels)} labels")
    out_card = card.raw.get("output") or {}
    if out_card.get("dtype") and out_card["dtype"] != np.dtype(out["dtype"]).name:
        problems.append(f"output dtype is {np.dtype(out['dtype']).name}, the card says {out_card['dtype']}")
    out_q = out_card.get("quantization") or {}
    if np.issubdtype(np.dtype(out["dtype"]), np.integer) and out_q and \
            not _quant_matches((out_q.get("scale"), out_q.get("zero_point")), out["quantization"]):
        problems.append(f"output quantization is {out['quantization']}, the card says {out_q}")
    if card.raw.get("sha256") and card.raw["sha256"] != file_sha256(model_path):
        problems.append("the card's sha256 is not the model file's (the card belongs to another build)")
    return problems


class ExpressionClassifier:
    """Classifies face crops with a .tflite model; labels, input size and pixel contract come from its card.

    Each crop is one ``invoke`` (the model's batch dimension is 1), so a face gets the same answer
    alone or among others. Calls are serialised with a lock, so one instance may be shared by threads.
    """

    def __init__(self, model_path: str | Path | None = None, card_path: str | Path | None = None,
                 num_threads: int | None = None, min_confidence: float = 0.0) -> None:
        self.model_path = resolve_model_path(model_path)
        self.card = load_card(card_path or self.model_path)
        try:
            self.interpreter = make_interpreter(str(self.model_path), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load model {self.model_path} ({exc}); is it a .tflite file?") from exc
        problems = check_card(self.card, self.model_path, self.interpreter)
        if problems:
            raise ModelError(f"model {self.model_path} does not match its card {self.card.path}: "
                             + "; ".join(problems) + ". Re-create the card with `python -m convert` "
                             "or pass the model the card belongs to")
        self.runtime_name = getattr(self.interpreter, "runtime_name", "unknown")
        self.labels = self.card.labels
        self.min_confidence = min_confidence
        out = self.interpreter.get_output_details()[0]
        self._input_index = self.interpreter.get_input_details()[0]["index"]
        self._output_index = out["index"]
        self._output_quant = out["quantization"] if np.issubdtype(np.dtype(out["dtype"]), np.integer) \
            else None
        self._logits = (self.card.raw.get("output") or {}).get("kind") == "logits"
        self._lock = threading.Lock()

    def probabilities(self, face: np.ndarray) -> np.ndarray:
        """Probabilities (card label order) for one face crop: grayscale, BGR or BGRA, any size."""
        tensor = input_tensor(face, self.card.input)
        with self._lock:
            self.interpreter.set_tensor(self._input_index, tensor)
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self._output_index)[0].copy()
        if self._output_quant is not None:
            scale, zero_point = self._output_quant
            values = (raw.astype(np.float32) - zero_point) * scale
        else:
            values = raw.astype(np.float32)
        if self._logits:
            values = np.exp(values - values.max())
            values /= values.sum()
        return values

    def expression(self, probabilities: np.ndarray) -> Expression:
        """Turn a probability vector into an :class:`Expression` (label ``None`` below min_confidence)."""
        best = int(np.argmax(probabilities))
        label = self.labels[best] if probabilities[best] >= self.min_confidence else None
        scores = {k: float(v) for k, v in zip(self.labels, probabilities, strict=True)}
        return Expression(label=label, scores=scores)

    def classify(self, face: np.ndarray) -> Expression:
        """Classify one face crop."""
        return self.expression(self.probabilities(face))

    def classify_many(self, faces: Sequence[np.ndarray]) -> list[Expression]:
        """Classify several face crops (same answers as one by one)."""
        return [self.classify(face) for face in faces]
