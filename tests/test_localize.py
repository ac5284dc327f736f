"""Plate localisation on synthetic scenes, fixed-box crops and ROI geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_ocr.capture.quad import iou, warp_quad
from edge_ocr.capture.roi import Roi
from edge_ocr.config import ConfigError, LocalizerConfig, RoiConfig, parse_config
from edge_ocr.find.localize import Localizer, fixed_candidates
from edge_ocr.stages import load_localizer, region_of_interest

W, H = 1280, 720


def scene(
    seed: int,
    plate: bool = True,
    text: str = "ABC1234",
    center: tuple[int, int] = (640, 420),
    plate_h: int = 60,
    angle: float = 0.0,
    light_text: bool = False,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """A noisy 1280x720 scene with clutter (boxes, lines, discs; no text) and optionally a
    plate-like rectangle with characters. Returns the image and the plate's bounding box."""
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 3), np.uint8)
    img[:] = np.linspace(70, 150, W)[None, :, None].astype(np.uint8)
    for _ in range(25):
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 200))), c, -1)
        elif kind == 1:
            cv2.line(img, (x, y), (int(rng.integers(0, W)), int(rng.integers(0, H))), c, int(rng.integers(1, 6)))
        else:
            cv2.circle(img, (x, y), int(rng.integers(5, 60)), c, -1)
    box = None
    if plate:
        pw = int(plate_h * 3.2)
        bg, fg = ((40, 40, 40), (235, 235, 235)) if light_text else ((235, 235, 235), (20, 20, 20))
        p = np.full((plate_h, pw, 3), bg, np.uint8)
        cv2.rectangle(p, (1, 1), (pw - 2, plate_h - 2), fg, 2)
        scale = plate_h / 45.0
        thick = max(2, int(scale * 2.5))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.putText(
            p, text, ((pw - tw) // 2, (plate_h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, fg, thick, cv2.LINE_AA
        )
        m = cv2.getRotationMatrix2D((pw / 2, plate_h / 2), angle, 1.0)
        m[0, 2] += center[0] - pw / 2
        m[1, 2] += center[1] - plate_h / 2
        inside = cv2.warpAffine(np.full((plate_h, pw), 255, np.uint8), m, (W, H)) > 0
        img[inside] = cv2.warpAffine(p, m, (W, H))[inside]
        corners = cv2.transform(np.array([[[0, 0]], [[pw, 0]], [[pw, plate_h]], [[0, plate_h]]], np.float32), m)[:, 0]
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return img, box


CASES = [
    # seed, center, plate height, angle, light text on dark plate
    (0, (913, 436), 60, -7.0, False),
    (1, (619, 380), 75, 5.0, False),
    (2, (903, 267), 36, 3.0, False),
    (3, (882, 188), 40, 0.0, True),
    (5, (300, 600), 31, 0.0, False),
    (7, (987, 431), 71, 4.0, True),
]


@pytest.mark.parametrize(("seed", "center", "plate_h", "angle", "light"), CASES)
def test_finds_plate_in_cluttered_scene(
    seed: int, center: tuple[int, int], plate_h: int, angle: float, light: bool
) -> None:
    img, box = scene(seed, center=center, plate_h=plate_h, angle=angle, light_text=light)
    assert box is not None
    cands = load_localizer(LocalizerConfig(type="classic")).find(img)
    assert cands, "no candidate"
    assert iou(cands[0].box, box) >= 0.5  # the best candidate is the plate
    top = cands[0]
    assert top.score >= 0.6 and top.chars >= 4
    # the text line's tilt is measured (image y points down: a counter-clockwise plate rises)
    assert abs(top.angle + angle) < 3.0
    # the crop is the deskewed plate: wider than tall, about the plate's size
    ch, cw = top.crop.shape[:2]
    assert top.crop.shape[2] == 3 and 2.0 < cw / ch < 5.0
    assert 0.7 * plate_h < ch < 1.6 * plate_h


@pytest.mark.parametrize("seed", range(6))
def test_empty_scene_has_no_confident_candidate(seed: int) -> None:
    img, _ = scene(seed, plate=False)
    assert all(c.score < 0.5 for c in load_localizer(LocalizerConfig(type="classic")).find(img))


def test_max_candidates_and_min_score_are_honoured() -> None:
    img, _ = scene(4, plate=False)
    # three plates in one frame
    for x, text in ((250, "ABC123"), (640, "XYZ987"), (1030, "KLM456")):
        p, _ = scene(4, center=(x, 400), plate_h=50, text=text)
        img[350:450, x - 100 : x + 100] = p[350:450, x - 100 : x + 100]
    assert len(load_localizer(LocalizerConfig(type="classic", max_candidates=2)).find(img)) == 2
    three = load_localizer(LocalizerConfig(type="classic", max_candidates=5)).find(img)
    assert len(three) >= 3
    assert [c.score for c in three] == sorted((c.score for c in three), reverse=True)
    everything = load_localizer(LocalizerConfig(type="classic", max_candidates=50, min_score=0.0)).find(img)
    # scores depend on the CPU's float path (all three plates score exactly 1.0 on some), so the
    # test asserts the rule, not a split it expects: each threshold keeps exactly the candidates
    # at or above it (suppression only ever removes a candidate for a better one)
    for cut in sorted({c.score for c in everything} | {0.25, 0.5, 0.75, 1.0}):
        strict = load_localizer(LocalizerConfig(type="classic", max_candidates=50, min_score=cut)).find(img)
        assert [c.box for c in strict] == [c.box for c in everything if c.score >= cut], cut


def test_roi_excludes_plates_outside_it() -> None:
    img, box = scene(1, center=(300, 300), plate_h=60)
    assert box is not None
    left = Roi([[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]], "relative", fixed_box=False)
    right = Roi([[(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]], "relative", fixed_box=False)
    loc = load_localizer(LocalizerConfig(type="classic"))
    assert any(iou(c.box, box) >= 0.5 for c in loc.find(img, left))
    assert not any(iou(c.box, box) > 0.1 for c in loc.find(img, right))


def test_localise_on_small_copy_crop_from_full_resolution() -> None:
    full, box = scene(2, center=(700, 400), plate_h=70)
    assert box is not None
    small = cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA)
    cands = load_localizer(LocalizerConfig(type="classic")).find(small, full=full)
    assert cands and iou(cands[0].box, box) >= 0.5  # boxes are in full-frame pixels
    assert cands[0].crop.shape[0] > 60  # cut from the full frame, not the half-size copy


def test_pixel_roi_refers_to_the_full_frame_when_searching_a_small_copy() -> None:
    full, box = scene(2, center=(1000, 400), plate_h=70)
    small = cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA)
    roi = Roi([[(800, 300), (1200, 300), (1200, 500), (800, 500)]], "pixels", fixed_box=False)
    cands = load_localizer(LocalizerConfig(type="classic")).find(small, roi, full=full)
    assert cands and box is not None and iou(cands[0].box, box) >= 0.5


