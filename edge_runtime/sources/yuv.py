"""YUV420 (I420) camera buffers: the Y plane as grayscale, the whole buffer as BGR for the face detector.

picamera2 hands out a YUV420 stream as one ``(height * 3 / 2, stride)`` uint8 array: ``height`` rows
of Y, then the U and V planes, each ``height / 2`` rows of ``stride / 2`` bytes. Rows are padded to
``stride`` bytes (e.g. 640 -> 640 or 768), so the planes are cut to the image width before use.
"""

from __future__ import annotations

import cv2
import numpy as np


def as_planar(buffer: np.ndarray, width: int, height: int, stride: int) -> np.ndarray:
    """The buffer as a ``(height * 3 / 2, stride)`` array (a flat buffer is reshaped)."""
    rows = height * 3 // 2
    if buffer.ndim == 1:
        return buffer[: rows * stride].reshape(rows, stride)
    return buffer[:rows]


def y_plane(buffer: np.ndarray, width: int, height: int, stride: int) -> np.ndarray:
    """The luma plane, cut to ``width`` (contiguous): the classifier's grayscale frame."""
    return np.ascontiguousarray(as_planar(buffer, width, height, stride)[:height, :width])


def yuv420_to_bgr(buffer: np.ndarray, width: int, height: int, stride: int) -> np.ndarray:
    """The ``HxWx3`` BGR image of a YUV420 buffer whose rows are ``stride`` bytes (even width and height)."""
    if width % 2 or height % 2:
        raise ValueError(f"YUV420 needs an even width and height (got {width}x{height})")
    planar = as_planar(buffer, width, height, stride)
    if stride != width:  # repack the three planes without their row padding
        half_w, half_h, half_s = width // 2, height // 2, stride // 2
        chroma = planar[height:].reshape(-1)
        u = chroma[: half_h * half_s].reshape(half_h, half_s)[:, :half_w]
        v = chroma[half_h * half_s: 2 * half_h * half_s].reshape(half_h, half_s)[:, :half_w]
        packed = np.empty((height * 3 // 2, width), np.uint8)
        packed[:height] = planar[:height, :width]
        flat = packed[height:].reshape(-1)
        flat[: half_h * half_w] = u.reshape(-1)
        flat[half_h * half_w:] = v.reshape(-1)
        planar = packed
    return cv2.cvtColor(np.ascontiguousarray(planar), cv2.COLOR_YUV2BGR_I420)

