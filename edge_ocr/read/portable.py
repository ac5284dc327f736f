"""CLAHE and INTER_AREA downscaling that give the same bytes on x86 and ARM64.

OpenCV's ``CLAHE.apply`` and ``resize(..., INTER_AREA)`` (non-integer factors) compute in float32
with SIMD code that uses fused multiply-add on ARM64 and separate multiply and add on x86, so a
pixel near .5 rounds differently (+-1 grey level), and CLAHE turns that into larger differences.
These numpy versions follow OpenCV's algorithms step by step in float32 with separate multiply
and add, so they reproduce OpenCV's x86 output exactly (the model was trained on it) and
numpy gives identical results on both architectures.
"""

from __future__ import annotations

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
    # (None where both sides fit: the pixels in their own order)
    hist = np.bincount(g.tid + (flat if g.src is None else flat.take(g.src)),
                       minlength=tiles * tiles * 256).reshape(tiles * tiles, 256)
    if limit > 0:
        excess = np.maximum(hist - limit, 0).sum(1)
        hist = np.minimum(hist, limit) + (excess // 256)[:, None]
        rest = excess % 256
        if rest.any():  # the remainder: one more at every step-th level from 0, as OpenCV spreads it
            hist += _SPREAD[rest]
    # in place from here: the same float32 operations without a new array for each (the call
    # runs just after the network, which has pushed numpy's working memory out of the caches);
    # nothing here is negative, so only the upper clip can bite
    luts = np.cumsum(hist, 1).astype(np.float32)
    luts *= scale
    luts = np.minimum(np.rint(luts, out=luts), 255, out=luts).ravel()
    pix = flat.astype(np.intp)
    l11, l12, l21, l22 = (luts.take(base + pix).reshape(h, w) for base in g.corners)
    l11 *= g.xa1
    l12 *= g.xa
    l11 += l12  # the top row of tiles' mix
    l21 *= g.xa1
    l22 *= g.xa
    l21 += l22  # the bottom row's
    l11 *= g.ya1
    l21 *= g.ya
    l11 += l21
    return np.minimum(np.rint(l11, out=l11), 255, out=l11).astype(np.uint8)


def _spread_table() -> npt.NDArray[np.int64]:
    """Row r: where OpenCV's CLAHE adds the r clipped counts left over after the even share (one
    at every (256 // r)-th grey level from 0, r of them); looked up per tile instead of built."""
    rest = np.arange(256)[:, None]
    step = np.maximum(256 // np.maximum(rest, 1), 1)
    levels = np.arange(256)[None, :]
    return (((levels % step == 0) & (levels // step < rest)) & (rest > 0)).astype(np.int64)


_SPREAD = _spread_table()


class _Geometry(NamedTuple):
    th: int
    tw: int
    src: np.ndarray | None  # flat source pixel of each pixel of the (padded) tiled area; None: itself
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
    return _Geometry(th, tw, src if padded else None, tid, corners, ya[:, None], (np.float32(1) - ya)[:, None], xa, np.float32(1) - xa)


def _area_terms(ssize: int, dsize: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA table for one axis, laid out (dsize, K): term k of destination d is
    source ``src[d, k]`` with weight ``weight[d, k]`` where ``valid[d, k]``, in OpenCV's order (a
    partial first cell, the whole cells, a partial last cell). Computed for all d at once in
    float64, the same IEEE operations as OpenCV's scalar loop, so the weights are its weights."""
    scale = 1.0 / (dsize / ssize)
    f1 = np.arange(dsize, dtype=np.float64) * scale
    f2 = f1 + scale
    cell = np.minimum(scale, ssize - f1)
    s2 = np.minimum(np.floor(f2), ssize - 1)
    s1 = np.minimum(np.ceil(f1), s2)
    left = s1 - f1 > 1e-3
    right = f2 - s2 > 1e-3
    whole = (s2 - s1).astype(np.intp)
    count = left + whole + right
    k = np.arange(max(int(count.max()), 1))[None, :]
    mid = k - left[:, None]  # the index of a whole cell among the whole cells
    is_left = left[:, None] & (k == 0)
    is_right = right[:, None] & (k == count[:, None] - 1)
    src = np.where(is_left, s1[:, None] - 1, np.where(is_right, s2[:, None], s1[:, None] + mid)).astype(np.intp)
    weight = np.where(is_left, ((s1 - f1) / cell)[:, None],
                      np.where(is_right, (np.minimum(np.minimum(f2 - s2, 1.0), cell) / cell)[:, None],
                               (1.0 / cell)[:, None])).astype(np.float32)
    valid = k < count[:, None]
    return src, weight, valid


def area_resize(img: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """``cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)`` for downscaling a grey
    uint8 image, as x86 computes it. Integer factors keep OpenCV's integer path (exact anywhere)."""
    sx, sy = 1.0 / (width / img.shape[1]), 1.0 / (height / img.shape[0])
    if abs(sx - round(sx)) < _DBL_EPSILON and abs(sy - round(sy)) < _DBL_EPSILON:
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    # the horizontal pass on the transposed image, so each round takes whole rows (contiguous)
    # instead of scattered columns; the sums and their order are the same
    buf = _sum_rounds(np.ascontiguousarray(img.T).astype(np.float32), _rounds_for(img.shape[1], width), width)
    out = _sum_rounds(buf.T, _rounds_for(img.shape[0], height), height)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _sum_rounds(src: npt.NDArray[np.float32], rounds, dsize: int) -> npt.NDArray[np.float32]:
    """Rows of the result: row d is the sum of ``src[s] * a`` over d's terms, added round after
    round in OpenCV's order (round k adds every destination's k-th term). The first round holds
    every destination (each has a term) and 0 + x is x exactly, so it is the start; the products
    and sums are made in place in the gathered rows (fewer arrays, the same float32 operations)."""
    (s_first, _all, a_first), *later = rounds
    out = src[s_first]
    out *= a_first[:, None]
    for s_idx, d_idx, a in later:
        term = src[s_idx]
        term *= a[:, None]
        if len(d_idx) == dsize:
            out += term
        else:
            out[d_idx] += term  # the destinations of a round are distinct: one add each
    return out


_CACHED_SIZE = 1024  # crops and camera frames' short side; a whole upload's tables are not kept


def _rounds_for(ssize: int, dsize: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """``_rounds``, cached only for sizes a crop or the camera repeats: the table of one
    2400-px axis is ~0.4 MB, and uploads of ever new sizes must not pile them up."""
    return _rounds(ssize, dsize) if ssize <= _CACHED_SIZE else _rounds.__wrapped__(ssize, dsize)


@lru_cache(maxsize=256)
def _rounds(ssize: int, dsize: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """``_area_terms`` regrouped: round k holds the k-th (source, destination, weight) of each
    destination index, so adding round after round keeps each sum in OpenCV's order."""
    src, weight, valid = _area_terms(ssize, dsize)
    out = []
    for k in range(src.shape[1]):
        ds = np.flatnonzero(valid[:, k])
        out.append((src[ds, k], ds, weight[ds, k]))
    return tuple(out)
