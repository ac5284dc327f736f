"""CLAHE and INTER_AREA downscaling that give the same bytes on x86 and ARM64.

OpenCV's ``CLAHE.apply`` and ``resize(..., INTER_AREA)`` (non-integer factors) compute in float32
with SIMD code that uses fused multiply-add on ARM64 and separate multiply and add on x86, so a
pixel near .5 rounds differently (+-1 grey level), and CLAHE turns that into larger differences.
These numpy versions follow OpenCV's algorithms step by step in float32 with separate multiply
and add, so they reproduce OpenCV's x86 output exactly (the model was trained on it) and
numpy gives identical results on both architectures.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

_DBL_EPSILON = 2.220446049250313e-16


def clahe(img: npt.NDArray[np.uint8], clip: float, tiles: int) -> npt.NDArray[np.uint8]:
    """Contrast-limited adaptive histogram equalisation of a grey uint8 image, as
    ``cv2.createCLAHE(clip, (tiles, tiles)).apply(img)`` computes it on x86."""
    h, w = img.shape
    g = _clahe_geometry(h, w, tiles)
    flat = img.ravel()
    area = g.th * g.tw
    limit = max(int(clip * area / 256), 1) if clip > 0 else 0
    scale = np.float32(255.0 / area)
    # all tiles' histograms in one bincount of tile index * 256 + grey level; the pixels come
    # through g.src, which also does OpenCV's reflect-101 padding of a side that does not fit
    hist = np.bincount(g.tid + flat.take(g.src), minlength=tiles * tiles * 256).reshape(tiles * tiles, 256)
    if limit > 0:
        excess = np.maximum(hist - limit, 0).sum(1)
        hist = np.minimum(hist, limit) + (excess // 256)[:, None]
        rest = excess % 256
        if rest.any():  # the remainder: one more at every step-th level from 0, as OpenCV spreads it
            step = np.maximum(256 // np.maximum(rest, 1), 1)[:, None]
            levels = np.arange(256)[None, :]
            hist += (levels % step == 0) & (levels // step < rest[:, None])
    luts = np.clip(np.rint(np.cumsum(hist, 1).astype(np.float32) * scale), 0, 255).astype(np.float32).ravel()
    l11, l12, l21, l22 = (luts.take(base + flat).reshape(h, w) for base in g.corners)
    top = l11 * g.xa1 + l12 * g.xa
    bottom = l21 * g.xa1 + l22 * g.xa
    res = top * g.ya1 + bottom * g.ya
    return np.clip(np.rint(res), 0, 255).astype(np.uint8)


class _Geometry(NamedTuple):
    th: int
    tw: int
    src: np.ndarray  # flat source pixel of each pixel of the (padded) tiled area
    tid: np.ndarray  # its tile index * 256
    corners: tuple[np.ndarray, ...]  # flat LUT offset (tile * 256) of the 4 neighbour tiles, per pixel
    ya: np.ndarray
    ya1: np.ndarray
    xa: np.ndarray
    xa1: np.ndarray


@lru_cache(maxsize=256)
def _clahe_geometry(h: int, w: int, tiles: int) -> _Geometry:
    """What depends only on the image size: tile sizes, tile of each pixel, interpolation
    neighbours and weights (a model-height crop has one of at most a few hundred sizes)."""
    padded = h % tiles or w % tiles  # then both sides grow, by a whole tile where one already fits
    ph, pw = (h + tiles - h % tiles, w + tiles - w % tiles) if padded else (h, w)
    th, tw = ph // tiles, pw // tiles
    rows = np.pad(np.arange(h), (0, ph - h), mode="reflect") if ph > h else np.arange(h)
    cols = np.pad(np.arange(w), (0, pw - w), mode="reflect") if pw > w else np.arange(w)
    src = (rows[: th * tiles, None] * w + cols[None, : tw * tiles]).ravel()
    tid = ((np.arange(tiles)[:, None] * tiles + np.arange(tiles)[None, :]).repeat(th, 0).repeat(tw, 1) * 256).ravel()
    xf = np.arange(w, dtype=np.float32) * np.float32(1.0 / tw) - np.float32(0.5)
    yf = np.arange(h, dtype=np.float32) * np.float32(1.0 / th) - np.float32(0.5)
    x1, y1 = np.floor(xf).astype(np.intp), np.floor(yf).astype(np.intp)
    xa, ya = (xf - x1).astype(np.float32), (yf - y1).astype(np.float32)
    x2, y2 = np.minimum(x1 + 1, tiles - 1), np.minimum(y1 + 1, tiles - 1)
    x1, y1 = np.maximum(x1, 0), np.maximum(y1, 0)
    corners = tuple(((yy[:, None] * tiles + xx[None, :]) * 256).ravel()
                    for yy, xx in ((y1, x1), (y1, x2), (y2, x1), (y2, x2)))
    return _Geometry(th, tw, src, tid, corners, ya[:, None], (np.float32(1) - ya)[:, None], xa, np.float32(1) - xa)


def _area_table(ssize: int, dsize: int) -> tuple[tuple[int, int, np.float32], ...]:
    """(source index, destination index, weight) in OpenCV's order for one axis."""
    scale = 1.0 / (dsize / ssize)
    tab = []
    for d in range(dsize):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, ssize - f1)
        s2 = min(math.floor(f2), ssize - 1)
        s1 = min(math.ceil(f1), s2)
        if s1 - f1 > 1e-3:
            tab.append((s1 - 1, d, np.float32((s1 - f1) / cell)))
        tab += [(s, d, np.float32(1.0 / cell)) for s in range(s1, s2)]
        if f2 - s2 > 1e-3:
            tab.append((s2, d, np.float32(min(min(f2 - s2, 1.0), cell) / cell)))
    return tuple(tab)


