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
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from edge_ocr.config import LocalizerConfig
from edge_ocr.preprocess import to_grey
from edge_ocr.roi import Roi

log = logging.getLogger(__name__)

from .types import Box


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
    """

    def __init__(
        self,
        max_candidates: int = 5,
        min_height: int = 12,
        min_aspect: float = 1.5,
        max_aspect: float = 7.0,
        min_score: float = 0.3,
        work_width: int = 960,
        crop_margin: float = 0.08,
    ) -> None:
        if min_aspect >= max_aspect:
            raise ValueError(f"min_aspect {min_aspect} must be below max_aspect {max_aspect}")
        self.max_candidates = max_candidates
        self.min_height = min_height
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect
        self.min_score = min_score
        self.work_width = work_width
        self.crop_margin = crop_margin

    @classmethod
    def from_config(cls, cfg: LocalizerConfig, work_width: int = 960) -> Localizer:
        """Build from the ``localizer`` config section."""
        return cls(cfg.max_candidates, cfg.min_height, cfg.min_aspect, cfg.max_aspect, cfg.min_score, work_width)

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
        if roi is not None:
            # pixel ROIs are in the full frame's pixels
            src_shape = (full if full is not None else image).shape
            roi = roi.with_frame_size((src_shape[1], src_shape[0]))
        ox, oy, bw, bh = roi.bbox(w, h) if roi is not None else (0, 0, w, h)
        if bw < 8 or bh < 8:
            return []
        sub = grey[oy : oy + bh, ox : ox + bw]
        scale = min(1.0, self.work_width / bw)
        small = sub
        if scale < 1.0:
            size = (max(1, round(bw * scale)), max(1, round(bh * scale)))
            small = np.asarray(cv2.resize(sub, size, interpolation=cv2.INTER_AREA), np.uint8)
        mask = None
        if roi is not None and not roi.covers_all(w, h):
            mask = roi.mask(w, h)[oy : oy + bh, ox : ox + bw]
            if scale < 1.0:
                mask = np.asarray(cv2.resize(mask, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST))

        found = self._search(small, mask, self.min_height * scale)
        # suppression only ever removes a candidate in favour of a better one, so the ones
        # below min_score can go first
        raw = _nms([c for c in found if c.score >= self.min_score], _NMS_IOU, self.max_candidates)

        src = full if full is not None else image
        fx = src.shape[1] / w
        fy = src.shape[0] / h
        out = []
        for p in raw:
            q = p.quad / scale + np.array([ox, oy], np.float32)
            q = q * np.array([fx, fy], np.float32)
            out.append(
                Candidate(
                    _bounding_box(q, src.shape[1], src.shape[0]),
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
            if lo <= hi:
                for inverted in (True, False):
                    binary = _ink(img, inverted, hi)
                    blobs = _char_blobs(binary, lo, hi)
                    for chain in _chains(blobs):
                        plate = self._plate_from_chain(blobs[chain], img, inverted, f, min_plate_h)
                        if plate is not None and (mask is None or _centre_inside(plate.quad, mask)):
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
        geo = _Geometry(umid=(u0 + u1) / 2, vmid=vmid, width=u1 - u0 + 1.0 * hc, height=1.8 * hc)
        refined, sides, contrast = _refine(grey, inverted, ca, sa, u0, u1, vmid, hc, geo)
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
        feats = _features(chain, cx, cy, slope, hc, sides, contrast)
        return _Plate(quad, angle, len(chain), _score(feats), feats)


# ---------------------------------------------------------------------- building blocks

_MIN_CHAR_H = 7.0  # px at a pyramid level; smaller characters are not legible anyway
_MAX_CHAR_H = 40.0
_MAX_TILT_DEG = 25.0
_NMS_IOU = 0.3  # candidates overlapping a better one more than this are the same plate
_MAX_BLOB_ASPECT = 1.4  # width/height: two narrow characters run together still pass
_FAR_SNAP = 2.5  # character heights: how far a plate's background may reach past the chain
_THRESH_BLOCK = 13  # px, local threshold window: a few stroke widths of a 7-40 px character
_THRESH_C = 8  # grey levels a pixel must differ from its neighbourhood to count as ink


@dataclass(frozen=True)
class _Geometry:
    umid: float  # centre along the text line
    vmid: float  # centre across it
    width: float
    height: float


@dataclass(frozen=True)
class _Plate:
    quad: npt.NDArray[np.float32]
    angle: float
    n: int
    score: float
    features: dict[str, float]


def _ink(grey: npt.NDArray[np.uint8], inverted: bool, max_h: float) -> npt.NDArray[np.uint8]:
    """Binary "ink" map: pixels darker (``inverted``) or lighter than their neighbourhood, with
    long horizontal lines (plate borders, bumper edges) removed so characters touching them
    come apart."""
    binary = cv2.adaptiveThreshold(
        grey,
        255,
        cv2.ADAPTIVE_THRESH_MEAN_C,
        cv2.THRESH_BINARY_INV if inverted else cv2.THRESH_BINARY,
        _THRESH_BLOCK,
        _THRESH_C if inverted else -_THRESH_C,
    )
    # no stroke of a character is much wider than the tallest character is tall
    line_len = round(1.2 * max_h)
    lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (line_len, 1)))
    return np.asarray(cv2.subtract(binary, lines), np.uint8)


def _char_blobs(binary: npt.NDArray[np.uint8], min_h: float, max_h: float) -> npt.NDArray[np.float64]:
    """Character-like connected components of an ink map: (N, 4) x, y, w, h, sorted by x."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=4)
    if n <= 1:
        return np.zeros((0, 4))
    s = stats[1:]
    x, y, w, h, area = (s[:, i].astype(np.float64) for i in range(5))
    fill = area / np.maximum(w * h, 1)
    keep = (
        (h >= min_h)
        & (h <= max_h)
        & (w / h >= 0.08)
        & (w / h <= _MAX_BLOB_ASPECT)
        & (fill >= 0.15)
        & (fill <= 0.95)
        # blobs touching the image border are cut off, not characters
        & (x > 0)
        & (y > 0)
        & (x + w < binary.shape[1])
        & (y + h < binary.shape[0])
    )
    blobs = np.stack([x[keep], y[keep], w[keep], h[keep]], axis=1)
    return blobs[np.argsort(blobs[:, 0], kind="stable")]


