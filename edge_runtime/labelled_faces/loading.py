"""Load labelled 48x48 grayscale faces from a folder-per-class tree or from fer2013.csv.

Both loaders return a :class:`FaceSet`: uint8 images (N, 48, 48), integer labels in the
order of the ``classes`` given, an identifier per image (its path, or ``csv:ROW``), and
the problems met on the way (files skipped, images converted).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.labelled_faces.errors import FaceDataError

log = logging.getLogger(__name__)

IMAGE_SIZE = 48
# FER2013's emotion codes, in the order of the original fer2013.csv "emotion" column.
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
CSV_COLUMNS = ("emotion", "pixels", "Usage")
CSV_SPLITS = {"Training": "train", "PublicTest": "test", "PrivateTest": "private_test"}


@dataclass
class FaceSet:
    """Images (N, 48, 48) uint8, labels (N,) int, ids (N,), and what was skipped or converted."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    classes: tuple[str, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)     # (id, reason)
    converted: list[tuple[str, str]] = field(default_factory=list)   # (id, what was done)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> FaceSet:
        """A FaceSet holding only the rows in ``index`` (bookkeeping lists are kept whole)."""
        return FaceSet(self.images[index], self.labels[index], [self.ids[i] for i in index],
                       self.classes, self.skipped, self.converted)

    def restrict(self, classes: tuple[str, ...]) -> FaceSet:
        """Only the rows of ``classes`` (a subset of ours), relabelled in the order of ``classes``."""
        missing = [c for c in classes if c not in self.classes]
        if missing:
            raise ValueError(f"cannot restrict to {', '.join(missing)}: not among {', '.join(self.classes)}")
        if tuple(classes) == self.classes:
            return self
        remap = np.array([classes.index(c) if c in classes else -1 for c in self.classes])
        new_labels = remap[self.labels]
        keep = np.flatnonzero(new_labels >= 0)
        return FaceSet(self.images[keep], new_labels[keep], [self.ids[i] for i in keep],
                       tuple(classes), self.skipped, self.converted)

    def counts(self) -> dict[str, int]:
        """Images per class name."""
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}


