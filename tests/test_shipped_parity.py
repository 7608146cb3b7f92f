"""The same face gets the same answer from every shipped form of a model: the Keras model alone and
in a batch, and each .tflite variant (the RGB mobile one too) through the edge runtime, within quantization error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.model.classifier import ExpressionClassifier

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
FAMILIES = sorted(path.stem for path in MODELS_DIR.glob("*.keras"))
PER_CLASS = 6
# Against Keras: the largest and the mean probability difference allowed, and the least share of faces
# with the same top class (int8 moves a probability by a few of its 1/256 steps per layer).
# The float16 and dynamic variants are not kept in models/ (docs/models.md); tests/test_convert.py checks
# that python -m convert writes them, each card with the accuracy of its own file.
TOLERANCE = {"float32": (1e-4, 1e-5, 1.0), "int8": (0.15, 0.03, 0.9), "mobile": (0.15, 0.03, 0.9)}


def first_faces(shared: Path, labels: tuple[str, ...]) -> np.ndarray:
    """The first ``PER_CLASS`` test faces of each label (48x48 uint8), in a fixed order."""
    folder = shared / "data" / "fer2013" / "test"
    paths = [p for label in labels for p in sorted((folder / label).glob("*.jpg"))[:PER_CLASS]]
    return np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_form_of_a_shipped_model_gives_the_same_answer(family: str, shared_dir: Path):
    import keras

    model = keras.models.load_model(MODELS_DIR / f"{family}.keras", compile=False)
    labels = ExpressionClassifier(MODELS_DIR / f"{family}_float32.tflite").labels
    faces = first_faces(shared_dir, labels)
    batch = np.asarray(model.predict(faces[..., None].astype(np.float32), batch_size=len(faces), verbose=0))
    alone = np.concatenate([model.predict(face[None, ..., None].astype(np.float32), verbose=0) for face in faces[:4]])
    np.testing.assert_allclose(alone, batch[:4], atol=1e-5)
    for variant, (largest, mean, agreement) in TOLERANCE.items():
        classifier = ExpressionClassifier(MODELS_DIR / f"{family}_{variant}.tflite", num_threads=1)
        assert classifier.labels == labels
        probs = np.stack([classifier.probabilities(face) for face in faces])
        gap = np.abs(probs - batch)
        assert gap.max() <= largest and gap.mean() <= mean, f"{family}_{variant}: {gap.max():.4f}, {gap.mean():.4f}"
        assert (probs.argmax(1) == batch.argmax(1)).mean() >= agreement, f"{family}_{variant}"
