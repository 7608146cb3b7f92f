"""Face alignment: rotate the face crop so the eyes are level.

BlazeFace gives six keypoints per face, in frame pixels and in MediaPipe's order: the subject's
right eye (on the image's left for a camera that does not mirror), left eye, nose tip, mouth,
right ear tragion, left ear tragion. The eye line's angle is measured from the first two; the
square crop of :func:`edge_runtime.model.preprocessing.crop_box` is then sampled from the frame rotated
by that angle around the crop's centre. Only the crop's pixels are computed (one ``warpAffine``
into a crop-sized output), never the whole rotated frame; outside the frame the border is
replicated, as :func:`~edge_runtime.model.preprocessing.crop_face` does. Detections without keypoints
(Haar) are cropped unrotated.

Whether alignment is on by default is measured by ``benchmarks/alignment.py`` (docs/crop-margin.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from edge_runtime.model.preprocessing import crop_box, crop_face
from edge_runtime.results import Box

#: Whether the recognizer, the daemon and the benchmarks align faces unless told otherwise.
DEFAULT_ALIGN = False
#: Keypoint indices of the subject's right and left eye in a BlazeFace detection.
RIGHT_EYE, LEFT_EYE = 0, 1


def eye_angle(keypoints: Sequence[tuple[float, float]]) -> float | None:
    """The eye line's angle in degrees (image coordinates, y down: positive when the eye on the image's
    right is lower, i.e. the face is turned clockwise on screen); ``None`` without eye keypoints."""
    if len(keypoints) <= max(RIGHT_EYE, LEFT_EYE):
        return None
    (rx, ry), (lx, ly) = keypoints[RIGHT_EYE], keypoints[LEFT_EYE]
    if rx == lx and ry == ly:
        return None
    return math.degrees(math.atan2(ly - ry, lx - rx))


def rotated_crop(image: np.ndarray, box: Box, margin: float, angle: float) -> np.ndarray:
    """The square crop of ``box`` (as :func:`crop_face` frames it) from ``image`` rotated by ``angle``
    degrees counter-clockwise on screen around the crop's centre; angle 0 gives ``crop_face``'s pixels."""
    if angle == 0.0:
        return crop_face(image, box, margin)
    x, y, side, _ = crop_box(box, margin)
    centre = (x + (side - 1) / 2.0, y + (side - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    matrix[:, 2] -= (x, y)  # output pixel (0, 0) is the crop's top-left corner
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def aligned_crop(image: np.ndarray, box: Box, margin: float,
                 keypoints: Sequence[tuple[float, float]] = ()) -> np.ndarray:
    """The face crop with the eyes level when ``keypoints`` give them, else :func:`crop_face`'s crop."""
    angle = eye_angle(keypoints)
    return crop_face(image, box, margin) if angle is None else rotated_crop(image, box, margin, angle)
