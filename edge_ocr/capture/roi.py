"""Regions of interest: polygons in relative (0..1) or pixel units -> masks and bounding boxes.

Pixel polygons are in the coordinates of the full camera frame (``frame_size``); every method
takes the size of the image it is used on and scales the polygons to it, so the same ROI works
on the full frame, a downscaled copy for localisation and a small motion frame.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from ..types import Box
from .quad import bounding_box

log = logging.getLogger(__name__)

Point = tuple[float, float]


class Roi:
    """One or more polygons; the union is the region of interest.

    Args:
        polygons: each a sequence of 3 or more (x, y) points.
        units: ``"relative"`` (0..1 of the image size) or ``"pixels"`` (of ``frame_size``).
        frame_size: (width, height) the pixel coordinates refer to. ``None`` means "the size of
            whatever image the ROI is applied to" (only matters for pixel units).
        fixed_box: the ROI is the plate itself (gate camera); the daemon skips localisation.

    Plain values: the ranges are the ``roi`` config section's, checked once there (``config.py``).
    """

    def __init__(
        self,
        polygons: Sequence[Sequence[Point]],
        units: str,
        frame_size: tuple[int, int] | None = None,
        *,
        fixed_box: bool,
    ) -> None:
        self.units = units
        self.frame_size = frame_size
        self.fixed_box = fixed_box
        self._polys = tuple(tuple((float(x), float(y)) for x, y in p) for p in polygons)
        self._windows: dict[tuple[int, int, int, int], Window] = {}  # see window()

    def with_frame_size(self, frame_size: tuple[int, int]) -> Roi:
        """This ROI with pixel coordinates tied to ``frame_size`` (width, height), unless it
        already has one. Relative ROIs come back unchanged."""
        if self.units == "relative" or self.frame_size is not None:
            return self
        return Roi(self._polys, self.units, frame_size, fixed_box=self.fixed_box)

    @classmethod
    def full(cls) -> Roi:
        """The whole image."""
        return cls([[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]], "relative", fixed_box=False)

    def polygons(self, width: int, height: int) -> list[npt.NDArray[np.float32]]:
        """The polygons as (N, 2) float32 arrays in the pixels of a ``width`` x ``height`` image."""
        if self.units == "relative":
            sx, sy = float(width), float(height)
        else:
            fw, fh = self.frame_size or (width, height)
            sx, sy = width / fw, height / fh
        return [np.array(p, np.float32) * np.array([sx, sy], np.float32) for p in self._polys]

    def mask(self, width: int, height: int) -> npt.NDArray[np.uint8]:
        """A ``height`` x ``width`` uint8 mask, 255 inside any polygon, 0 outside.

        The returned array is cached and shared: do not write to it.
        """
        return _mask(self._polys, self.units, self.frame_size, width, height)

    def covers_all(self, width: int, height: int) -> bool:
        """True if the ROI is the whole image (so masking can be skipped)."""
        for p in self.polygons(width, height):
            # an axis-aligned rectangle around the image (Roi.full(), a whole-frame config) needs
            # no mask: this spares a full-size mask for every upload size a still is read at
            if _is_rectangle(p) and p[:, 0].min() <= 0 and p[:, 1].min() <= 0 \
                    and p[:, 0].max() >= width and p[:, 1].max() >= height:
                return True
        m = self.mask(width, height)
        return bool(m.min() == 255)

    def bbox(self, width: int, height: int) -> Box:
        """Bounding box (x, y, w, h) of all polygons, clipped to the image; (0, 0, 0, 0) if empty."""
        return bounding_box(np.concatenate(self.polygons(width, height)), width, height)

    def window(self, plane: tuple[int, int], source: tuple[int, int]) -> Window:
        """Where a localiser searches a ``plane`` (width, height) of a frame whose crops are cut
        from an image of size ``source``: this ROI's bounding rectangle there and its mask.
        Worked out once per pair of sizes (the daemon's ROI is one per frame size, see
        ``stages.FrameReader``), so a frame costs no polygon or mask work."""
        key = (*plane, *source)
        win = self._windows.get(key)
        if win is None:
            w, h = plane
            mask = None if self.covers_all(w, h) else self.mask(w, h)
            win = Window(*self.bbox(w, h), mask, (source[0] / w, source[1] / h))
            # stills of ever new sizes must not pile up: a few windows, their masks within the
            # mask cache's budget (a window holds its mask even after that cache let it go)
            size = 0 if mask is None else mask.nbytes
            held = sum(x.plane_mask.nbytes for x in self._windows.values() if x.plane_mask is not None)
            if len(self._windows) >= 8 or held + size > MASK_CACHE_BYTES:
                self._windows.clear()
            if size <= MASK_CACHE_BYTES:
                self._windows[key] = win
        return win

    def boxes(self, width: int, height: int) -> list[Box]:
        """Bounding box of each polygon separately, clipped to the image."""
        return [bounding_box(p, width, height) for p in self.polygons(width, height)]


@dataclass(frozen=True)
class Window:
    """The part of a search plane a localiser looks at (``Roi.window``, ``search_window``): the
    ROI's bounding rectangle ``x, y, w, h`` in the plane's pixels, the ROI's mask of the whole
    plane (None when the ROI covers it), and the scale from the plane to the image crops are cut
    from (the plane may be a small copy of it, such as picamera2's lores plane)."""

    x: int
    y: int
    w: int
    h: int
    plane_mask: npt.NDArray[np.uint8] | None = field(repr=False)
    scale: tuple[float, float]

    def cut(self, plane: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The window of ``plane`` (a view, not a copy)."""
        return plane[self.y : self.y + self.h, self.x : self.x + self.w]

    def mask(self) -> npt.NDArray[np.uint8] | None:
        """The ROI's mask of the window (a view of the shared mask: do not write to it)."""
        return None if self.plane_mask is None else self.cut(self.plane_mask)

    def in_plane(self, quad: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Points in the window's pixels -> the plane's."""
        return quad + np.array([self.x, self.y], np.float32)

    def to_source(self, quad: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Points in the window's pixels -> the source image's (where crops are cut)."""
        return self.in_plane(quad) * np.array(self.scale, np.float32)


def search_window(roi: Roi | None, plane: tuple[int, int], source: tuple[int, int]) -> Window:
    """The window both localisers search: ``roi`` (pixel ROIs in the source's pixels; None: the
    whole plane) on a ``plane`` (width, height) of an image of size ``source``."""
    if roi is None:
        return Window(0, 0, plane[0], plane[1], None, (source[0] / plane[0], source[1] / plane[1]))
    return roi.with_frame_size(source).window(plane, source)


def _is_rectangle(p: npt.NDArray[np.float32]) -> bool:
    """Four points walking an axis-aligned rectangle: its four corners, each step along one axis."""
    corners = {(float(x), float(y)) for x, y in p}
    if len(p) != 4 or len(corners) != 4 or len({x for x, _ in corners}) != 2 or len({y for _, y in corners}) != 2:
        return False
    return all((p[i, 0] == p[i - 1, 0]) != (p[i, 1] == p[i - 1, 1]) for i in range(4))


# Masks kept for reuse, most recently used last, at most MASK_CACHE_BYTES in all: the daemon asks
# for the same few sizes on every frame (a 1080p camera's full, localiser and motion masks take
# under 3 MB), while stills of ever new sizes must not pile up (16 masks of 24 MP were 384 MB).
MASK_CACHE_BYTES = 16 * 1024 * 1024
_masks: OrderedDict[tuple, npt.NDArray[np.uint8]] = OrderedDict()
_masks_lock = threading.Lock()


def _mask(
    polys: tuple[tuple[Point, ...], ...],
    units: str,
    frame_size: tuple[int, int] | None,
    width: int,
    height: int,
) -> npt.NDArray[np.uint8]:
    key = (polys, units, frame_size, width, height)
    with _masks_lock:
        m = _masks.get(key)
        if m is not None:
            _masks.move_to_end(key)
            return m
    m = _draw_mask(polys, units, frame_size, width, height)
    if m.nbytes <= MASK_CACHE_BYTES:  # a bigger one is used once and freed
        with _masks_lock:
            _masks[key] = m
            total = sum(v.nbytes for v in _masks.values())
            while total > MASK_CACHE_BYTES:
                total -= _masks.popitem(last=False)[1].nbytes
    return m


def mask_cache_bytes() -> int:
    """Bytes held by cached masks (never more than MASK_CACHE_BYTES)."""
    with _masks_lock:
        return sum(v.nbytes for v in _masks.values())


def _draw_mask(
    polys: tuple[tuple[Point, ...], ...],
    units: str,
    frame_size: tuple[int, int] | None,
    width: int,
    height: int,
) -> npt.NDArray[np.uint8]:
    roi = Roi(polys, units, frame_size, fixed_box=False)
    m = np.zeros((height, width), np.uint8)
    # fillPoly with a shift keeps sub-pixel precision for small (motion-sized) masks
    shift = 4
    pts = [np.round(p * (1 << shift)).astype(np.int32) for p in roi.polygons(width, height)]
    cv2.fillPoly(m, pts, 255, lineType=cv2.LINE_8, shift=shift)
    m.setflags(write=False)
    return m
