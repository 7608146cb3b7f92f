"""Faces and their expressions with MediaPipe Tasks alone: FaceDetector -> square crop -> ImageClassifier.

What an Android, iOS or web app does with our models, in Python: no fer-edge code, only ``mediapipe``
(run it in the venv of ``make setup-mobile``)::

    .venv-mobile/bin/python examples/mediapipe_face_to_expression.py ../shared/media/photos/obama_and_biden.jpg

Detector: MediaPipe's FaceDetector with the BlazeFace model bundled in edge_runtime/face_detection/.
Both bundled files load although they carry no metadata; on group photos, where faces are small,
``face_detection_full_range_sparse.tflite`` (the default here) finds faces the short-range model misses.
Classifier: a ``*_mobile.tflite`` model (uint8 RGB in, labels from its TFLite metadata).
Each face box is widened into a square by ``--margin`` of its side on each side (0.05: the margin
measured for BlazeFace, docs/crop-margin.md), padded by replicating the border, then classified.
Prints one JSON object: the faces, each with its box, detection score, expression and scores. MediaPipe's
native start-up lines (LiteRT, XNNPACK, GPU registration: about 55 on stderr) are silenced unless
``--native-logs`` is given; Python's own errors still show.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

ROOT = Path(__file__).resolve().parents[1]
DETECTOR = ROOT / "edge_runtime" / "face_detection" / "face_detection_full_range_sparse.tflite"
CLASSIFIER = ROOT / "models" / "fer4_mobile.tflite"


@contextlib.contextmanager
def native_logs_silenced(silence: bool = True) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 (stderr) to /dev/null while inside, then restore it.

    MediaPipe's C++ logs through fd 2 directly, past ``sys.stderr``, so only the descriptor can quiet it.
    """
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def square_crop(rgb, box: tuple[int, int, int, int], margin: float):
    """The square region centred on ``box`` of side ``max(w, h) * (1 + 2 margin)``, border replicated."""
    import numpy as np

    x, y, w, h = box
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    x0, y0 = (2 * x + w - side) // 2, (2 * y + h - side) // 2
    height, width = rgb.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else rgb
    return np.ascontiguousarray(padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side])


def faces_and_expressions(image_path: str, detector_path: str, classifier_path: str, margin: float,
                          min_detection: float = 0.5) -> list[dict]:
    """Every face MediaPipe's FaceDetector finds in the image, with the classifier's expression."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    image = mp.Image.create_from_file(image_path)
    rgb = image.numpy_view()[..., :3]
    detector_options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=detector_path),
                                                  min_detection_confidence=min_detection)
    classifier_options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=classifier_path),
                                                       max_results=-1)
    faces = []
    with vision.FaceDetector.create_from_options(detector_options) as detector, \
            vision.ImageClassifier.create_from_options(classifier_options) as classifier:
        for detection in detector.detect(image).detections:
            b = detection.bounding_box
            box = (b.origin_x, b.origin_y, b.width, b.height)
            crop = mp.Image(image_format=mp.ImageFormat.SRGB, data=square_crop(rgb, box, margin))
            categories = classifier.classify(crop).classifications[0].categories
            best = max(categories, key=lambda c: c.score)
            faces.append({"box": list(box), "detection_score": round(detection.categories[0].score, 4),
                          "expression": best.category_name,
                          "scores": {c.category_name: round(c.score, 4) for c in categories}})
    return sorted(faces, key=lambda face: face["box"][0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("image", help="a photo (JPEG or PNG)")
    p.add_argument("--detector", default=str(DETECTOR), help="BlazeFace .tflite (default: %(default)s)")
    p.add_argument("--model", default=str(CLASSIFIER), help="a *_mobile.tflite model (default: %(default)s)")
    p.add_argument("--margin", type=float, default=0.05, help="crop margin per side (default: %(default)s)")
    p.add_argument("--min-detection", type=float, default=0.5, help="face score threshold (default: %(default)s)")
    p.add_argument("--native-logs", action="store_true", help="show MediaPipe's native log lines on stderr")
    args = p.parse_args(argv)
    for path in (args.image, args.detector, args.model):
        if not Path(path).is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 2
    try:
        with native_logs_silenced(not args.native_logs):
            import mediapipe  # noqa: F401
    except ImportError:
        print("error: mediapipe is not installed; run it with .venv-mobile/bin/python (make setup-mobile)",
              file=sys.stderr)
        return 2
    with native_logs_silenced(not args.native_logs):
        faces = faces_and_expressions(args.image, args.detector, args.model, args.margin, args.min_detection)
    print(json.dumps({"image": args.image, "faces": faces}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
