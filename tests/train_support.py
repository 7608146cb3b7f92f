"""Tiny synthetic FER-style data sets, written inside the tests, with planted problems."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("happy", "neutral", "sad", "surprise")


def face(label: int, seed: int) -> np.ndarray:
    """A 48x48 uint8 image whose class is visible (a bright bar whose row depends on the label)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 90, (48, 48), dtype=np.uint8)
    img[6 + 10 * label: 12 + 10 * label, 4:44] = 230
    return img


def make_folder_dataset(root: Path, per_class: int = 10, test_per_class: int = 4,
                        classes: tuple[str, ...] = CLASSES, plant: bool = True) -> dict:
    """Write ``root/{train,test}/<class>/*.png``; with ``plant``, add known problems.

    Planted: one exact duplicate (same label), one duplicate with a conflicting label,
    one train image copied into test, one corrupt file, one colour image, one 64x64 image,
    and one non-image file. Returns what was planted.
    """
    seed = 0
    for split, n in (("train", per_class), ("test", test_per_class)):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                cv2.imwrite(str(folder / f"{split}_{name}_{i}.png"), face(label, seed))
    planted = {}
    if plant:
        train = root / "train"
        src = train / classes[0] / f"train_{classes[0]}_0.png"
        (train / classes[0] / "dup_same.png").write_bytes(src.read_bytes())
        conflict_src = train / classes[1] / f"train_{classes[1]}_0.png"
        (train / classes[2] / "dup_conflict.png").write_bytes(conflict_src.read_bytes())
        (root / "test" / classes[3] / "leaked.png").write_bytes(
            (train / classes[3] / f"train_{classes[3]}_1.png").read_bytes())
        (train / classes[0] / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        (train / classes[0] / "notes.txt").write_text("not an image")
        colour = cv2.cvtColor(face(0, 999), cv2.COLOR_GRAY2BGR)
        colour[:, :, 2] = 255
        cv2.imwrite(str(train / classes[0] / "colour.png"), colour)
        cv2.imwrite(str(train / classes[1] / "big.png"), cv2.resize(face(1, 998), (64, 64)))
        planted = {"duplicate_groups": 2, "conflict_groups": 1, "leaked": 1, "corrupt": "corrupt.jpg",
                   "colour": "colour.png", "resized": "big.png", "non_image": "notes.txt"}
    return planted


def make_csv(path: Path, rows: list[tuple[int, np.ndarray, str]], columns=("emotion", "pixels", "Usage")) -> Path:
    """Write a fer2013.csv-style file of (emotion code, 48x48 image, Usage) rows."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for emotion, img, usage in rows:
            writer.writerow([emotion, " ".join(str(int(v)) for v in img.reshape(-1)), usage])
    return path
