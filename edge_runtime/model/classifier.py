"""The expression classifier: one .tflite model and its card, loaded once, checked against each other."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_runtime.errors import ModelError
from edge_runtime.model.card import ENSEMBLE_ARCHITECTURE, Quantization, dequantize, load_card
from edge_runtime.model.contract import check_card
from edge_runtime.model.litert import make_interpreter
from edge_runtime.model.preprocessing import input_tensor
from edge_runtime.paths import bundled_models_dir, default_model
from edge_runtime.results import Expression

log = logging.getLogger(__name__)

#: test-time augmentation: ``none``, or ``flip`` (the mean of the face's and its mirror image's probabilities)
TTA_MODES = ("none", "flip")


def resolve_model_path(model_path: str | Path | None) -> Path:
    """The model file to load: ``model_path``, the bundled ``<name>_int8.tflite`` when it is a bare name
    (``fer4_accurate``), or the bundled default; a clear error when missing."""
    if model_path is None:
        default = default_model()
        if not default.is_file():
            raise ModelError(f"the bundled model {default} does not exist yet (it is made by "
                             "training and `python -m convert`); pass --model PATH/TO/model.tflite")
        return default
    path = Path(model_path)
    if not path.is_file() and path.name == str(model_path) and not path.suffix:   # a bundled model's name
        path = bundled_models_dir() / f"{model_path}_int8.tflite"
    if not path.is_file():
        raise ModelError(f"model file {path} not found; pass --model with the path of a .tflite "
                         "file that has its model card (.json) beside it, or a bundled model's name (fer4)")
    return path


class ExpressionClassifier:
    """Classifies face crops with a .tflite model; labels, input size and pixel contract come from its card.

    Each crop is one ``invoke`` (the model's batch dimension is 1), so a face gets the same answer
    alone or among others. Calls are serialised with a lock, so one instance may be shared by threads.
    With ``tta="flip"`` each face is also classified mirrored (a second ``invoke``) and the two
    probability vectors are averaged; an ensemble (``fer4_accurate``) already does so inside its graph,
    so it runs once, with a warning.
    """

    def __init__(self, model_path: str | Path | None = None, card_path: str | Path | None = None,
                 num_threads: int | None = None, min_confidence: float = 0.0, tta: str = "none") -> None:
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {', '.join(TTA_MODES)} (got {tta!r})")
        self.tta = tta
        self.model_path = resolve_model_path(model_path)
        self.card = load_card(card_path or self.model_path)
        if tta == "flip" and self.card.architecture == ENSEMBLE_ARCHITECTURE:
            log.warning("%s already averages each face with its mirror image inside its graph; flip test-time "
                        "augmentation would only double the time per face: each face runs once (drop --tta flip)",
                        self.model_path.name)
            self.tta = "none"
        try:
            self.interpreter = make_interpreter(str(self.model_path), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load model {self.model_path} ({exc}); is it a .tflite file?") from exc
        problems = check_card(self.card, self.interpreter, self.model_path)
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
        self._output_quant = Quantization.from_tensor(out)   # None for a float output
        self._logits = self.card.output.kind == "logits"
        self._lock = threading.Lock()

    def probabilities(self, face: np.ndarray) -> np.ndarray:
        """Probabilities (card label order) for one face crop: grayscale, BGR or BGRA, any size."""
        tensor = input_tensor(face, self.card.input)
        if self.tta == "flip":
            mirrored = np.ascontiguousarray(tensor[:, :, ::-1, :])
            return (self._run(tensor) + self._run(mirrored)) / 2.0
        return self._run(tensor)

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        """Probabilities for one ready input tensor."""
        with self._lock:
            self.interpreter.set_tensor(self._input_index, tensor)
            self.interpreter.invoke()
            raw = self.interpreter.get_tensor(self._output_index)[0].copy()
        values = raw.astype(np.float32) if self._output_quant is None else dequantize(raw, self._output_quant)
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
