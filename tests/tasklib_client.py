"""A TFLite Task Library client of our models, run by tests/test_mobile_clients.py in .venv-tasklib.

It needs only ``tflite-support`` (pinned protobuf 3.20, hence a venv of its own) and OpenCV. Reads a
JSON request on stdin, prints a JSON answer:

- ``{"metadata": [PATH, ...]}``: tflite-support's own MetadataDisplayer on each model: its metadata
  as JSON and its packed associated files.
- ``{"model": PATH, "images": [PATH, ...]}``: the Task Library's ImageClassifier on each grey image
  given as RGB: category names by index and each image's top-1 index.
"""

from __future__ import annotations

import json


def metadata(paths: list[str]) -> dict:
    from tflite_support import metadata as tflite_metadata

    answer = {}
    for path in paths:
        displayer = tflite_metadata.MetadataDisplayer.with_model_file(path)
        answer[path] = {"metadata": json.loads(displayer.get_metadata_json()),
                        "files": displayer.get_packed_associated_file_list(),
                        "labels": displayer.get_associated_file_buffer("labels.txt").decode().split()}
    return answer


def classify(model: str, images: list[str]) -> dict:
    import cv2
    import numpy as np
    from tflite_support.task import core, processor, vision

    options = vision.ImageClassifierOptions(base_options=core.BaseOptions(file_name=model),
                                            classification_options=processor.ClassificationOptions(max_results=-1))
    classifier = vision.ImageClassifier.create_from_options(options)
    names: dict[int, str] = {}
    top1 = []
    for path in images:
        grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
        categories = classifier.classify(vision.TensorImage.create_from_array(rgb)).classifications[0].categories
        names.update({c.index: c.category_name for c in categories})
        top1.append(max(categories, key=lambda c: c.score).index)
    return {"names": [names[i] for i in sorted(names)], "top1": top1}


if __name__ == "__main__":
    from client_io import serve  # beside this script, on sys.path when it runs

    serve(classify, metadata)