def to_face_image(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Convert any decoded image to 48x48 uint8 grayscale; return it and what was changed."""
    changes = []
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        changes.append("depth to 8 bit")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
        changes.append("colour to grayscale")
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        changes.append(f"resized from {image.shape[1]}x{image.shape[0]}")
        image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return image, changes


def check_source(data: str | Path, splits: tuple[str, ...], classes: tuple[str, ...]) -> None:
    """Cheap checks before anything heavy is imported: the path exists, the class folders or
    the CSV columns are there. Raises :class:`FaceDataError` naming the problem and the fix."""
    data = Path(data)
    if not data.exists():
        raise FaceDataError(f"--data {data} does not exist; give the FER2013 folder (with train/ and test/) "
                        "or fer2013.csv")
    if data.is_file():
        with data.open(newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle), [])
        if not set(CSV_COLUMNS) <= set(header):
            raise FaceDataError(f"{data} has columns {header}; a FER2013 CSV needs {', '.join(CSV_COLUMNS)}")
        return
    for split in splits:
        _class_dirs(data / split, classes)


def _class_dirs(split_dir: Path, classes: tuple[str, ...]) -> list[Path]:
    if not split_dir.is_dir():
        raise FaceDataError(f"data folder {split_dir} not found: --data must hold {split_dir.name}/<class>/ "
                        "folders (as FER2013's train/ and test/), or be a fer2013.csv")
    present = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    missing = [c for c in classes if c not in present]
    if missing:
        unknown = [p for p in present if p not in FER2013_CLASSES]
        hint = f" (found unknown folders: {', '.join(unknown)})" if unknown else ""
        raise FaceDataError(f"class folder(s) {', '.join(missing)} missing in {split_dir}{hint}; "
                        f"choose --classes from the folders present: {', '.join(present) or 'none'}")
    return [split_dir / c for c in classes]


def load_folder_split(root: str | Path, split: str, classes: tuple[str, ...]) -> FaceSet:
    """Load ``ROOT/<split>/<class>/*`` for the given classes (label = index in ``classes``)."""
    images, labels, ids, skipped, converted = [], [], [], [], []
    for label, folder in enumerate(_class_dirs(Path(root) / split, classes)):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        kept = 0
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(path), "not an image file (by extension)"))
                continue
            raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if raw is None or raw.size == 0:
                skipped.append((str(path), "unreadable or corrupt image"))
                continue
            image, changes = to_face_image(raw)
            if changes:
                converted.append((str(path), ", ".join(changes)))
            images.append(image)
            labels.append(label)
            ids.append(str(path))
            kept += 1
        if kept == 0:
            raise FaceDataError(f"class folder {folder} holds no readable image; "
                            "add images or leave the class out of --classes")
    log.info("loaded %d images from %s (%d skipped, %d converted)", len(ids), Path(root) / split,
             len(skipped), len(converted))
    return FaceSet(np.stack(images), np.asarray(labels, np.int64), ids, classes, skipped, converted)


def load_csv_splits(csv_path: str | Path, classes: tuple[str, ...]) -> dict[str, FaceSet]:
    """Load fer2013.csv (columns emotion, pixels, Usage) into one FaceSet per split.

    Usage ``Training`` becomes ``train``, ``PublicTest`` ``test`` and ``PrivateTest``
    ``private_test``. Rows of classes not selected are left out.
    """
    csv_path = Path(csv_path)
    wanted = {FER2013_CLASSES.index(c): i for i, c in enumerate(classes)}
    rows: dict[str, tuple[list, list, list]] = {}
    skipped: list[tuple[str, str]] = []
    try:
        with csv_path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not set(CSV_COLUMNS) <= set(reader.fieldnames):
                raise FaceDataError(f"{csv_path} has columns {reader.fieldnames}; a FER2013 CSV needs "
                                f"{', '.join(CSV_COLUMNS)}")
            for n, row in enumerate(reader, start=2):
                row_id = f"{csv_path.name}:{n}"
                try:
                    emotion = int(row["emotion"])
                    pixels = np.array(row["pixels"].split(), dtype=np.int64)
                except (TypeError, ValueError):
                    skipped.append((row_id, "unparseable emotion or pixels"))
                    continue
                if pixels.size != IMAGE_SIZE * IMAGE_SIZE or pixels.min() < 0 or pixels.max() > 255:
                    skipped.append((row_id, f"{pixels.size} pixels (need {IMAGE_SIZE * IMAGE_SIZE} in 0..255)"))
                    continue
                if emotion not in wanted:
                    continue
                split = CSV_SPLITS.get(row["Usage"], row["Usage"])
                imgs, labs, ids = rows.setdefault(split, ([], [], []))
                imgs.append(pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
                labs.append(wanted[emotion])
                ids.append(row_id)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FaceDataError(f"cannot read {csv_path} as a FER2013 CSV: {exc}") from exc
    if not rows:
        raise FaceDataError(f"{csv_path} holds no usable row of the classes {', '.join(classes)}")
    return {split: FaceSet(np.stack(i), np.asarray(lab, np.int64), ids, classes, skipped, [])
            for split, (i, lab, ids) in rows.items()}


def load_split(data: str | Path, split: str, classes: tuple[str, ...]) -> FaceSet:
    """Load one split from a folder tree or a fer2013.csv, whichever ``data`` is."""
    data = Path(data)
    check_source(data, (), classes)
    if data.is_file():
        splits = load_csv_splits(data, classes)
        if split not in splits:
            raise FaceDataError(f"{data} has no rows for split {split!r} (has: {', '.join(sorted(splits))})")
        return splits[split]
    return load_folder_split(data, split, classes)