def _chains(blobs: npt.NDArray[np.float64]) -> list[list[int]]:
    """Groups of 3+ blobs that could be one line of text: tight groups (characters next to each
    other) and looser ones (bridging a space, a dash or characters that did not come apart),
    the latter only where they differ from the former.

    Two blobs are linked when they have similar heights, their centres lie on one line and the
    gap between them is small, all relative to the character height.

    Args:
        blobs: (N, 4) x, y, w, h, sorted by x.

    Returns:
        Index lists into ``blobs``, each sorted.
    """
    n = len(blobs)
    if n < 3:
        return []
    x, y, w, h = blobs.T
    right, cy = x + w, y + h / 2
    # every pair (i, j), j right of i and starting within the loosest gap
    j_end = np.searchsorted(x, right + 2.0 * h, side="right")
    counts = np.maximum(j_end - np.arange(1, n + 1), 0)
    ii = np.repeat(np.arange(n), counts)
    jj = ii + 1 + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    gap = x[jj] - right[ii]
    ratio = h[jj] / h[ii]
    dy = np.abs(cy[jj] - cy[ii]) / np.maximum(h[ii], h[jj])
    apart = gap >= -0.3 * h[ii]  # overlapping more than that: not the next character
    tight = apart & (gap <= 1.2 * h[ii]) & (ratio >= 0.75) & (ratio <= 1 / 0.75) & (dy <= 0.4)
    loose = apart & (gap <= 2.0 * h[ii]) & (ratio >= 0.8) & (ratio <= 1 / 0.8) & (dy <= 0.3)
    out = _groups(n, ii[tight], jj[tight])
    seen = {tuple(g) for g in out}
    out += [g for g in _groups(n, ii[loose], jj[loose]) if tuple(g) not in seen]
    return out


