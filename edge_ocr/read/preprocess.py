"""Crop preprocessing: any image -> the normalised tensor the recogniser was trained on.

Pure functions with explicit arguments. Every parameter comes from the model's metadata
(see ``models/README.md``), so training and run time cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from ..capture.grey import to_grey
from .portable import area_resize, clahe
from .tworow import to_one_line


@dataclass(frozen=True)
class PreprocessSpec:
    """How a crop becomes model input. Stored in (and read from) the ONNX metadata."""

    height: int = 32
    width: int = 160
    mean: float = 0.5
    std: float = 0.5
    clahe_clip: float = 2.0  # 0 disables CLAHE
    clahe_tile: int = 4
    pad_value: float = 0.0  # value written right of the plate, in normalised units


def resize_keep_aspect(grey: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Scale to ``height`` keeping the aspect ratio; a result wider than ``width`` is
    squeezed horizontally to ``width`` (the height is never reduced, so characters keep
    the size the model expects). Returns an array of shape (height, w<=width)."""
    h, w = grey.shape[:2]
    new_w = max(1, min(width, int(round(w * height / max(h, 1)))))
    # INTER_LINEAR_EXACT: the plain INTER_LINEAR takes fixed-point SIMD paths that round
    # differently on x86 and ARM64; the model should see the same pixels on a PC and on a Pi
    # and INTER_AREA (non-integer factors) rounds float sums differently: portable.area_resize
    if h > height:
        return area_resize(grey, new_w, height)
    return cv2.resize(grey, (new_w, height), interpolation=cv2.INTER_LINEAR_EXACT)


def model_pixels(image: npt.NDArray, spec: PreprocessSpec) -> npt.NDArray[np.uint8]:
    """The crop as the model sees it before normalisation: grey, a two-row plate joined into one
    line (``tworow.to_one_line``), resized to ``spec.height`` (aspect kept, squeezed to
    ``spec.width`` if wider), CLAHE'd; uint8 (height, w <= width).
    Training data goes through this too, so training and run time cannot drift apart."""
    small = resize_keep_aspect(to_one_line(to_grey(image)), spec.height, spec.width)
    if spec.clahe_clip > 0:
        small = clahe(small, spec.clahe_clip, spec.clahe_tile)  # OpenCV's rounds differently on ARM64
    return small


def recut_variants(image: npt.NDArray) -> list[npt.NDArray[np.uint8]]:
    """Five slightly different cuts of one crop (grey): 4 % of the width cut off or added
    (replicated) on both sides, stretched 12 % wider or 10 % narrower, 6 % of the height cut off
    top and bottom. A crop the model is unsure about is often a box a little off the plate; one
    of these usually fits better. Too small a crop for a cut gets fewer variants.
    A two-row plate is joined into one line first and the line is re-cut: its rows are found
    once, not again in each variant (``model_pixels`` leaves a joined line as it is)."""
    g = to_one_line(to_grey(image))
    h, w = g.shape
    m, v = max(1, int(0.04 * w)), max(1, int(0.06 * h))
    out = [cv2.copyMakeBorder(g, 0, 0, m, m, cv2.BORDER_REPLICATE),
           cv2.resize(g, (max(1, int(w * 1.12)), h), interpolation=cv2.INTER_LINEAR_EXACT)]
    if w - 2 * m >= 8:
        out.append(g[:, m: w - m])
        out.append(cv2.resize(g, (int(w * 0.9), h), interpolation=cv2.INTER_LINEAR_EXACT))
    if h - 2 * v >= 8:
        out.append(g[v: h - v])
    return [np.ascontiguousarray(x) for x in out]


@lru_cache(maxsize=8)
def _levels(mean: float, std: float) -> npt.NDArray[np.float32]:
    """``(x/255 - mean)/std`` in float32 for each grey level x: one table lookup per pixel
    gives the very floats the three array operations gave, in a third of the time."""
    return (np.arange(256, dtype=np.float32) * (1.0 / 255.0) - mean) / std


def _normalised(image: npt.NDArray, spec: PreprocessSpec) -> npt.NDArray[np.float32]:
    """``model_pixels`` normalised to ``(x/255 - mean)/std``, unpadded."""
    return _levels(spec.mean, spec.std)[model_pixels(image, spec)]


def preprocess(image: npt.NDArray, spec: PreprocessSpec) -> npt.NDArray[np.float32]:
    """One crop -> float32 array of shape (1, spec.height, spec.width).

    Steps: grey; resize to the model height keeping aspect (squeeze if too wide); CLAHE at
    that size (so its tiles mean the same thing for a 24 px and a 200 px crop); normalise
    ``(x/255 - mean)/std``; right-pad with ``pad_value`` to the model width.
    """
    norm = _normalised(image, spec)
    out = np.full((1, spec.height, spec.width), spec.pad_value, dtype=np.float32)
    out[0, :, : norm.shape[1]] = norm
    return out


def preprocess_batch(images: list[npt.NDArray], spec: PreprocessSpec, trim: int = 0,
                     min_width: int = 48) -> npt.NDArray[np.float32]:
    """Several crops -> float32 array (N, 1, height, W).

    W is ``spec.width``; with ``trim`` > 0 (a model that accepts narrower input) W is the
    widest crop rounded up to a multiple of ``trim``, at least ``min_width``: a 2:1 plate
    then costs 64 columns of compute instead of 160.
    """
    return pixels_batch([model_pixels(img, spec) for img in images], spec, trim, min_width)


def pixels_batch(pixels: list[npt.NDArray[np.uint8]], spec: PreprocessSpec, trim: int = 0,
                 min_width: int = 48) -> npt.NDArray[np.float32]:
    """``preprocess_batch`` from crops already through ``model_pixels``: normalised, padded."""
    if not pixels:
        return np.zeros((0, 1, spec.height, spec.width), dtype=np.float32)
    width = spec.width
    if trim > 0:
        widest = max(n.shape[1] for n in pixels)
        width = min(spec.width, max(min_width, -(-widest // trim) * trim))
    out = np.full((len(pixels), 1, spec.height, width), spec.pad_value, dtype=np.float32)
    levels = _levels(spec.mean, spec.std)
    for k, n in enumerate(pixels):
        out[k, 0, :, : n.shape[1]] = levels[n]
    return out
