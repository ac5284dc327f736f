"""Text line -> plate box and score: the second half of plate localisation (see ``localize``).

``snap_to_plate`` moves a default box around the characters to the plate's own background
edges; ``plate_features`` and ``plate_score`` tell a plate from other lines of blobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

_FAR_SNAP = 2.5  # character heights: how far a plate's background may reach past the chain


@dataclass(frozen=True)
class PlateGeometry:
    umid: float  # centre along the text line
    vmid: float  # centre across it
    width: float
    height: float


def snap_to_plate(
    grey: npt.NDArray[np.uint8],
    inverted: bool,
    ca: float,
    sa: float,
    u0: float,
    u1: float,
    vmid: float,
    hc: float,
    geo: PlateGeometry,
) -> tuple[PlateGeometry, int, float]:
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
    return PlateGeometry(us + (left + right) / 2, vs + (top + bottom) / 2, right - left, bottom - top), sides, contrast


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


def plate_features(
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


def plate_score(features: dict[str, float]) -> float:
    """Weighted sum of the features, rescaled to 0..1."""
    raw = sum(_WEIGHTS[k] * features[k] for k in _WEIGHTS)
    return float(np.clip((raw - _SCORE_FLOOR) / _SCORE_SPAN, 0.0, 1.0))
