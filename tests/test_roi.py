"""ROI masks: the cache keeps the camera's few sizes and never grows with the sizes of stills."""

from __future__ import annotations

import tracemalloc

import numpy as np

from edge_ocr.capture import roi
from edge_ocr.capture.roi import Roi

HALF = Roi([[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]])


def test_masks_of_ever_new_sizes_stay_within_the_budget() -> None:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(16):  # 9 MB each: 144 MB if every size were kept
        m = HALF.mask(3000 + i, 3000)
        assert m.shape == (3000, 3000 + i) and m[:, :1400].all() and not m[:, 1600:].any()
    del m
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert roi.mask_cache_bytes() <= roi.MASK_CACHE_BYTES
    assert grown <= roi.MASK_CACHE_BYTES + 1_000_000, f"{grown:,} bytes kept"


def test_the_cameras_masks_are_reused_and_one_too_big_is_not_kept() -> None:
    sizes = [(1920, 1080), (960, 540), (320, 180)]  # full frame, localiser, motion
    first = [HALF.mask(w, h) for w, h in sizes]
    HALF.mask(5000, 5000)  # 25 MB: over the budget, used once
    assert all(HALF.mask(w, h) is m for (w, h), m in zip(sizes, first))
    assert roi.mask_cache_bytes() <= roi.MASK_CACHE_BYTES
    assert not first[0].flags.writeable


def test_a_whole_image_roi_needs_no_mask() -> None:
    roi._masks.clear()
    assert Roi.full().covers_all(6000, 4000)
    assert Roi([[(0, 0), (640, 0), (640, 480), (0, 480)]], "pixels", (640, 480)).covers_all(1280, 960)
    assert roi.mask_cache_bytes() == 0
    assert not HALF.covers_all(100, 100)
    # a triangle reaching past the image still covers it: answered from its mask
    assert Roi([[(-1.0, -1.0), (3.0, -1.0), (-1.0, 3.0)]]).covers_all(50, 40)
    assert np.all(Roi([[(-1.0, -1.0), (3.0, -1.0), (-1.0, 3.0)]]).mask(50, 40) == 255)
