"""Preprocessing: any input image -> (1, H, W) float32 in the model's range."""

import numpy as np
import pytest

from edge_ocr.capture.grey import to_grey
from edge_ocr.read.preprocess import PreprocessSpec, preprocess, preprocess_batch

SPEC = PreprocessSpec(height=32, width=160, mean=0.5, std=0.5, clahe_clip=2.0, clahe_tile=4, pad_value=0.0)
LO, HI = (0 - SPEC.mean) / SPEC.std, (1 - SPEC.mean) / SPEC.std


def gradient(h: int, w: int, c: int | None = 3, dtype=np.uint8) -> np.ndarray:
    top = 65535 if dtype == np.uint16 else 255
    g = (np.linspace(0, top, w)[None, :] * np.ones((h, 1))).astype(dtype)
    return g if c is None else np.repeat(g[..., None], c, axis=2)


@pytest.mark.parametrize(
    "img",
    [
        gradient(1, 1),
        gradient(2000, 4000),
        gradient(20, 2000),  # very wide: squeezed
        gradient(500, 20),  # very tall
        gradient(24, 94, None),  # grey
        gradient(30, 100, 4),  # BGRA
        gradient(30, 100, 3, np.uint16),  # 16-bit
        gradient(30, 100, 1),
    ],
    ids=["1x1", "huge", "wide", "tall", "grey", "bgra", "16bit", "1ch"],
)
def test_shape_dtype_range(img: np.ndarray) -> None:
    x = preprocess(img, SPEC)
    assert x.shape == (1, 32, 160)
    assert x.dtype == np.float32
    assert x.min() >= LO - 1e-6 and x.max() <= HI + 1e-6


def test_aspect_kept_and_right_padded_with_pad_value() -> None:
    x = preprocess(gradient(50, 100), SPEC)  # 2:1 -> 64 px wide at height 32
    assert np.all(x[0, :, 64:] == SPEC.pad_value)
    assert np.any(x[0, :, :64] != SPEC.pad_value)
    assert x[0, 10, 63] > x[0, 10, 0]  # left-to-right gradient survives, not mirrored


def test_too_wide_is_squeezed_to_full_width_without_padding() -> None:
    x = preprocess(gradient(30, 600), SPEC)
    assert x[0, 16, -1] > 0.5  # the bright right end reaches the last column


def test_16bit_uses_the_high_byte() -> None:
    img16 = np.full((32, 160), 40000, np.uint16)
    assert to_grey(img16)[0, 0] == 40000 >> 8


def test_empty_and_non_image_arrays_are_rejected() -> None:
    with pytest.raises(ValueError, match="not an image"):
        preprocess(np.zeros((0, 10, 3), np.uint8), SPEC)
    with pytest.raises(ValueError, match="not an image"):
        preprocess(np.zeros((4, 4, 5), np.uint8), SPEC)


def test_batch_stacks_in_order() -> None:
    a, b = gradient(30, 60), 255 - gradient(30, 60)
    x = preprocess_batch([a, b], SPEC)
    assert x.shape == (2, 1, 32, 160)
    assert np.allclose(x[0], preprocess(a, SPEC)) and np.allclose(x[1], preprocess(b, SPEC))


def test_trimmed_batch_is_cut_to_the_widest_crop_rounded_up() -> None:
    narrow, wide = gradient(50, 100), gradient(30, 130)  # 64 px and 139 px wide at height 32
    x = preprocess_batch([narrow], SPEC, trim=8)
    assert x.shape == (1, 1, 32, 64)
    assert np.allclose(x[0], preprocess(narrow, SPEC)[:, :, :64])
    x = preprocess_batch([narrow, wide], SPEC, trim=8)
    assert x.shape == (2, 1, 32, 144)
    assert np.all(x[0, 0, :, 64:] == SPEC.pad_value)
    assert preprocess_batch([gradient(40, 20)], SPEC, trim=8).shape[-1] == 48  # never below min_width


def test_portable_clahe_and_area_resize_match_opencv_byte_for_byte() -> None:
    """edge_ocr.portable reproduces OpenCV's x86 output (what the model was trained on) with
    numpy arithmetic that gives the same bytes on ARM64 (tools/arm64-check.sh compares)."""
    import platform

    import cv2

    from edge_ocr.read.portable import area_resize, clahe

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("OpenCV itself rounds differently on this CPU; x86 OpenCV is the reference "
                    "(tools/arm64-check.sh compares the readings across CPUs)")
    rng = np.random.default_rng(1)
    for _ in range(60):
        img = rng.integers(0, 256, (32, int(rng.integers(8, 161))), dtype=np.uint8)
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (5, 5), 2)
        assert np.array_equal(clahe(img, 2.0, 4), cv2.createCLAHE(2.0, (4, 4)).apply(img))
        # any size (padded sides) and few grey levels (clipped histograms with remainders to spread)
        odd = rng.integers(0, 256, (int(rng.integers(4, 80)), int(rng.integers(4, 300))), dtype=np.uint8)
        odd = odd // 64 * 64 if rng.random() < 0.5 else odd
        assert np.array_equal(clahe(odd, 2.0, 4), cv2.createCLAHE(2.0, (4, 4)).apply(odd))
        big = rng.integers(0, 256, (int(rng.integers(33, 150)), int(rng.integers(20, 500))), dtype=np.uint8)
        w = max(1, min(160, round(big.shape[1] * 32 / big.shape[0])))
        assert np.array_equal(area_resize(big, w, 32), cv2.resize(big, (w, 32), interpolation=cv2.INTER_AREA))