def _groups(n: int, ii: npt.NDArray[np.intp], jj: npt.NDArray[np.intp]) -> list[list[int]]:
    """Connected groups of 3+ nodes of the graph with edges (ii[k], jj[k]); sorted indices."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[rj] = ri
    groups: dict[int, list[int]] = {}
    for i in sorted({int(v) for v in np.concatenate([ii, jj])}):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) >= 3]


def _refine(
    grey: npt.NDArray[np.uint8],
    inverted: bool,
    ca: float,
    sa: float,
    u0: float,
    u1: float,
    vmid: float,
    hc: float,
    geo: _Geometry,
) -> tuple[_Geometry, int, float]:
    """Snap the plate box to the plate's own background: the connected region of background
    around the characters, on each side where it ends near the text.

    Returns the refined geometry, how many sides snapped (0-4; a real plate usually has a
    visible edge all round) and the text contrast (Otsu's separability of the character band).
    """
    mu, mv = (_FAR_SNAP + 0.5) * hc, 1.6 * hc
    us, vs = u0 - mu, vmid - mv
    cw, ch = round(u1 - u0 + 2 * mu), round(2 * mv)
    if cw < 8 or ch < 8:
        return geo, 0, 0.0
    # the search window, deskewed: crop (x, y) is image point (us + x, vs + y) in (u, v)
    m = np.array([[ca, -sa, ca * us - sa * vs], [sa, ca, sa * us + ca * vs]], np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    crop = np.asarray(cv2.warpAffine(grey, m, (cw, ch), flags=flags, borderMode=cv2.BORDER_REPLICATE), np.uint8)
    cx0, cx1 = int(mu), int(mu + u1 - u0)
    cy0, cy1 = int(mv - 0.5 * hc), int(mv + 0.5 * hc)
    band = crop[cy0:cy1, cx0:cx1]
    if band.size == 0:
        return geo, 0, 0.0
    t, _ = cv2.threshold(band, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contrast = _separability(band, t)
    bg = ((crop > t) if inverted else (crop <= t)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
    if n <= 1:
        return geo, 0, contrast
    counts = np.bincount(labels[cy0:cy1, cx0:cx1].ravel(), minlength=n)
    counts[0] = 0
    bx, by, bw, bh, _ = stats[int(counts.argmax())]
    left, right = geo.umid - geo.width / 2 - us, geo.umid + geo.width / 2 - us
    top, bottom = geo.vmid - geo.height / 2 - vs, geo.vmid + geo.height / 2 - vs
    ctop, cbot = mv - hc / 2, mv + hc / 2
    sides = 0
    # an edge of the background region counts only where a plate edge can be: measured on
    # US/EU/BR plates, within 0.8 character heights of the text (0.6 above and below)
    if bx > 0 and 0 <= cx0 - bx <= 0.8 * hc:
        left, sides = float(bx), sides + 1
    if bx + bw < cw and 0 <= bx + bw - cx1 <= 0.8 * hc:
        right, sides = float(bx + bw), sides + 1
    snapped_top = by > 0 and 0.05 * hc <= ctop - by <= 0.6 * hc
    if snapped_top:
        top, sides = float(by), sides + 1
    snapped_bottom = by + bh < ch and 0.05 * hc <= by + bh - cbot <= 0.6 * hc
    if snapped_bottom:
        bottom, sides = float(by + bh), sides + 1
    if snapped_top and snapped_bottom:
        # the background is bounded above and below, so it is a plate: its ends are the plate's
        # even where characters that did not come apart are missing from the chain
        if bx > 0 and 0.8 * hc < cx0 - bx <= _FAR_SNAP * hc:
            left = float(bx)
        if bx + bw < cw and 0.8 * hc < bx + bw - cx1 <= _FAR_SNAP * hc:
            right = float(bx + bw)
    if bottom - top < 1.1 * hc:
        return geo, sides, contrast
    return _Geometry(us + (left + right) / 2, vs + (top + bottom) / 2, right - left, bottom - top), sides, contrast


def _separability(a: npt.NDArray[np.uint8], t: float) -> float:
    """Otsu's eta: between-class variance over total variance of ``a`` split at ``t`` (0..1)."""
    v = a.astype(np.float32).ravel()
    var = float(v.var())
    if var < 1e-6:
        return 0.0
    lo, hi = v[v <= t], v[v > t]
    if lo.size == 0 or hi.size == 0:
        return 0.0
    w0, w1 = lo.size / v.size, hi.size / v.size
    return float(w0 * w1 * (lo.mean() - hi.mean()) ** 2 / var)


def _features(
    chain: npt.NDArray[np.float64],
    cx: npt.NDArray[np.float64],
    cy: npt.NDArray[np.float64],
    slope: float,
    hc: float,
    sides: int,
    contrast: float,
) -> dict[str, float]:
    """What tells characters on a plate from other chains of blobs, each 0..1 (1 = plate-like)."""
    n = len(chain)
    hs = chain[:, 3]
    resid = cy - (slope * (cx - cx.mean()) + cy.mean())
    xs = np.sort(chain[:, 0])
    rights = np.sort(chain[:, 0] + chain[:, 2])
    gaps = (xs[1:] - rights[:-1]) / max(hc, 1.0)
    return {
        # plates carry 4-9 characters; 3 is a short vanity plate or part of a plate
        "count": {3: 0.5, 4: 0.8}.get(n, 1.0 if n <= 9 else max(0.0, 1.0 - 0.2 * (n - 9))),
        "height": max(0.0, 1.0 - 3.0 * float(np.std(hs) / np.mean(hs))),
        "align": max(0.0, 1.0 - 4.0 * float(np.sqrt(np.mean(resid**2))) / max(hc, 1.0)),
        "gaps": max(0.0, 1.0 - float(np.clip(gaps, 0, None).max(initial=0.0)) / 2.0),
        "sides": sides / 4.0,
        "contrast": contrast,
    }


# Weights chosen with a logistic regression of "IoU >= 0.5 with the labelled plate" on these
# features over the dev frames (tools/eval_localizer.py), then rounded; contrast, count,
# alignment and a bounded background carry most of the signal.
_WEIGHTS = {"count": 0.25, "height": 0.05, "align": 0.15, "gaps": 0.05, "sides": 0.2, "contrast": 0.3}
# The weighted sum of a real plate is rarely below 0.55 and a chain of 3 blobs of anything
# scores about 0.4; stretch that range over 0..1 so min_score reads as a confidence.
_SCORE_FLOOR, _SCORE_SPAN = 0.4, 0.5


def _score(features: dict[str, float]) -> float:
    """Weighted sum of the features, rescaled to 0..1."""
    raw = sum(_WEIGHTS[k] * features[k] for k in _WEIGHTS)
    return float(np.clip((raw - _SCORE_FLOOR) / _SCORE_SPAN, 0.0, 1.0))


def _centre_inside(quad: npt.NDArray[np.float32], mask: npt.NDArray[np.uint8]) -> bool:
    x, y = quad.mean(axis=0)
    xi, yi = round(x), round(y)
    return 0 <= yi < mask.shape[0] and 0 <= xi < mask.shape[1] and bool(mask[yi, xi])


def _bounding_box(quad: npt.NDArray[np.float32], width: int, height: int) -> Box:
    # a little slack so float32 rounding (120.000005) does not add a pixel
    x0 = int(np.clip(np.floor(quad[:, 0].min() + 1e-3), 0, width))
    y0 = int(np.clip(np.floor(quad[:, 1].min() + 1e-3), 0, height))
    x1 = int(np.clip(np.ceil(quad[:, 0].max() - 1e-3), 0, width))
    y1 = int(np.clip(np.ceil(quad[:, 1].max() - 1e-3), 0, height))
    return x0, y0, x1 - x0, y1 - y0


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when either is empty."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


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


def _order_quad(pts: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
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
            quad = _order_quad(poly)
        else:
            x0, y0 = poly.min(axis=0)
            x1, y1 = poly.max(axis=0)
            quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        top = quad[1] - quad[0]
        angle = math.degrees(math.atan2(float(top[1]), float(top[0])))
        out.append(Candidate(_bounding_box(quad, w, h), 1.0, angle, quad, warp_quad(image, quad, crop_margin), 0))
    return out
