"""The views of a face a trained model is scored on: as seen, mirrored and, with a zoom, its centre enlarged.

One definition for the teachers of a run (``python -m train --teacher-flip --teacher-zoom``) and for the
graph of a fused ensemble (``python -m convert.ensemble --zoom``), so both average the same views.
"""

from __future__ import annotations

from typing import Any

#: what a zoom must be, as an error line says it
ZOOM_REQUIREMENT = "give a factor above 1 and at most 2 (1.09 enlarges a 48 px face's centre 44 px)"


def valid_zoom(zoom: float) -> bool:
    """Whether ``zoom`` enlarges the face's centre by a usable factor (NaN is not one)."""
    return 1 < zoom <= 2


def view_count(zoom: float | None, mirror: bool = True) -> int:
    """How many views :func:`face_views` gives each face."""
    return (1 if zoom is None else 2) * (2 if mirror else 1)


def zoom_crop(size: int, zoom: float) -> tuple[int, int]:
    """``(offset, side)`` of the centre square that, enlarged ``zoom`` times, fills a ``size``-pixel face."""
    side = round(size / zoom)
    return (size - side) // 2, side


def face_views(faces: Any, zoom: float | None = None, mirror: bool = True) -> list[Any]:
    """``faces`` (``N x H x W x C`` tensor) as a list of views, in this order: the faces, mirrored left to
    right (with ``mirror``); then, with ``zoom``, their centre enlarged ``zoom`` times (bilinear, half-pixel
    centres as OpenCV's ``INTER_LINEAR``) and that mirrored (with ``mirror``)."""
    from keras import ops

    views = [faces]
    if zoom is not None:
        height, width = int(faces.shape[1]), int(faces.shape[2])
        top, rows = zoom_crop(height, zoom)
        left, cols = zoom_crop(width, zoom)
        views.append(ops.image.resize(faces[:, top:top + rows, left:left + cols, :], (height, width),
                                      interpolation="bilinear"))
    if not mirror:
        return views
    return [v for view in views for v in (view, ops.flip(view, axis=2))]
