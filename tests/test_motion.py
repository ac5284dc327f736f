"""Motion gate: hand-made frames and a scripted clock."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ocr.capture.roi import Roi
from edge_ocr.config import ConfigError, MotionConfig, parse_config
from edge_ocr.stages import motion_gate

W, H = 640, 360


def frame(box: tuple[int, int, int, int] | None = None, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A grey-ish scene with a dark object at ``box`` (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 120, np.float32)
    img[:, :, 1] += np.linspace(0, 40, W)[None, :]
    if box is not None:
        x, y, w, h = box
        img[y : y + h, x : x + w] = 30
    if noise:
        img += rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_static_scene_closes_moving_object_opens() -> None:
    gate = motion_gate(MotionConfig(hold_s=0.0))
    assert gate.update(frame(), 0.0)  # first frame: nothing to compare, read once
    assert not gate.update(frame(), 0.1)
    assert not gate.update(frame(), 0.2)
    assert gate.update(frame((100, 100, 80, 60)), 0.3)  # a car appears
    assert gate.last_fraction > 0.01
    assert gate.update(frame((130, 100, 80, 60)), 0.4)  # and moves
    assert not gate.update(frame((130, 100, 80, 60)), 0.5)  # and stops


def test_hold_keeps_the_gate_open_after_motion() -> None:
    gate = motion_gate(MotionConfig(hold_s=2.0))
    gate.update(frame(), 0.0)
    assert not gate.update(frame(), 5.0)
    assert gate.update(frame((200, 100, 80, 60)), 6.0)
    assert gate.update(frame((200, 100, 80, 60)), 7.0)  # still, but within the hold
    assert gate.update(frame((200, 100, 80, 60)), 8.0)
    assert not gate.update(frame((200, 100, 80, 60)), 8.1)


def test_sensor_noise_is_not_motion() -> None:
    gate = motion_gate(MotionConfig(pixel_delta=25, hold_s=0.0))
    gate.update(frame(noise=6, seed=0), 0.0)
    for i in range(1, 6):
        assert not gate.update(frame(noise=6, seed=i), float(i)), gate.last_fraction


def test_motion_outside_the_roi_is_ignored() -> None:
    left_half = Roi([[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]], "relative", fixed_box=False)
    gate = motion_gate(MotionConfig(hold_s=0.0), left_half)
    gate.update(frame(), 0.0)
    assert not gate.update(frame((450, 100, 100, 100)), 0.1)  # right half
    assert gate.update(frame((100, 100, 100, 100)), 0.2)  # left half
    # the fraction is of the ROI, not of the frame: 100x100 of 320x360
    assert gate.last_fraction == pytest.approx(100 * 100 / (320 * 360), rel=0.25)


def test_min_area_sets_the_sensitivity() -> None:
    small = (300, 150, 20, 20)  # 400 px of 230400: 0.17 %
    assert motion_gate(MotionConfig(min_area=0.001, hold_s=0)).update(frame(), 0) is True
    g = motion_gate(MotionConfig(min_area=0.001, hold_s=0))
    g.update(frame(), 0.0)
    assert g.update(frame(small), 0.1)
    g = motion_gate(MotionConfig(min_area=0.01, hold_s=0))
    g.update(frame(), 0.0)
    assert not g.update(frame(small), 0.1)


def test_disabled_gate_is_always_open() -> None:
    gate = motion_gate(MotionConfig(enabled=False))
    assert all(gate.update(frame(), float(t)) for t in range(5))


def test_grey_lores_frames_and_pixel_roi_of_the_main_stream() -> None:
    # ROI in main-stream pixels (1280x720); frames checked are a 320x180 grey lores plane
    roi = Roi([[(0, 0), (640, 0), (640, 720), (0, 720)]], "pixels", (1280, 720), fixed_box=False)
    gate = motion_gate(MotionConfig(hold_s=0, width=320), roi)
    still = np.full((180, 320), 100, np.uint8)
    gate.update(still, 0.0)
    moved = still.copy()
    moved[50:100, 200:260] = 20  # right half of the frame: outside
    assert not gate.update(moved, 0.1)
    moved2 = moved.copy()
    moved2[50:100, 40:100] = 20  # left half: inside
    assert gate.update(moved2, 0.2)
    assert gate.last_mask is not None and gate.last_mask.shape == (180, 320)


def test_frames_are_downscaled_to_the_check_width() -> None:
    gate = motion_gate(MotionConfig(width=160, hold_s=0))
    gate.update(frame(), 0.0)
    gate.update(frame((100, 100, 80, 60)), 0.1)
    assert gate.last_mask is not None and gate.last_mask.shape == (90, 160)


def test_reset_forgets_the_previous_frame() -> None:
    gate = motion_gate(MotionConfig(hold_s=0))
    gate.update(frame(), 0.0)
    assert not gate.update(frame(), 0.1)
    gate.reset()
    assert gate.update(frame((100, 100, 80, 60)), 0.2)  # first frame again: read once


def test_from_config_and_validation() -> None:
    g = motion_gate(MotionConfig(pixel_delta=40, min_area=0.05, width=200, hold_s=1.5))
    assert (g.pixel_delta, g.min_area, g.width, g.hold_s) == (40, 0.05, 200, 1.5)
    # the ranges are checked once, by the schema
    with pytest.raises(ConfigError, match="motion.pixel_delta"):
        parse_config("motion: {pixel_delta: 0}")
    with pytest.raises(ConfigError, match="motion.width"):
        parse_config("motion: {width: 16}")
