"""Two-row plates -> one line, so the one-line recogniser can read them.

A square EU plate, a motorcycle plate or a Chinese yellow rear plate carries its characters in two
rows. ``find_rows`` tells such a crop from a one-row plate (aspect ratio, then character-like
blobs clustered into lines); ``to_one_line`` cuts the two rows, scales them to one height and
places the top row left of the bottom one. Pure numpy/OpenCV on grey uint8; every step is integer
or exact-rounding arithmetic, so a PC and a Pi make the same decision on the same crop.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from .portable import area_resize

# Two-row plates are 1.0-2.0 wide per unit of height (EU square 1.4, motorcycle 1.2-1.8, Chinese
# rear 2.0); one-row EU plates are ~4.7 and BR/CN ~3.1. US car plates (~2.0, a small state name
# above the serial) fall inside the gate and are told apart by the character heights.
MIN_ASPECT, MAX_ASPECT = 0.8, 2.3
# The smaller row's characters against the larger row's: EU square plates ~1.0, a Chinese yellow
# rear plate's province row ~0.65; a US state name or a Brazilian city name is at most ~0.45.
MIN_ROW_RATIO = 0.55
_WORK_H = 36  # detection runs on this height: cheap, and enough pixels for 8 px characters
_MIN_CHARS = 2  # per row (a one-character top row only with the stricter checks below)
_MIN_ROW_H = 0.25  # of the crop height, the taller row's characters
# with the border's runs taken out (tight crops), both rows' characters; measured at 36 px: real
# two-row rows 11-16 px, the freak rows of one-row US/BR plates mostly 5-10 px
_STRICT_ROW_H = 0.3


def _median(v: npt.NDArray[np.int32]) -> float:
    """``float(np.median(v))`` of a short integer array, without np.median's general machinery
    (a few dozen calls per crop made it a fifth of the two-row test): the middle value, or the
    mean of the two middle ones, in float64 exactly as numpy computes it. Python's sort of a
    list of a few ints is cheaper than numpy's call into its sort for one."""
    s = sorted(v.tolist())
    m = len(s) // 2
    return float(s[m]) if len(s) % 2 else (float(s[m - 1]) + float(s[m])) / 2


