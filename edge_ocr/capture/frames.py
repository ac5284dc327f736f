"""Frames in: check that a frame is an image worth reading, and compute once what every later
stage needs of it (``FrameRecord``): the full-resolution BGR image to cut crops from and one grey
plane to gate and search on (picamera2's lores Y plane when the source gave one)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ..types import Frame, FrameRecord
from .grey import to_grey

MIN_SIDE, MAX_SIDE = 16, 16384


def usable_image(image: Any) -> npt.NDArray[np.uint8] | None:
    """A frame as 8-bit BGR, or None if it is not an image worth reading: empty, a side under
    16 or over 16384 px, an odd channel count, or a float frame that is not all finite.
    Grey, BGRA and 16-bit frames are converted."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        return None
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        return None
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 3, 4):
        return None
    img = image
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype.kind == "f":
        if not np.isfinite(img).all():
            return None
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        return None
    if channels == 1:
        return cv2.cvtColor(img.reshape(h, w), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img if img.flags.c_contiguous else np.ascontiguousarray(img)


def _lores_plane(frame: Frame, width: int, height: int) -> npt.NDArray[np.uint8] | None:
    """The source's lores grey plane if it has a usable one: 2-D uint8, no larger than the frame,
    and of the same shape (a lores stream of another aspect would put boxes in the wrong place)."""
    lores = getattr(frame, "lores", None)
    if not isinstance(lores, np.ndarray) or lores.ndim != 2 or lores.dtype != np.uint8:
        return None
    lh, lw = lores.shape
    if min(lh, lw) < MIN_SIDE or lw > width or lh > height or abs(lw / lh - width / height) > 0.02 * width / height:
        return None
    return lores


def frame_record(frame: Frame) -> FrameRecord | None:
    """``frame`` -> its ``FrameRecord``, or None if its image is not usable (``usable_image``)."""
    image = usable_image(frame.image)
    if image is None:
        return None
    h, w = image.shape[:2]
    grey = _lores_plane(frame, w, h)
    if grey is None:
        grey = to_grey(image)
    return FrameRecord(frame.ts, frame.wall, image, grey, frame.index)
