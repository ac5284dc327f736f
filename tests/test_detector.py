"""The learnt plate detector: its pre/post-processing, the shipped model on drawn scenes, and how
the reading core and ``/api/ocr`` use it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_ocr.capture.quad import iou
from edge_ocr.capture.roi import Roi
from edge_ocr.config import LocalizerConfig, parse_config
from edge_ocr.find.detector import REG_SCALE, STRIDE, LearntLocalizer, decode, prepare
from edge_ocr.find.localize import Localizer
from edge_ocr.serve.still import StillReader
from edge_ocr.stages import StartupError, load_localizer, load_recognizer, plate_reader

from . import scenes

MODEL = Path(__file__).resolve().parents[1] / "models" / "plate_det_int8.onnx"


def _maps(h: int, w: int, plates: list[tuple[float, float, float, float, float]]) -> np.ndarray:
    """A network output with a peak for each (cx, cy, width, height, score) plate, in input px."""
    out = np.zeros((9, h // STRIDE, w // STRIDE), np.float32)
    for cx, cy, pw, ph, s in plates:
        x, y = int(cx // STRIDE), int(cy // STRIDE)
        out[0, y, x] = s
        centre = np.array([(x + 0.5) * STRIDE, (y + 0.5) * STRIDE])
        quad = np.array([[cx - pw / 2, cy - ph / 2], [cx + pw / 2, cy - ph / 2], [cx + pw / 2, cy + ph / 2],
                         [cx - pw / 2, cy + ph / 2]])
        out[1:, y, x] = ((quad - centre) / REG_SCALE).reshape(8)
    return out


def test_decode_gives_corners_best_first_and_honours_score_and_count() -> None:
    out = _maps(256, 256, [(60, 60, 80, 20, 0.9), (180, 200, 40, 12, 0.6), (200, 40, 30, 10, 0.2)])
    found = decode(out, min_score=0.3, max_det=5)
    assert [round(d.score, 2) for d in found] == [0.9, 0.6]
    np.testing.assert_allclose(found[0].quad, [[20, 50], [100, 50], [100, 70], [20, 70]], atol=1e-3)
    assert len(decode(out, min_score=0.1, max_det=5)) == 3
    assert len(decode(out, min_score=0.1, max_det=1)) == 1


def test_decode_suppresses_a_second_peak_on_the_same_plate() -> None:
    out = _maps(256, 256, [(100, 100, 120, 30, 0.9), (112, 104, 120, 30, 0.7), (40, 200, 50, 14, 0.5)])
    found = decode(out, min_score=0.3, max_det=5)
    assert [round(d.score, 2) for d in found] == [0.9, 0.5]


def test_prepare_scales_to_the_working_width_and_pads_to_the_stride() -> None:
    grey = np.full((720, 1280), 200, np.uint8)
    x, scale = prepare(grey, 640)
    assert scale == 0.5 and x.shape == (1, 1, 368, 640)  # 360 rounded up to a multiple of 16
    assert x[0, 0, 359, 0] == pytest.approx(200 / 255) and x[0, 0, 360:].max() == 0.0
    small, s2 = prepare(np.zeros((100, 130), np.uint8), 640)
    assert s2 == 1.0 and small.shape == (1, 1, 112, 144)


@pytest.fixture(scope="module")
def localizer() -> LearntLocalizer:
    loc = load_localizer(LocalizerConfig())
    assert isinstance(loc, LearntLocalizer)
    return loc


@pytest.mark.parametrize(("seed", "region", "text"), [(0, "eu", "RK115AN"), (1, "br", "PJC4903"),
                                                      (2, "us", "7ABC123"), (3, "eu", "B123XY")])
def test_shipped_detector_finds_the_plate_of_a_drawn_car(localizer: LearntLocalizer, seed: int, region: str,
                                                        text: str) -> None:
    img, box = scenes.still_with_box(text, region, seed=seed)
    cands = localizer.find(img)
    assert cands, "no plate found"
    assert iou(cands[0].box, box) >= 0.5
    # the crop is cut from the frame around the plate, upright
    assert cands[0].crop.shape[1] > cands[0].crop.shape[0] > 0


def test_detections_come_back_in_the_full_frame_pixels_and_inside_the_roi(localizer: LearntLocalizer) -> None:
    img, box = scenes.still_with_box("RK115AN", "eu", width=1280, height=720)
    small = cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA)
    cands = localizer.find(small, full=img)
    assert cands and iou(cands[0].box, box) >= 0.5
    x, y, w, h = box
    around = Roi([[(x - w, y - h), (x + 2 * w, y - h), (x + 2 * w, y + 2 * h), (x - w, y + 2 * h)]], "pixels",
                 fixed_box=False)
    inside = localizer.find(small, around, full=img)
    assert inside and iou(inside[0].box, box) >= 0.5
    above = Roi([[(0, 0), (1280, 0), (1280, y - h), (0, y - h)]], "pixels", fixed_box=False)
    assert not any(iou(c.box, box) > 0 for c in localizer.find(small, above, full=img))


def test_a_missing_or_broken_model_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="localizer.model"):
        load_localizer(LocalizerConfig(type="learnt", model=str(tmp_path / "none.onnx")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(StartupError, match="localizer.model"):
        load_localizer(LocalizerConfig(type="learnt", model=str(bad)))


def test_config_picks_the_localiser_and_its_defaults() -> None:
    assert isinstance(load_localizer(LocalizerConfig(type="classic")), Localizer)
    cfg = parse_config("localizer: {type: classic}")
    assert cfg.localizer.setting("min_score") == 0.3 and cfg.localizer.setting("work_width") == 960
    cfg = parse_config("localizer: {min_score: 0.7}")
    assert cfg.localizer.type == "learnt" and cfg.localizer.setting("min_score") == 0.7
    assert cfg.localizer.setting("work_width") == 640


def test_a_photo_with_no_plate_gets_no_text_from_the_still_reader() -> None:
    cfg = parse_config("")
    rec = load_recognizer(cfg.recognizer)
    still = StillReader(plate_reader(cfg, rec, load_localizer(cfg.localizer)),
                        cfg.recognizer.min_confidence)
    # text everywhere, no plate: a sign and loose lettering on a plain wall
    wall = np.full((540, 960, 3), 120, np.uint8)
    cv2.putText(wall, "N581", (300, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (20, 20, 20), 3)
    cv2.putText(wall, "TLT1L MAK99", (200, 400), cv2.FONT_HERSHEY_DUPLEX, 1.0, (240, 240, 240), 2)
    answer = still.read(wall)
    assert answer["text"] == "" and answer["confidence"] == 0.0
    plate = still.read(scenes.still("RK115AN", "eu"))
    assert plate["text"] == "RK115AN"