def area_resize(img: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """``cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)`` for downscaling a grey
    uint8 image, as x86 computes it. Integer factors keep OpenCV's integer path (exact anywhere)."""
    sx, sy = 1.0 / (width / img.shape[1]), 1.0 / (height / img.shape[0])
    if abs(sx - round(sx)) < _DBL_EPSILON and abs(sy - round(sy)) < _DBL_EPSILON:
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    src = img.astype(np.float32)
    buf = np.zeros((img.shape[0], width), np.float32)
    for s_idx, d_idx, a in _rounds_for(img.shape[1], width):  # k-th term of every column: OpenCV's order
        buf[:, d_idx] = buf[:, d_idx] + src[:, s_idx] * a
    out = np.zeros((height, width), np.float32)
    for k, (s_idx, d_idx, a) in enumerate(_rounds_for(img.shape[0], height)):
        row = buf[s_idx] * a[:, None]
        if k == 0:
            out[d_idx] = row
        else:
            out[d_idx] = out[d_idx] + row
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


_CACHED_SIZE = 1024  # crops and camera frames' short side; a whole upload's tables are not kept


def _rounds_for(ssize: int, dsize: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """``_rounds``, cached only for sizes a crop or the camera repeats: the table of one
    2400-px axis is ~0.4 MB, and uploads of ever new sizes must not pile them up."""
    return _rounds(ssize, dsize) if ssize <= _CACHED_SIZE else _rounds.__wrapped__(ssize, dsize)


@lru_cache(maxsize=256)
def _rounds(ssize: int, dsize: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """``_area_table`` regrouped: round k holds the k-th (source, destination, weight) of each
    destination index, so adding round after round keeps each sum in OpenCV's order."""
    per: dict[int, list[tuple[int, np.float32]]] = {}
    for s_, d, a in _area_table(ssize, dsize):
        per.setdefault(d, []).append((s_, a))
    out = []
    for k in range(max(len(v) for v in per.values())):
        ds = [d for d in sorted(per) if len(per[d]) > k]
        out.append((np.array([per[d][k][0] for d in ds], np.intp), np.array(ds, np.intp),
                    np.array([per[d][k][1] for d in ds], np.float32)))
    return tuple(out)
