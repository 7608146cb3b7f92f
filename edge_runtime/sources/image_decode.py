"""Decoding still images within a memory budget.

A 100-megapixel photo decodes to 300 MB of BGR pixels before anything else runs, past what a small
board (or ``MemoryMax=512M`` in deploy/fer-edge.service) allows. :func:`decode_image` reads the image's
size from its header first: a JPEG larger than :data:`MAX_DECODE_PIXELS` is decoded at 1/2, 1/4 or 1/8
scale by libjpeg itself (no full-size buffer is ever made); any other format that large is refused with
one line.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from edge_runtime.errors import SourceError

#: The most pixels an image may decode to (a 24-megapixel camera photo fits; faces stay far larger
#: than a detector needs after a reduced decode).
MAX_DECODE_PIXELS = 25_000_000
_REDUCED_COLOR = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                  (8, cv2.IMREAD_REDUCED_COLOR_8))
# JPEG start-of-frame markers (SOF0..SOF15 but DHT, JPG and DAC), which carry the image size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """``(format, width, height)`` from a PNG, JPEG, BMP or GIF header; ``None`` for other formats or a
    header too short to tell."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
        return None if size is None else ("jpeg", *size)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return "bmp", abs(width), abs(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "gif", width, height
    return None


def decode_image(data: np.ndarray, name: str, max_pixels: int = MAX_DECODE_PIXELS) -> np.ndarray | None:
    """Decode encoded image bytes to BGR within ``max_pixels``; ``None`` if they are not an image.

    Raises :class:`SourceError` for an image larger than ``max_pixels`` that cannot be decoded reduced.
    """
    header = image_size(data[:65536].tobytes())
    flag = cv2.IMREAD_COLOR
    if header is not None:
        kind, width, height = header
        pixels = width * height
        if pixels > max_pixels:
            factor, flag = next(((f, fl) for f, fl in _REDUCED_COLOR if pixels / (f * f) <= max_pixels),
                                _REDUCED_COLOR[-1])
            if kind != "jpeg" or pixels / (factor * factor) > max_pixels:
                raise SourceError(f"{name} is {width}x{height} ({pixels / 1e6:.0f} megapixels), more than the "
                                  f"{max_pixels / 1e6:.0f} megapixels decoded at most; resize it (or save it as "
                                  "JPEG, which is decoded reduced)")
    image = cv2.imdecode(data, flag)
    return image if image is not None and image.size else None
