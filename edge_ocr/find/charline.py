"""Characters -> text lines: the first half of plate localisation (see ``localize``).

An "ink" map from local thresholding, character-like connected components, and chains of blobs
of similar height on one slightly tilted line. Works on one pyramid level in its own pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

_MAX_BLOB_ASPECT = 1.4  # width/height: two narrow characters run together still pass
_THRESH_BLOCK = 13  # px, local threshold window: a few stroke widths of a 7-40 px character
_THRESH_C = 8  # grey levels a pixel must differ from its neighbourhood to count as ink


def ink_map(grey: npt.NDArray[np.uint8], inverted: bool, max_h: float, block: int = _THRESH_BLOCK) -> npt.NDArray[np.uint8]:
    """Binary "ink" map: pixels darker (``inverted``) or lighter than their neighbourhood, with
    long horizontal lines (plate borders, bumper edges) removed so characters touching them
    come apart."""
    binary = cv2.adaptiveThreshold(
        grey,
        255,
        cv2.ADAPTIVE_THRESH_MEAN_C,
        cv2.THRESH_BINARY_INV if inverted else cv2.THRESH_BINARY,
        block,
        _THRESH_C if inverted else -_THRESH_C,
    )
    # no stroke of a character is much wider than the tallest character is tall
    line_len = round(1.2 * max_h)
    lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (line_len, 1)))
    return np.asarray(cv2.subtract(binary, lines), np.uint8)


def char_blobs(binary: npt.NDArray[np.uint8], min_h: float, max_h: float) -> npt.NDArray[np.float64]:
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


def text_lines(blobs: npt.NDArray[np.float64]) -> list[list[int]]:
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
