"""ROI masks: the cache keeps the camera's few sizes and never grows with the sizes of stills."""

from __future__ import annotations

import tracemalloc

import numpy as np

from edge_ocr.capture import roi
from edge_ocr.capture.roi import Roi

HALF = Roi([[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]], "relative", fixed_box=False)


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
    assert Roi([[(0, 0), (640, 0), (640, 480), (0, 480)]], "pixels", (640, 480), fixed_box=False).covers_all(1280, 960)
    assert roi.mask_cache_bytes() == 0
    assert not HALF.covers_all(100, 100)
    # a triangle reaching past the image still covers it: answered from its mask
    assert Roi([[(-1.0, -1.0), (3.0, -1.0), (-1.0, 3.0)]], "relative", fixed_box=False).covers_all(50, 40)
    assert np.all(Roi([[(-1.0, -1.0), (3.0, -1.0), (-1.0, 3.0)]], "relative", fixed_box=False).mask(50, 40) == 255)


def test_the_search_window_is_worked_out_once_per_size_and_maps_back_to_the_source() -> None:
    # a pixel ROI of a 1280x720 frame, searched on the 640x360 lores plane, crops cut from the frame
    gate = Roi([[(200, 300), (1000, 300), (1000, 700), (200, 700)]], "pixels", fixed_box=False)
    gate = gate.with_frame_size((1280, 720))
    win = roi.search_window(gate, (640, 360), (1280, 720))
    assert (win.x, win.y, win.w, win.h, win.scale) == (100, 150, 400, 200, (2.0, 2.0))
    assert win is gate.window((640, 360), (1280, 720))  # the frame size's ROI keeps it: no work per frame
    assert win.mask() is not None and win.mask().shape == (200, 400) and win.mask().all()  # a rectangle inside
    plane = np.arange(360 * 640, dtype=np.int64).reshape(360, 640)
    assert win.cut(plane)[0, 0] == plane[150, 100]
    corner = np.array([[0.0, 0.0], [10.0, 5.0]], np.float32)  # window pixels
    assert win.in_plane(corner).tolist() == [[100.0, 150.0], [110.0, 155.0]]
    assert win.to_source(corner).tolist() == [[200.0, 300.0], [220.0, 310.0]]
    everything = roi.search_window(None, (640, 360), (1280, 720))
    assert (everything.x, everything.y, everything.w, everything.h, everything.plane_mask) == (0, 0, 640, 360, None)
    assert Roi.full().window((640, 360), (1280, 720)).plane_mask is None  # covers the plane: nothing to mask
    for i in range(20):  # stills of ever new sizes: the ROI keeps a few windows, not one per size
        HALF.window((100 + i, 100), (200 + 2 * i, 200))
    assert len(HALF._windows) <= 8


def test_the_windows_a_roi_keeps_hold_masks_within_the_budget() -> None:
    # a relative ROI serves every still size; each window holds its mask even after the mask
    # cache has dropped it, so the windows need their own bound
    ring = Roi([[(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)]], "relative", fixed_box=False)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(8):  # 9 MB masks: 72 MB if the ROI kept all eight windows
        win = ring.window((3000 + i, 3000), (3000 + i, 3000))
        assert win.plane_mask is not None and win.plane_mask.shape == (3000, 3000 + i)
    del win
    big = ring.window((5000, 5000), (5000, 5000))  # 25 MB: used once, not kept
    assert big.plane_mask is not None and big is not ring.window((5000, 5000), (5000, 5000))
    del big
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    held = sum(w.plane_mask.nbytes for w in ring._windows.values() if w.plane_mask is not None)
    assert held <= roi.MASK_CACHE_BYTES
    # at most the mask cache and the windows' own budget (they share most arrays)
    assert grown <= 2 * roi.MASK_CACHE_BYTES + 1_000_000, f"{grown:,} bytes kept"
    camera = ring.window((640, 360), (1280, 720))
    assert ring.window((640, 360), (1280, 720)) is camera  # the camera's own size is still worked out once
