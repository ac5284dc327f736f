"""Drawing what the pipeline saw: ROI, motion, candidate boxes and readings on a frame.

Shared by ``edge-ocr tune`` (written to a file) and the HTTP live view (``/api/snapshot.jpg``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from ..types import Box


def annotate(image: npt.NDArray[np.uint8], polygons: Iterable[npt.NDArray] = (),
             items: Sequence[tuple[Box, str]] = (), motion_mask: npt.NDArray | None = None) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` with the motion mask tinted, ROI polygons in yellow and each
    (box, label) in green. The input is never modified (it may be the pipeline's frame)."""
    img = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    if motion_mask is not None and motion_mask.any():
        mask = cv2.resize(motion_mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0
        img[mask] = (0.6 * img[mask] + 0.4 * np.array([255, 0, 255])).astype(np.uint8)
    for poly in polygons:
        cv2.polylines(img, [np.asarray(poly).astype(np.int32)], True, (0, 255, 255), 2)
    scale = max(0.4, min(1.2, w / 1600))
    for (x, y, bw, bh), label in items:
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 255, 0), 2)
        if label:
            cv2.putText(img, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), 2)
    return img
