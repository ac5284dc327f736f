"""``to_grey``: the one conversion of any image (grey, BGR, BGRA, 8- or 16-bit, float) to the grey
plane motion, the localiser and the recogniser look at. Apart from ``image_io``, whose import
checks OpenCV's decoding limit, so that a tool that loads cv2 first can convert without that check."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def to_grey(image: npt.NDArray) -> npt.NDArray[np.uint8]:
    """Grey uint8 from grey, BGR, BGRA, 8- or 16-bit input.

    Raises:
        ValueError: for an empty array or a shape that is not an image.
    """
    img = np.asarray(image)
    if img.size == 0 or img.ndim not in (2, 3):
        raise ValueError(f"not an image: shape {img.shape}")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = np.nan_to_num(img, nan=0.0, posinf=255.0, neginf=0.0)
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 3:
        channels = img.shape[2]
        if channels == 1:
            img = img[:, :, 0]
        elif channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif channels == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
        else:
            raise ValueError(f"not an image: {channels} channels")
    return np.ascontiguousarray(img)
