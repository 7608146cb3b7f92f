"""Frame and face-crop preprocessing: colour handling, face framing, the model's input tensor.

Frames may be grayscale (``HxW`` or ``HxWx1``), BGR (``HxWx3``) or BGRA (``HxWx4``), 8-bit
(16-bit and float frames are converted), of any size. Everything the model needs (input size,
dtype, value range, quantization) comes from its model card, never from constants here.

Face framing: FER2013 faces are tight, centred, square crops. A detector box is turned into the
model's crop by :func:`crop_box`: a square centred on the box, of side ``max(w, h) * (1 + 2 *
margin)``; the parts outside the frame are filled by replicating the border. The margin used
by default is measured per detector by ``benchmarks/crop_margin.py`` (see ``DEFAULT_MARGINS``
in :mod:`edge_runtime.detection.detectors`).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_runtime.model.card import InputSpec, quantize
from edge_runtime.results import Box


def as_uint8(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as ``uint8``: 16-bit is scaled down, float is read as 0..1 if its max <= 1."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return (frame >> 8).astype(np.uint8)
    if frame.dtype == np.bool_:
        return frame.astype(np.uint8) * 255
    if np.issubdtype(frame.dtype, np.floating):
        scale = 255.0 if frame.size and float(np.nanmax(frame)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(frame) * scale, 0, 255).astype(np.uint8)
    if np.issubdtype(frame.dtype, np.integer):
        return np.clip(frame, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported frame dtype {frame.dtype}: pass an 8-bit image")


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Validate a frame's shape (``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4``) and return it as uint8."""
    frame = np.asarray(frame)
    ok_shape = frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3, 4))
    if not ok_shape:
        raise ValueError(f"unsupported frame shape {frame.shape}: expected HxW (grayscale), "
                         "HxWx3 (BGR) or HxWx4 (BGRA)")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"empty frame (shape {frame.shape})")
    return as_uint8(frame)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A frame as a 2-D uint8 grayscale image (no copy when it already is one)."""
    frame = check_frame(frame)
    if frame.ndim == 2:
        return frame
    channels = frame.shape[2]
    if channels == 1:
        return frame[:, :, 0]
    code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(frame, code)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """A frame as an ``HxWx3`` uint8 RGB image (grayscale is replicated into three channels)."""
    frame = check_frame(frame)
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGR2RGB if frame.shape[2] == 3 else cv2.COLOR_BGRA2RGB
    return cv2.cvtColor(frame, code)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging when shrinking and bilinear interpolation when enlarging."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = image.shape[1] > width or image.shape[0] > height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def crop_box(box: Box, margin: float) -> Box:
    """The square region cropped for a face box: centred on it, side ``max(w, h) * (1 + 2 margin)``.

    The result may extend outside the frame; :func:`crop_face` fills that part.
    """
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1.0 + 2.0 * margin))))
    cx2, cy2 = 2 * x + w, 2 * y + h  # twice the centre, to stay in integers
    return (cx2 - side) // 2, (cy2 - side) // 2, side, side


def crop_face(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """Cut the square face region of :func:`crop_box` out of ``image``, replicating the border outside."""
    x, y, w, h = crop_box(box, margin)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 >= x1 or y0 >= y1:  # the region misses the frame entirely: use the nearest pixel
        x0, y0 = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
        x1, y1 = x0 + 1, y0 + 1
    region = image[y0:y1, x0:x1]
    pad = (y0 - y, y + h - y1, x0 - x, x + w - x1)
    if any(p > 0 for p in pad):
        region = cv2.copyMakeBorder(region, max(pad[0], 0), max(pad[1], 0), max(pad[2], 0),
                                    max(pad[3], 0), cv2.BORDER_REPLICATE)
    return region


def input_tensor(face: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The model's input for one face crop (any colour, any size): a ``1xHxWxC`` tensor.

    Follows the card: grey (``channels`` 1) or RGB (``channels`` 3, grey crops replicated), resize
    to ``height x width``, map pixels 0..255 to ``value_range``, then
    quantize with ``quantization`` (``q = round(x / scale) + zero_point``) for integer inputs.
    """
    pixels = to_rgb(face) if spec.channels == 3 else to_gray(face)
    pixels = resize(pixels, spec.width, spec.height).astype(np.float32)
    low, high = float(spec.value_range[0]), float(spec.value_range[1])
    values = pixels if (low, high) == (0.0, 255.0) else low + pixels * ((high - low) / 255.0)
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        if spec.quantization is None:
            raise ValueError(f"an {spec.dtype} input needs input.quantization in the model card")
        values = quantize(values, spec.quantization, dtype)
    return values.astype(dtype).reshape(1, spec.height, spec.width, spec.channels)
