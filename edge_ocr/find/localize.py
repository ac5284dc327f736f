"""Plate localisation with OpenCV only: where in the frame to read.

A plate is found through its characters, which is what every plate in every region has in
common (plate colours, borders and sizes differ too much to rely on):

1. grey, cropped to the ROI's bounding box and scaled to at most ``work_width`` px, then a
   pyramid of halvings, each level searched for characters 7-40 px tall;
2. local thresholding for dark-on-light and light-on-dark text (a local threshold is a cheap
   black-hat/top-hat: a pixel is "ink" if it differs from its neighbourhood mean), with long
   horizontal lines removed so characters touching a plate border come apart;
3. connected components filtered to character-like blobs (height, aspect, fill);
4. blobs of similar height, on one slightly tilted line and close together are chained (a tight
   and a looser linking, the latter bridging spaces, dashes and merged characters);
5. each chain of 3+ blobs becomes a tilted plate box around its fitted text line: by default
   the plate margins measured on real plates, snapped to the plate's own edges where the plate
   background around the characters visibly ends;
6. candidates are scored 0..1 from character count, height regularity, alignment, gaps, visible
   plate edges and text contrast; overlapping ones are suppressed (NMS); the best
   ``max_candidates`` above ``min_score`` are cut out of the full-resolution image, deskewed.

Fixed-box mode (a gate camera whose ROI is the plate) skips all that: see ``fixed_candidates``.
Steps 2-4 live in ``charline``, step 5 and the scores in ``platebox``, box geometry in ``quad``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from edge_ocr.capture.grey import to_grey
from edge_ocr.capture.roi import Roi, search_window

from ..capture.quad import bounding_box, centre_inside, order_quad, warp_quad
from ..types import Box
from .charline import _THRESH_BLOCK, char_blobs, ink_map, text_lines
from .platebox import PlateGeometry, plate_features, plate_score, snap_to_plate

log = logging.getLogger(__name__)

# the margin around a found plate's crop, as the recogniser's training crops have (both localisers)
CROP_MARGIN = 0.08
_MIN_CHAR_H = 7.0  # px at a pyramid level; smaller characters are not legible anyway
_MAX_CHAR_H = 40.0
_MAX_TILT_DEG = 25.0
_NMS_IOU = 0.3  # candidates overlapping a better one more than this are the same plate
# Characters up to this tall (px, at the first level) are searched a second time with a smaller
# threshold window: blurred 8-12 px characters vanish into the 13 px window's mean (dev frames:
# recall@5 96.2 -> 97.6 %; real-video cars missed 10 -> 4 of 60)
_SMALL_CHAR_H = 16.0
_SMALL_BLOCK = 9


@dataclass(frozen=True)
class Candidate:
    """One possible plate.

    ``box`` is the axis-aligned bounding box and ``quad`` the (4, 2) corners (top-left,
    top-right, bottom-right, bottom-left) of the possibly tilted plate, both in the pixels of
    the image the crop was cut from. ``crop`` is the deskewed plate (BGR or grey, like that
    image) with a small margin, ready for the recogniser. ``chars`` is the number of
    character-like blobs that made it (0 for fixed boxes).
    """

    box: Box
    score: float
    angle: float
    quad: npt.NDArray[np.float32] = field(repr=False)
    crop: npt.NDArray[np.uint8] = field(repr=False)
    chars: int = 0


class Localizer:
    """Finds plate candidates in a frame.

    Args:
        max_candidates: most candidates returned per frame.
        min_height: smallest plate height considered, in pixels of the input image.
        min_aspect, max_aspect: width/height range of a plate box.
        min_score: candidates scoring below are dropped (scores are 0..1).
        work_width: the ROI is scaled down to at most this width before searching; bigger finds
            smaller plates, smaller is faster.
        crop_margin: fraction of the plate's width/height added on each side of the crop (the
            recogniser was trained on crops with such a margin).

    Plain values: the ranges are the ``localizer`` config section's, checked once there (``config.py``).
    """

    def __init__(
        self,
        max_candidates: int,
        min_height: int,
        min_aspect: float,
        max_aspect: float,
        min_score: float,
        work_width: int,
        crop_margin: float = CROP_MARGIN,
    ) -> None:
        self.max_candidates = max_candidates
        self.min_height = min_height
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect
        self.min_score = min_score
        self.work_width = work_width
        self.crop_margin = crop_margin

    # ------------------------------------------------------------------ public

    def find(
        self,
        image: npt.NDArray[np.uint8],
        roi: Roi | None = None,
        full: npt.NDArray[np.uint8] | None = None,
    ) -> list[Candidate]:
        """Plate candidates in ``image``, best first.

        Args:
            image: BGR or grey frame to search (may be a small copy, e.g. the picamera2 lores
                stream's Y plane).
            roi: only plates whose characters lie inside it are returned; ``None`` = everywhere.
            full: the same scene at full resolution to crop from (boxes are then in its
                pixels); ``None`` crops from ``image``.

        Returns:
            Up to ``max_candidates`` candidates with ``score >= min_score``, best first.

        Raises:
            ValueError: ``image`` is not an image.
        """
        grey = to_grey(image)
        h, w = grey.shape
        src = full if full is not None else image
        win = search_window(roi, (w, h), (src.shape[1], src.shape[0]))  # pixel ROIs: in the full frame's pixels
        bw, bh = win.w, win.h
        if bw < 8 or bh < 8:
            return []
        sub = win.cut(grey)
        scale = min(1.0, self.work_width / bw)
        small = sub
        if scale < 1.0:
            size = (max(1, round(bw * scale)), max(1, round(bh * scale)))
            small = np.asarray(cv2.resize(sub, size, interpolation=cv2.INTER_AREA), np.uint8)
        mask = win.mask()
        if mask is not None and scale < 1.0:
            mask = np.asarray(cv2.resize(mask, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST))

        found = self._search(small, mask, self.min_height * scale)
        # suppression only ever removes a candidate in favour of a better one, so the ones
        # below min_score can go first
        raw = _nms([c for c in found if c.score >= self.min_score], _NMS_IOU, self.max_candidates)

        out = []
        for p in raw:
            q = win.to_source(p.quad / scale)
            out.append(
                Candidate(
                    bounding_box(q, src.shape[1], src.shape[0]),
                    p.score,
                    p.angle,
                    q,
                    warp_quad(src, q, self.crop_margin),
                    p.n,
                )
            )
        return out

    # ------------------------------------------------------------------ search

    def _search(
        self, grey: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8] | None, min_plate_h: float
    ) -> list[_Plate]:
        """Every plausible plate in ``grey`` (in its pixels), best first."""
        # characters are about half to two thirds of the plate height
        min_char_h = max(_MIN_CHAR_H, 0.45 * min_plate_h)
        max_char_h = max(min_char_h + 1, 0.5 * grey.shape[0])
        out: list[_Plate] = []
        # a pyramid, each level looking for characters of _MIN_CHAR_H.._MAX_CHAR_H px: a fixed
        # threshold window and line length cannot suit both 8 px and 80 px characters
        img, f = grey, 1.0
        while min(img.shape) >= 32:
            lo = min_char_h / f if f == 1.0 else max(min_char_h / f, _MIN_CHAR_H)
            hi = min(max_char_h / f, _MAX_CHAR_H)
            passes = [(lo, hi, _THRESH_BLOCK)] if lo <= hi else []
            if f == 1.0 and lo <= _SMALL_CHAR_H:
                passes.append((lo, _SMALL_CHAR_H, _SMALL_BLOCK))
            for plo, phi, block in passes:
                for inverted in (True, False):
                    binary = ink_map(img, inverted, phi, block)
                    blobs = char_blobs(binary, plo, phi)
                    for chain in text_lines(blobs):
                        plate = self._plate_from_chain(blobs[chain], img, inverted, f, min_plate_h)
                        if plate is not None and (mask is None or centre_inside(plate.quad, mask)):
                            out.append(plate)
            if max_char_h / f <= _MAX_CHAR_H:
                break
            img = np.asarray(cv2.pyrDown(img), np.uint8)
            f *= 2
        out.sort(key=lambda p: -p.score)
        return out

    def _plate_from_chain(
        self, chain: npt.NDArray[np.float64], grey: npt.NDArray[np.uint8], inverted: bool, f: float, min_plate_h: float
    ) -> _Plate | None:
        """A plate box around a chain of character blobs ((k, 4) x, y, w, h, sorted by x)
        found in ``grey``, a pyramid level ``f`` times smaller than the searched image; the box
        is in the searched image's pixels, ``None`` if the chain cannot be a plate (too tilted,
        too small, wrong shape)."""
        bx, by, bw, hs = chain.T
        cx, cy = bx + bw / 2, by + hs / 2
        dx = cx - cx.mean()
        var = float(dx @ dx)
        slope = float(dx @ (cy - cy.mean())) / var if var > 0 else 0.0  # least-squares line
        angle = math.degrees(math.atan(slope))
        if abs(angle) > _MAX_TILT_DEG:
            return None
        ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        # extents of the blobs' corners along the text line (u) and across it (v)
        u = np.concatenate(
            [bx * ca + by * sa, (bx + bw) * ca + by * sa, bx * ca + (by + hs) * sa, (bx + bw) * ca + (by + hs) * sa]
        )
        hc = float(np.median(hs)) * ca  # an axis-aligned box of tilted text is a bit too tall
        u0, u1 = float(u.min()), float(u.max())
        vmid = float(np.median(-cx * sa + cy * ca))
        # default plate around the text, measured on US, EU and BR plates: characters are
        # 50-70 % of the plate height, and the plate goes on about half a character height
        # beyond the first and last character
        geo = PlateGeometry(umid=(u0 + u1) / 2, vmid=vmid, width=u1 - u0 + 1.0 * hc, height=1.8 * hc)
        refined, sides, contrast = snap_to_plate(grey, inverted, ca, sa, u0, u1, vmid, hc, geo)
        if self.min_aspect <= refined.width / refined.height <= self.max_aspect:
            geo = refined
        elif not self.min_aspect <= geo.width / geo.height <= self.max_aspect:
            return None
        if geo.height * f < min_plate_h:
            return None
        corners = np.array(
            [
                [geo.umid - geo.width / 2, geo.vmid - geo.height / 2],
                [geo.umid + geo.width / 2, geo.vmid - geo.height / 2],
                [geo.umid + geo.width / 2, geo.vmid + geo.height / 2],
                [geo.umid - geo.width / 2, geo.vmid + geo.height / 2],
            ]
        )
        quad = (
            np.stack([corners[:, 0] * ca - corners[:, 1] * sa, corners[:, 0] * sa + corners[:, 1] * ca], axis=1).astype(
                np.float32
            )
            * f
        )
        feats = plate_features(chain, cx, cy, slope, hc, sides, contrast)
        return _Plate(quad, angle, len(chain), plate_score(feats), feats)


# ---------------------------------------------------------------------- candidates

@dataclass(frozen=True)
class _Plate:
    quad: npt.NDArray[np.float32]
    angle: float
    n: int
    score: float
    features: dict[str, float]


def _nms(cands: list[_Plate], thresh: float, limit: int) -> list[_Plate]:
    """The best ``limit`` candidates (input sorted best first), dropping each one that overlaps
    a better kept one by more than ``thresh`` IoU."""
    kept: list[_Plate] = []
    boxes = np.zeros((0, 4))
    for c in cands:
        if len(kept) >= limit:
            break
        x0, y0 = c.quad.min(axis=0)
        x1, y1 = c.quad.max(axis=0)
        if len(kept):
            iw = np.clip(np.minimum(x1, boxes[:, 2]) - np.maximum(x0, boxes[:, 0]), 0, None)
            ih = np.clip(np.minimum(y1, boxes[:, 3]) - np.maximum(y0, boxes[:, 1]), 0, None)
            inter = iw * ih
            union = (x1 - x0) * (y1 - y0) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
            if (inter > thresh * np.maximum(union, 1e-9)).any():
                continue
        kept.append(c)
        boxes = np.vstack([boxes, [x0, y0, x1, y1]])
    return kept


def fixed_candidates(image: npt.NDArray[np.uint8], roi: Roi, crop_margin: float = 0.0) -> list[Candidate]:
    """Fixed-box mode: every ROI polygon is a plate. Four-point polygons are deskewed (their
    corners in any order); other polygons are cut out along their bounding box.

    Args:
        image: the full-resolution frame (BGR or grey).
        roi: the ROI; its polygons are the plates.
        crop_margin: fraction of width/height added around each crop.

    Returns:
        One candidate per polygon, score 1.0, in config order.
    """
    h, w = image.shape[:2]
    out = []
    for poly in roi.polygons(w, h):
        if len(poly) == 4:
            quad = order_quad(poly)
        else:
            x0, y0 = poly.min(axis=0)
            x1, y1 = poly.max(axis=0)
            quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        top = quad[1] - quad[0]
        angle = math.degrees(math.atan2(float(top[1]), float(top[0])))
        out.append(Candidate(bounding_box(quad, w, h), 1.0, angle, quad, warp_quad(image, quad, crop_margin), 0))
    return out
