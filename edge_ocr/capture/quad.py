"""Plate quadrilaterals: boxes, overlap, corner order and cutting a tilted plate out upright."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from ..types import Box


def centre_inside(quad: npt.NDArray[np.float32], mask: npt.NDArray[np.uint8]) -> bool:
    x, y = quad.mean(axis=0)
    xi, yi = round(x), round(y)
    return 0 <= yi < mask.shape[0] and 0 <= xi < mask.shape[1] and bool(mask[yi, xi])


def bounding_box(quad: npt.NDArray[np.float32], width: int, height: int) -> Box:
    """Integer (x, y, w, h) around points (N, 2), clipped to the image (quads, ROI polygons)."""
    # a little slack so float32 scaling (0.6 * 200 = 120.000005) does not add a pixel
    x0 = int(np.clip(np.floor(quad[:, 0].min() + 1e-3), 0, width))
    y0 = int(np.clip(np.floor(quad[:, 1].min() + 1e-3), 0, height))
    x1 = int(np.clip(np.ceil(quad[:, 0].max() - 1e-3), 0, width))
    y1 = int(np.clip(np.ceil(quad[:, 1].max() - 1e-3), 0, height))
    return x0, y0, x1 - x0, y1 - y0


def extent(quad: npt.NDArray[np.float32]) -> tuple[float, float, float, float]:
    """(x, y, w, h) around points (N, 2), unclipped and unrounded (for ``iou`` between quads)."""
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def iou(a: Box | tuple[float, ...], b: Box | tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when either is empty."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def order_quad(pts: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Four points -> top-left, top-right, bottom-right, bottom-left."""
    s = pts.sum(axis=1)
    d = pts[:, 1] - pts[:, 0]
    return np.array([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]], np.float32)


def warp_quad(
    image: npt.NDArray[np.uint8], quad: npt.NDArray[np.float32], margin: float = 0.0
) -> npt.NDArray[np.uint8]:
    """Cut the quadrilateral ``quad`` (tl, tr, br, bl) out of ``image`` as an upright rectangle.

    Args:
        image: BGR or grey image.
        quad: (4, 2) corners in ``image`` pixels; may reach outside the image (border replicated).
        margin: fraction of the width/height added on each side.

    Returns:
        The deskewed crop, at least 1x1 px, same channels as ``image``.
    """
    q = np.asarray(quad, np.float32)
    top, right = q[1] - q[0], q[2] - q[1]
    bottom, left = q[2] - q[3], q[3] - q[0]
    w = max(float(np.hypot(*top)), float(np.hypot(*bottom)))
    h = max(float(np.hypot(*left)), float(np.hypot(*right)))
    # grow the quad along its own axes so the margin follows the tilt
    ux = (top + bottom) / 2 / max(w, 1e-6)
    uy = (left + right) / 2 / max(h, 1e-6)
    mx, my = margin * w, margin * h
    src = np.array(
        [q[0] - mx * ux - my * uy, q[1] + mx * ux - my * uy, q[2] + mx * ux + my * uy, q[3] - mx * ux + my * uy],
        np.float32,
    )
    ow, oh = max(1, round(w + 2 * mx)), max(1, round(h + 2 * my))
    dst = np.array([[0, 0], [ow - 1, 0], [ow - 1, oh - 1], [0, oh - 1]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(image, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, np.uint8)
