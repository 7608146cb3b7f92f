"""The labels embedded in a .tflite file's TFLite Model Metadata, read without TensorFlow.

TFLite Model Metadata keeps its associated files (here the label list) in a zip archive appended
to the model flatbuffer; :mod:`zipfile` finds that archive from the end of the file. ``convert``
writes the label file as :data:`LABELS_FILE`, one label per line in output order, from the card.
"""

from __future__ import annotations

import os
import zipfile

#: Name of the associated file holding the labels (written by ``convert.metadata``).
LABELS_FILE = "labels.txt"


class MetadataReadError(ValueError):
    """The appended metadata archive exists but cannot be read."""


def embedded_files(path: str | os.PathLike) -> dict[str, bytes]:
    """The associated files packed into ``path`` (empty when the model carries none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}
    except (OSError, zipfile.LargeZipFile, KeyError, EOFError) as exc:
        raise MetadataReadError(f"cannot read the metadata files of {path} ({exc})") from exc


def embedded_labels(path: str | os.PathLike) -> tuple[str, ...] | None:
    """The labels of the model's metadata, in output order; ``None`` when it has no label file."""
    data = embedded_files(path).get(LABELS_FILE)
    if data is None:
        return None
    return tuple(line.strip() for line in data.decode("utf-8").splitlines() if line.strip())
