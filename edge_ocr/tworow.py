"""Two-row plates -> one line, so the one-line recogniser can read them.

A square EU plate, a motorcycle plate or a Chinese yellow rear plate carries its characters in two
rows. ``find_rows`` tells such a crop from a one-row plate (aspect ratio, then character-like
blobs clustered into lines); ``to_one_line`` cuts the two rows, scales them to one height and
places the top row left of the bottom one. Pure numpy/OpenCV on grey uint8; every step is integer
or exact-rounding arithmetic, so a PC and a Pi make the same decision on the same crop.
"""

from __future__ import annotations

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
_WORK_H = 48  # detection runs on this height: cheap, and enough pixels for 10 px characters
_MIN_CHARS = 2  # per row
_MIN_ROW_H = 0.25  # of the crop height, the taller row's characters


def _components(binary: npt.NDArray[np.uint8]) -> npt.NDArray[np.int32]:
    """Character-like blobs of a binary image: rows of (x, y, w, h)."""
    H, W = binary.shape
    # a tight crop's characters touch its edge, where the plate's border or the car joins them
    # into one blob: a thin band along the edge is left out
    e = max(1, H // 24)
    binary = binary.copy()
    binary[:e] = 0
    binary[-e:] = 0
    binary[:, :e] = 0
    binary[:, -e:] = 0
    _n, _lab, stats, _c = cv2.connectedComponentsWithStats(binary, connectivity=8)
    s = stats[1:]
    x, y, w, h, area = s[:, 0], s[:, 1], s[:, 2], s[:, 3], s[:, 4]
    keep = ((h >= 0.12 * H) & (h <= 0.62 * H) & (w <= 0.3 * W) & (w >= 2)
            & (h >= 0.8 * w) & (h <= 8 * w)  # taller than wide, '1' and 'I' included
            & (area >= 0.12 * w * h) & (area <= 0.95 * w * h))  # strokes, not filled boxes
    return np.stack([x, y, w, h], 1)[keep].astype(np.int32)


def _lines(boxes: npt.NDArray[np.int32]) -> list[npt.NDArray[np.int32]]:
    """Group boxes into text lines: a box joins the line whose median centre is within 40 % of
    its height, greedily from the tallest (tall characters anchor a line; small bits join it)."""
    order = np.argsort(-boxes[:, 3], kind="stable")
    lines: list[list[int]] = []
    for i in order:
        cy, h = boxes[i, 1] + boxes[i, 3] / 2, boxes[i, 3]
        for line in lines:
            lb = boxes[line]
            lcy = float(np.median(lb[:, 1] + lb[:, 3] / 2))
            lh = float(np.median(lb[:, 3]))
            if abs(cy - lcy) <= 0.4 * max(h, lh) and 0.6 * lh <= h <= 1.5 * lh:
                line.append(int(i))
                break
        else:
            lines.append([int(i)])
    return [boxes[line] for line in lines if len(line) >= _MIN_CHARS]


def _two_rows(binary: npt.NDArray[np.uint8]) -> tuple[float, float, float, float, float] | None:
    """(top row top, top row bottom, bottom row top, bottom row bottom, cut) in working pixels
    when the binary image holds two rows of characters, else None."""
    boxes = _components(binary)
    if len(boxes) < 2 * _MIN_CHARS:
        return None
    lines = _lines(boxes)
    if len(lines) < 2:
        return None
    # the two lines of the tallest characters (ties: more characters) are the candidate rows
    lines.sort(key=lambda lb: (float(np.median(lb[:, 3])), len(lb)), reverse=True)
    a, b = lines[0], lines[1]
    ha, hb = float(np.median(a[:, 3])), float(np.median(b[:, 3]))
    # the taller row must be big (a quarter of the crop): two lines of specks between the
    # characters of a one-row plate are no plate (0.21 let one real US plate of 466 through)
    if ha < _MIN_ROW_H * binary.shape[0] or hb < MIN_ROW_RATIO * ha:
        return None
    top, bot = (a, b) if np.median(a[:, 1]) < np.median(b[:, 1]) else (b, a)
    t0, t1 = float(np.median(top[:, 1])), float(np.median(top[:, 1] + top[:, 3]))
    b0, b1 = float(np.median(bot[:, 1])), float(np.median(bot[:, 1] + bot[:, 3]))
    if t1 > b0 + 0.1 * min(t1 - t0, b1 - b0):  # the rows overlap vertically: one line
        return None
    # horizontally the rows must share the plate: one row's characters cannot all lie beside
    # the other's (two words of one line, a sticker next to a serial)
    tx0, tx1 = top[:, 0].min(), (top[:, 0] + top[:, 2]).max()
    bx0, bx1 = bot[:, 0].min(), (bot[:, 0] + bot[:, 2]).max()
    if min(tx1, bx1) - max(tx0, bx0) <= 0:
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
    for mode in (cv2.THRESH_BINARY_INV, cv2.THRESH_BINARY):
        _t, binary = cv2.threshold(small, 0, 1, mode | cv2.THRESH_OTSU)
        rows = _two_rows(binary)
        if rows is not None and (best is None or rows[3] - rows[0] > best[3] - best[0]):
            best = rows
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