def test_from_config() -> None:
    loc = load_localizer(LocalizerConfig(type="classic", max_candidates=3, min_height=20, min_score=0.4))
    assert isinstance(loc, Localizer) and (loc.max_candidates, loc.min_height, loc.min_score) == (3, 20, 0.4)
    with pytest.raises(ConfigError, match="max_aspect"):  # checked once, by the schema
        parse_config("localizer: {min_aspect: 5, max_aspect: 2}")


def test_too_small_plates_are_ignored() -> None:
    img, box = scene(3, center=(640, 360), plate_h=36)
    assert any(iou(c.box, box) >= 0.5 for c in load_localizer(LocalizerConfig(type="classic")).find(img))
    tall_only = load_localizer(LocalizerConfig(type="classic", min_height=60))
    assert not any(iou(c.box, box) >= 0.5 for c in tall_only.find(img))


# ---------------------------------------------------------------------- fixed box


def test_fixed_box_quad_is_deskewed() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    quad = np.array([[50, 60], [250, 40], [255, 100], [55, 120]], np.float32)
    cv2.fillConvexPoly(img, quad.astype(np.int32), (255, 255, 255))
    # corners in any order
    roi = Roi([[tuple(quad[i]) for i in (2, 0, 3, 1)]], "pixels", fixed_box=True)
    (cand,) = fixed_candidates(img, roi)
    assert cand.score == 1.0 and cand.chars == 0
    assert cand.box == (50, 40, 205, 80)
    h, w = cand.crop.shape[:2]
    assert abs(w - 201) <= 2 and abs(h - 61) <= 2
    assert cand.crop[5:-5, 5:-5].min() > 200  # all plate, nothing of the background
    assert -7 < cand.angle < -4