@lru_cache(maxsize=64)
def _inner(H: int, W: int) -> npt.NDArray[np.uint8]:
    """1 inside, 0 on a band of ``max(1, H // 24)`` along the edges (one multiply per look
    instead of a copy and four slice writes; the working height is fixed, widths few)."""
    e = max(1, H // 24)
    m = np.zeros((H, W), np.uint8)
    m[e:-e, e:-e] = 1
    return m


@lru_cache(maxsize=256)
def _line_kernel(h: int, w: int) -> npt.NDArray[np.uint8]:
    return np.ones((h, w), np.uint8)


def _clean(binary: npt.NDArray[np.uint8], runs: bool) -> npt.NDArray[np.uint8]:
    """The binary image without what joins characters into one blob on a tight crop: a thin band
    along the edges, and long straight runs of ink (the plate's border, a blue EU band's edge,
    the car around the plate), so characters touching those split from them. Only runs longer
    than any character go: a run is taken out whole, never a pixel row, which would cut a
    one-row plate's characters through a line of their strokes into two rows of halves."""
    H, W = binary.shape
    b = binary * _inner(H, W)
    if not runs:
        return b
    lh = max(3, int(0.4 * W))  # a character is at most 0.3 of the width
    lv = max(3, int(0.7 * H))  # and 0.62 of the height
    long = (cv2.morphologyEx(b, cv2.MORPH_OPEN, _line_kernel(1, lh))
            | cv2.morphologyEx(b, cv2.MORPH_OPEN, _line_kernel(lv, 1)))
    return b & (1 - long)


def _components(binary: npt.NDArray[np.uint8]) -> npt.NDArray[np.int32]:
    """Character-like blobs of a binary image: rows of (x, y, w, h). The filter runs on Python
    ints: a few dozen blobs cost less so than a dozen numpy calls on arrays that short (the
    same float64 products and comparisons, so the same blobs)."""
    H, W = binary.shape
    stats = cv2.connectedComponentsWithStats(binary, connectivity=8)[2]
    lo, hi, wmax = 0.12 * H, 0.62 * H, 0.3 * W
    keep = [i for i, (_x, _y, w, h, area) in enumerate(stats.tolist())
            if i and lo <= h <= hi and 2 <= w <= wmax
            and 0.8 * w <= h <= 8 * w  # taller than wide, '1' and 'I' included
            and 0.12 * w * h <= area <= 0.95 * w * h]  # strokes, not filled boxes
    return stats[keep, :4]


def _lines(boxes: npt.NDArray[np.int32], max_lines: int = 4) -> list[npt.NDArray[np.int32]]:
    """Group boxes into text lines. Two boxes are on one line when their centres are within 40 %
    of the taller one's height and their heights within 1.5x; a line is the box with the most
    such neighbours (ties: the taller, then the first) and those neighbours, taken out in turn."""
    cy2 = 2 * boxes[:, 1] + boxes[:, 3]  # twice the centre: integers
    h = boxes[:, 3]
    hmax = np.maximum(h[:, None], h[None, :])
    same = ((np.abs(cy2[:, None] - cy2[None, :]) * 5 <= 4 * hmax)
            & (2 * h[:, None] <= 3 * h[None, :]) & (2 * h[None, :] <= 3 * h[:, None]))
    # each box's neighbours as a bit set (bit j: box j): the grouping is then a few integer
    # operations per box instead of a dozen numpy calls per line on arrays of a dozen boxes
    n = len(boxes)
    near = [int.from_bytes(r.tobytes(), "little") for r in np.packbits(same, axis=1, bitorder="little")]
    heights = h.tolist()
    left = (1 << n) - 1
    lines = []
    for _ in range(max_lines):
        if not left:
            break
        _support, neg_i = max(((near[k] & left).bit_count() * 1024 + heights[k], -k)
                              for k in range(n) if left >> k & 1)
        members = near[-neg_i] & left
        lines.append(boxes[[k for k in range(n) if members >> k & 1]])
        left &= ~members
    return lines


def _two_rows(binary: npt.NDArray[np.uint8], strict: bool) -> tuple[float, float, float, float, float] | None:
    """(top row top, top row bottom, bottom row top, bottom row bottom, cut) in working pixels
    when the binary image holds two rows of characters, else None. ``strict``: the border's
    long runs are taken out first (tight crops), which also frees bits of the border, screws and
    the state name of a one-row plate into blobs, so the rows must then look like a two-row
    plate's: both big, five characters or more, a gap between them, most of the crop's height."""
    H = binary.shape[0]
    binary = _clean(binary, strict)
    boxes = _components(binary)
    if len(boxes) < _MIN_CHARS + 1 or _cannot_pair(boxes, H, strict):
        return None
    return _rows(binary, boxes, strict)


def _cannot_pair(boxes: npt.NDArray[np.int32], H: int, strict: bool) -> bool:
    """True only when ``_rows`` must return None for these boxes, from their extremes alone:
    most one-row looks end here, before the line grouping (a third of the two-row test's time).
    False decides nothing. Why it is safe: a row's median top and bottom lie between the
    boxes' extremes and its median height is at most the tallest box's, so the taller row is
    no taller than that, two rows cannot be apart (``_pair``'s overlap test) unless some box
    starts below where another ends, and (strict) the rows span at most the boxes' span."""
    y, h = boxes[:, 1], boxes[:, 3]
    tallest, top, bottom = int(h.max()), int(y.min()), int((y + h).max())
    if tallest < _MIN_ROW_H * H or int((y + h).min()) > int(y.max()) + 0.1 * tallest:
        return True
    return strict and bottom - top < 0.7 * H


def _rows(binary: npt.NDArray[np.uint8], boxes: npt.NDArray[np.int32],
          strict: bool) -> tuple[float, float, float, float, float] | None:
    """_two_rows for the cleaned binary image and its character-like ``boxes``: the lines of
    the boxes, the best pair of them that passes ``_pair`` (and the strict checks)."""
    H = binary.shape[0]
    lines = [lb for lb in _lines(boxes) if len(lb) >= 1]
    if len(lines) < 2:
        return None
    # the two lines of the tallest characters (ties: more characters) are the candidate rows;
    # lines of one blob compete only as the top row (checked below)
    lines.sort(key=lambda lb: (_median(lb[:, 3]), len(lb)), reverse=True)
    big = [lb for lb in lines if len(lb) >= _MIN_CHARS]
    if not big:
        return None
    a = big[0]
    ha = _median(a[:, 3])
    # the taller row must be big (a quarter of the crop): two lines of specks between the
    # characters of a one-row plate are no plate (0.21 let one real US plate of 466 through)
    if ha < _MIN_ROW_H * H:
        return None
    for b in lines:
        if b is a:
            continue
        rows = _pair(binary, a, b)
        if rows is None:
            continue
        if strict:
            t0, t1, b0, b1, _cut = rows
            hb = _median(b[:, 3])
            if (min(ha, hb) < _STRICT_ROW_H * H or len(a) + len(b) < 5
                    or b0 - t1 < 0.1 * min(ha, hb) or b1 - t0 < 0.7 * H):
                continue
        return rows
    return None


def _pair(binary: npt.NDArray[np.uint8], a: npt.NDArray[np.int32],
          b: npt.NDArray[np.int32]) -> tuple[float, float, float, float, float] | None:
    """_two_rows for the candidate rows ``a`` (the taller characters) and ``b``."""
    ha, hb = _median(a[:, 3]), _median(b[:, 3])
    if hb < MIN_ROW_RATIO * ha:
        return None
    top, bot = (a, b) if _median(a[:, 1]) < _median(b[:, 1]) else (b, a)
    t0, t1 = _median(top[:, 1]), _median(top[:, 1] + top[:, 3])
    b0, b1 = _median(bot[:, 1]), _median(bot[:, 1] + bot[:, 3])
    if t1 > b0 + 0.1 * min(t1 - t0, b1 - b0):  # the rows overlap vertically: one line
        return None
    # horizontally the rows must share the plate: one row's characters cannot all lie beside
    # the other's (two words of one line, a sticker next to a serial)
    tx0, tx1 = top[:, 0].min(), (top[:, 0] + top[:, 2]).max()
    bx0, bx1 = bot[:, 0].min(), (bot[:, 0] + bot[:, 2]).max()
    if min(tx1, bx1) - max(tx0, bx0) <= 0:
        return None
    if len(b) < _MIN_CHARS:
        # one character as a row (Vienna: W + arms / 518 B) only on top, as tall and about as
        # wide as the bottom row's characters, above a row of three or more, inside its width,
        # a clear gap between (a script state name "California" is one blob just above a serial)
        if top is not b or len(bot) < 3 or not 0.8 * ha <= hb <= 1.25 * ha:
            return None
        if tx0 < bx0 or tx1 > bx1 or b[0, 2] > 1.6 * _median(bot[:, 2]) or b0 - t1 < 0.1 * ha:
            return None
    # cut at the least ink between the rows
    lo, hi = int(np.floor(min(t1, b0))), int(np.ceil(max(t1, b0)))
    profile = binary[lo: hi + 1].sum(1, dtype=np.int64)
    cut = lo + float(np.flatnonzero(profile == profile.min()).mean()) + 0.5 if profile.size else (t1 + b0) / 2
    return t0, t1, b0, b1, cut


def find_rows(grey: npt.NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
    """Rows of a two-row plate crop: ``(y0, y1, y2, y3)`` with the top row in ``grey[y0:y1]`` and
    the bottom row in ``grey[y2:y3]`` (each with a quarter of its character height as margin),
    or None for a one-row plate or a crop too small to tell."""
    H, W = grey.shape[:2]
    if H < 16 or W < 16 or not MIN_ASPECT <= W / H <= MAX_ASPECT:
        return None
    ww = max(1, int(round(W * _WORK_H / H)))
    small = (area_resize(grey, ww, _WORK_H) if H > _WORK_H
             else cv2.resize(grey, (ww, _WORK_H), interpolation=cv2.INTER_LINEAR_EXACT))
    best = None
    # both polarities: dark characters on a light plate and light on dark (CN blue, BR red)
    dark = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    binaries = [dark, 1 - dark]  # one Otsu threshold: the light look is the dark one's complement
    # the border's runs are taken out only when the plain look finds nothing: it is the stricter
    # test and the slower one
    for strict in (False, True):
        for binary in binaries:
            rows = _two_rows(binary, strict)
            if rows is not None and (best is None or rows[3] - rows[0] > best[3] - best[0]):
                best = rows
        if best is not None:
            break
    if best is None:
        return None
    t0, t1, b0, b1, cut = best
    s = H / _WORK_H
    mt, mb = 0.25 * (t1 - t0), 0.25 * (b1 - b0)
    y0 = max(0, int(np.floor((t0 - mt) * s)))
    c = int(round(cut * s))  # one integer cut, so the rows never share a pixel row
    y1 = min(c, int(np.ceil((t1 + mt) * s)))
    y2 = max(c, int(np.floor((b0 - mb) * s)))
    y3 = min(H, int(np.ceil((b1 + mb) * s)))
    if y1 - y0 < 4 or y3 - y2 < 4:
        return None
    return y0, y1, y2, y3


def valley_rows(grey: npt.NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
    """Rows of a crop shaped like a two-row plate, cut at its emptiest pixel row between 30 and
    70 % of its height: ``(0, cut, cut, H)``, or None for a crop of another shape. For the tight
    crops ``find_rows`` cannot split (characters touching the border or each other, so no
    character-like blobs): only a caller that can check the result (``reading.PlateReader``)
    should use it, because the middle of a one-row plate has an emptiest row too."""
    H, W = grey.shape[:2]
    if H < 16 or W < 16 or not MIN_ASPECT <= W / H <= MAX_ASPECT:
        return None
    ink = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    core = ink[H // 8: H - H // 8, W // 8: W - W // 8]
    if 2 * int(core.sum()) > core.size:  # characters are the minority inside a plate: light on dark
        ink = 1 - ink
    profile = ink[:, W // 10: W - W // 10].sum(1, dtype=np.int64)  # the side edges are border and band
    lo, hi = int(0.3 * H), int(0.7 * H)
    middle = profile[lo: hi + 1]
    cut = lo + int(np.flatnonzero(middle == middle.min()).mean() + 0.5)
    return 0, cut, cut, H


def join_rows(grey: npt.NDArray[np.uint8], rows: tuple[int, int, int, int]) -> npt.NDArray[np.uint8]:
    """The two rows of ``grey`` side by side, top row first, both scaled to the bottom row's
    height, a quarter of that height of background (the crop's median grey) between them."""
    y0, y1, y2, y3 = rows
    top, bot = grey[y0:y1], grey[y2:y3]
    h = bot.shape[0]
    tw = max(1, int(round(top.shape[1] * h / top.shape[0])))
    top = cv2.resize(top, (tw, h), interpolation=cv2.INTER_LINEAR_EXACT)
    gap = np.full((h, max(1, h // 4)), int(np.median(grey)), np.uint8)
    return np.ascontiguousarray(np.hstack([top, gap, bot]))


def to_one_line(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A two-row plate crop joined into one line (``join_rows``); any other crop unchanged."""
    rows = find_rows(grey)
    return grey if rows is None else join_rows(grey, rows)
