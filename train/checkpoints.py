"""A run's per-epoch checkpoint and its best weights, each written atomically (see :mod:`train.run_store`).

A stop at any moment leaves the last complete checkpoint: the weights (with the optimizer state) go to a
file named after their epoch, through a temporary file and a rename, and only then does the metadata
file, itself replaced in one rename, point at them.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from edge_runtime.atomic_io import atomic_write_json

from .run_store import METADATA_FILE, atomic_save_weights


def seed_generators(model: keras.Model) -> list:
    """The random state of the model's layers (dropout), which the weights file does not hold."""
    return [generator for layer in model._flatten_layers() for generator in getattr(layer, "_seed_generators", [])]


class AtomicBackup(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` (restores weights, optimizer and epoch when the run continues), with every
    checkpoint written atomically: ``backup/epochNNNN.weights.h5``, then ``training_metadata.json``
    (``{"epoch": N, "weights": "epochNNNN.weights.h5", "seed_generators": [the layers' random state]}``)."""

    def __init__(self, backup_dir: str | Path) -> None:
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self._dir = Path(backup_dir)

    def _load_model(self) -> None:
        try:
            metadata = json.loads((self._dir / METADATA_FILE).read_text())
        except (OSError, ValueError):
            metadata = {}
        if metadata.get("weights"):
            self._weights_path = str(self._dir / metadata["weights"])
        super()._load_model()
        for generator, state in zip(seed_generators(self.model), metadata.get("seed_generators", []), strict=False):
            generator.state.assign(state)

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1          # saved by :meth:`saver`, the last callback of the epoch

    def saver(self) -> keras.callbacks.Callback:
        """The callback that writes the checkpoint: put it last, so the epoch's history row and best weights
        are written before the checkpoint that says the epoch is done."""
        backup = self

        class SaveCheckpoint(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                backup._save_model()

        return SaveCheckpoint()

    def _save_model(self) -> None:
        epoch = self._current_epoch
        weights = self._dir / f"epoch{epoch:04d}.weights.h5"
        atomic_save_weights(self.model, weights)
        states = [generator.state.numpy().tolist() for generator in seed_generators(self.model)]
        atomic_write_json(self._dir / METADATA_FILE, {"epoch": epoch, "batch": 0, "weights": weights.name,
                                                      "seed_generators": states})
        for old in self._dir.glob("*.weights.h5"):
            if old != weights:
                old.unlink(missing_ok=True)


class BestWeights(keras.callbacks.Callback):
    """Keep the weights of the epoch with the highest ``val_accuracy`` (set by the validation callback
    before this one) in ``path``, replaced atomically; ``best`` is the score to beat (a continued run's)."""

    def __init__(self, path: str | Path, best: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        score = (logs or {}).get("val_accuracy")
        if score is not None and (self.best is None or score > self.best):
            self.best = float(score)
            atomic_save_weights(self.model, self.path)