def test_fixed_box_polygon_uses_its_bounding_box() -> None:
    img = np.arange(100 * 200, dtype=np.uint32).reshape(100, 200).astype(np.uint8)
    roi = Roi([[(0.1, 0.2), (0.5, 0.2), (0.6, 0.5), (0.3, 0.8), (0.1, 0.5)]], "relative", fixed_box=True)
    (cand,) = fixed_candidates(img, roi)
    assert cand.box == (20, 20, 100, 60)
    assert cand.crop.shape == (60, 100)


def test_warp_quad_margin() -> None:
    img = np.zeros((100, 100), np.uint8)
    img[40:60, 20:80] = 255
    q = np.array([[20, 40], [80, 40], [80, 60], [20, 60]], np.float32)
    assert warp_quad(img, q).shape == (20, 60)
    crop = warp_quad(img, q, margin=0.1)
    assert crop.shape == (24, 72)
    assert crop[0].max() == 0 and crop[12, 36] == 255  # the margin is background


# ---------------------------------------------------------------------- ROI geometry


def test_roi_relative_mask_and_bbox() -> None:
    roi = Roi([[(0.25, 0.5), (0.75, 0.5), (0.75, 1.0), (0.25, 1.0)]], "relative", fixed_box=False)
    m = roi.mask(200, 100)
    assert m.shape == (100, 200) and m.dtype == np.uint8
    assert m[75, 100] == 255 and m[25, 100] == 0 and m[75, 10] == 0
    assert abs(np.count_nonzero(m) - 100 * 50) <= 200
    assert roi.bbox(200, 100) == (50, 50, 100, 50)
    assert roi.bbox(400, 200) == (100, 100, 200, 100)  # scales with the image
    assert not roi.covers_all(200, 100)
    assert Roi.full().covers_all(64, 48)


def test_roi_pixels_scale_to_smaller_images_and_union_of_polygons() -> None:
    roi = Roi([[(0, 0), (100, 0), (100, 100)], [(600, 300), (640, 300), (640, 360), (600, 360)]], "pixels",
              (640, 360), fixed_box=False)
    assert roi.bbox(640, 360) == (0, 0, 640, 360)
    assert roi.boxes(320, 180) == [(0, 0, 50, 50), (300, 150, 20, 30)]
    m = roi.mask(320, 180)
    assert m[170, 310] == 255 and m[10, 40] == 255 and m[40, 10] == 0  # triangle above its diagonal
    # without a frame size, pixel coordinates are those of the image given
    assert Roi([[(0, 0), (10, 0), (10, 10)]], "pixels", fixed_box=False).bbox(320, 180) == (0, 0, 10, 10)
    tied = Roi([[(0, 0), (10, 0), (10, 10)]], "pixels", fixed_box=False).with_frame_size((20, 20))
    assert tied.bbox(40, 40) == (0, 0, 20, 20)


def test_roi_from_config_and_validation() -> None:
    cfg = RoiConfig(units="pixels", polygons=[[(10, 10), (50, 10), (50, 40)]], fixed_box=True)
    roi = region_of_interest(cfg).with_frame_size((100, 100))
    assert roi.fixed_box and roi.bbox(100, 100) == (10, 10, 40, 30)
    # checked once, by the schema
    with pytest.raises(ConfigError, match="roi.polygons"):
        parse_config("roi: {polygons: [[[0, 0], [1, 1]]]}")
    with pytest.raises(ConfigError, match="roi.units"):
        parse_config("roi: {units: inches}")
    with pytest.raises(ConfigError, match="roi.polygons"):
        parse_config("roi: {polygons: []}")
