"""BlazeFace (MediaPipe's face detector) on LiteRT: letterboxing, SSD anchors, box decoding, NMS.

Both MediaPipe 0.10.21 models ship with the package (``edge_runtime/face_detection/``, Apache-2.0):
``face_detection_short_range`` (128x128 input, 896 anchors: faces near the camera) and
``face_detection_full_range_sparse`` (192x192, 2304 anchors: faces up to a room away). The anchor and
decoding parameters are those of MediaPipe's graphs, chosen from the model's input size. Boxes are
merged with MediaPipe's weighted non-maximum suppression; scores are probabilities in [0, 1].
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.errors import ModelError
from edge_runtime.model.litert import make_interpreter
from edge_runtime.model.preprocessing import to_rgb
from edge_runtime.paths import BLAZEFACE_FILES, find_blazeface_model
from edge_runtime.results import Detection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnchorConfig:
    """MediaPipe SsdAnchorsCalculator options (fixed-size anchors, aspect ratio 1)."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with the interpolated-scale anchor, else 1
    min_score: float        # the graph's min_score_thresh


ANCHOR_CONFIGS = {
    128: AnchorConfig(128, (8, 16, 16, 16), 2, 0.5),  # face_detection_short_range
    192: AnchorConfig(192, (4,), 1, 0.6),             # face_detection_full_range(_sparse)
}


def ssd_anchors(config: AnchorConfig) -> np.ndarray:
    """Anchor centres ``(N, 2)`` as (x, y) in 0..1; layers of the same stride share a grid."""
    centres = []
    i = 0
    strides = config.strides
    while i < len(strides):
        stride = strides[i]
        layers = 0
        while i < len(strides) and strides[i] == stride:
            layers += 1
            i += 1
        size = math.ceil(config.input_size / stride)
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        grid = np.stack([(xs + 0.5) / size, (ys + 0.5) / size], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, layers * config.anchors_per_layer, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode regressors ``(N, 16)`` into boxes ``(N, 4)`` (x0, y0, x1, y1) and keypoints ``(N, 6, 2)``.

    Both are in 0..1 of the (letterboxed) input.
    """
    scaled = raw / float(input_size)
    centre = scaled[:, 0:2] + anchors
    half = scaled[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = scaled[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    return boxes, keypoints


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of ``boxes``."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes their score-weighted mean.

    Returns ``(box, keypoints, score)`` per face, best first; the score is the cluster's best.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    faces = []
    remaining = np.arange(len(scores))
    while remaining.size:
        overlap = iou_one_to_many(boxes[remaining[0]], boxes[remaining]) > iou_threshold
        cluster = remaining[overlap]
        weights = scores[cluster][:, None]
        box = (boxes[cluster] * weights).sum(0) / weights.sum()
        points = (keypoints[cluster] * weights[:, :, None]).sum(0) / weights.sum()
        faces.append((box, points, float(scores[cluster[0]])))
        remaining = remaining[~overlap]
    return faces


class BlazeFaceDetector:
    """One BlazeFace model on the LiteRT interpreter (loaded once).

    ``model_path`` is a BlazeFace .tflite, or ``short-range`` / ``full-range`` for a bundled one
    (default: short-range). ``min_score`` defaults to the graph's own threshold (0.5 short-range,
    0.6 full-range); ``iou_threshold`` is MediaPipe's 0.3.
    """

    name = "blazeface"
    uses_color = True

    def __init__(self, model_path: str | Path | None = None, num_threads: int | None = None,
                 min_score: float | None = None, iou_threshold: float = 0.3) -> None:
        kind = str(model_path or "short-range")
        path = find_blazeface_model(kind) if kind in BLAZEFACE_FILES else Path(kind)
        if path is None or not path.is_file():
            where = path or f"the bundled {BLAZEFACE_FILES[kind]} is missing from this install"
            raise ModelError(f"BlazeFace model not found ({where}); pass a BlazeFace .tflite with "
                             f"--detector-model, e.g. {BLAZEFACE_FILES['short-range']}")
        try:
            self.interpreter = make_interpreter(str(path), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load BlazeFace model {path} ({exc})") from exc
        inp = self.interpreter.get_input_details()[0]
        size = int(inp["shape"][1])
        if size not in ANCHOR_CONFIGS or tuple(inp["shape"][1:]) != (size, size, 3):
            raise ModelError(f"{path} is not a BlazeFace model (input {tuple(inp['shape'])}); "
                             f"use {' or '.join(BLAZEFACE_FILES.values())}")
        self.config = ANCHOR_CONFIGS[size]
        self.anchors = ssd_anchors(self.config)
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: int(d["shape"][-1]))
        self._scores_index, self._boxes_index = outputs[0]["index"], outputs[1]["index"]
        if int(outputs[1]["shape"][1]) != len(self.anchors):
            raise ModelError(f"{path}: {outputs[1]['shape'][1]} boxes but {len(self.anchors)} anchors; "
                             "not a BlazeFace model")
        self._input_index = inp["index"]
        self.min_score = self.config.min_score if min_score is None else min_score
        self.iou_threshold = iou_threshold
        self.model_path = path

    def _letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """Fit the frame into the square input keeping its aspect ratio (black bars, centred)."""
        rgb = to_rgb(frame)
        height, width = rgb.shape[:2]
        side = max(height, width)
        pad_x, pad_y = (side - width) / 2.0, (side - height) / 2.0
        square = cv2.copyMakeBorder(rgb, int(pad_y), side - height - int(pad_y), int(pad_x),
                                    side - width - int(pad_x), cv2.BORDER_CONSTANT, value=0)
        size = self.config.input_size
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        tensor = cv2.resize(square, (size, size), interpolation=interpolation)
        return tensor, float(side), float(int(pad_x)), float(int(pad_y))

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in ``frame``, boxes and keypoints in its pixels, best first."""
        tensor, side, pad_x, pad_y = self._letterbox(frame)
        x = (tensor.astype(np.float32) / 127.5 - 1.0)[None]
        self.interpreter.set_tensor(self._input_index, x)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes_index)[0]
        logits = self.interpreter.get_tensor(self._scores_index)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        boxes, keypoints = decode_boxes(raw[keep], self.anchors[keep], self.config.input_size)
        found = []
        for box, points, score in weighted_nms(boxes, keypoints, scores[keep], self.iou_threshold):
            x0, y0, x1, y1 = box * side - np.array([pad_x, pad_y, pad_x, pad_y])
            kps = tuple((float(px * side - pad_x), float(py * side - pad_y)) for px, py in points)
            found.append(Detection(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                                   score=score, keypoints=kps))
        return found
