"""Test pictures: clean plates, a street scene, a car carrying a plate, and videos of cars passing.

The plates are the tests' own drawing (Pillow and the DejaVu fonts the test command installs):
tools/make_demo_video.py draws the demo video's plates with the training generator's glyph code
instead. The road and the car are the demo video's own (``make_demo_video``, reached
through bench/video_scene.py as the real-video evaluation reaches it). The plates are drawn
plainly (no camera effects): the point is a plate every model version reads, in a scene the
localiser has to search.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.video_scene import make_demo_video
from edge_ocr.types import Frame

scene = make_demo_video.scene  # a static road: sky, buildings, asphalt, lane marks, sensor noise
draw_car = make_demo_video.draw_car  # a box-shaped car carrying a plate, and the plate's box

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"  # fonts-dejavu-extra, in the README's apt line


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT, size)


def _draw_line(draw: ImageDraw.ImageDraw, x0: float, y_mid: float, groups: list[str], char_h: float, sep: str,
               max_w: float) -> None:
    """Groups of characters ``char_h`` px tall, centred on ``y_mid`` in ``max_w`` px from ``x0``,
    separated by ``sep`` (``-`` a dash, ``·`` a dot, ``""`` a space), squeezed to fit."""
    font = _font(int(char_h * 1.3))
    glyphs: list[Image.Image | None] = []
    for gi, g in enumerate(groups):
        for ch in g:
            b = font.getbbox(ch)
            img = Image.new("L", (b[2] - b[0] + 2, b[3] - b[1] + 2), 0)
            ImageDraw.Draw(img).text((-b[0] + 1, -b[1] + 1), ch, font=font, fill=255)
            glyphs.append(img.resize((max(1, round(img.width * char_h / img.height)), round(char_h)), Image.BILINEAR))
        if gi < len(groups) - 1:
            glyphs.append(None)
    gap = char_h * 0.08
    widths = [g.width if g is not None else char_h * 0.4 for g in glyphs]
    total = sum(widths) + gap * (len(glyphs) - 1)
    scale = min(1.0, max_w / total)
    x = x0 + (max_w - total * scale) / 2
    for g, w in zip(glyphs, widths):
        if g is not None:
            g = g.resize((max(1, round(g.width * scale)), g.height), Image.BILINEAR)
            draw.bitmap((int(x), int(y_mid - g.height / 2)), g, fill=(15, 15, 15))
        elif sep == "-":
            sx = x + w * scale / 2
            draw.rectangle([sx - char_h * 0.12, y_mid - char_h * 0.05, sx + char_h * 0.12, y_mid + char_h * 0.05],
                           fill=(15, 15, 15))
        elif sep == "·":
            sx, r = x + w * scale / 2, char_h * 0.06
            draw.ellipse([sx - r, y_mid - r, sx + r, y_mid + r], fill=(15, 15, 15))
        x += (w + gap) * scale


def clean_plate(text: str, region: str, height: int, seed: int = 0) -> np.ndarray:
    """A plate (BGR, ``height`` px tall) showing ``text`` in the region's layout (eu, br, us).
    ``seed`` moves the characters a little, as different plates of one layout differ."""
    shift = (seed % 5) - 2
    if region == "eu":
        w, h, bg = 520, 110, (245, 245, 245)
        groups, sep, x0, mw = [text[:2], text[2:]], "-", 56 + shift, 450
    elif region == "br":
        w, h, bg = 400, 130, (190, 190, 185)
        groups, sep, x0, mw = [text[:3], text[3:]], "·", 16 + shift, 368
    else:
        w, h, bg = 360, 180, (245, 245, 245)
        groups, sep, x0, mw = [text], "", 18 + shift, 324
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w - 1, h - 1], outline=(20, 20, 20), width=4)
    if region == "eu":
        d.rectangle([0, 0, 46, h], fill=(0, 50, 160))
    _draw_line(d, x0, h * 0.52, groups, h * (0.45 if region == "us" else 0.7), sep, mw)
    plate = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)
    return cv2.resize(plate, (int(w * height / h), height), interpolation=cv2.INTER_AREA)


def plate_height(region: str, frame_height: int) -> int:
    car_h = int(frame_height * 0.38)
    return max(24, int(car_h * (0.22 if region == "us" else 0.15)))


def still_with_box(text: str, region: str, width: int = 960, height: int = 540,
                   seed: int = 0) -> tuple[np.ndarray, tuple[int, ...]]:
    """One frame with a car parked in the middle, and its plate's box."""
    bg = scene(width, height, np.random.default_rng(seed))
    plate = clean_plate(text, region, plate_height(region, height), seed)
    return draw_car(bg, plate, (40, 60, 170), (width - int(width * 0.42)) // 2)


def still(text: str, region: str, width: int = 960, height: int = 540, seed: int = 0) -> np.ndarray:
    """One frame with a car parked in the middle, its plate reading ``text``."""
    return still_with_box(text, region, width, height, seed)[0]


def drive(plates: list[tuple[str, str]], width: int = 960, height: int = 540, fps: int = 10,
          seconds_per_car: float = 3.0, gap_s: float = 1.0, seed: int = 0) -> Iterator[np.ndarray]:
    """The frames of cars driving through, one after another, with empty road between them."""
    rng = np.random.default_rng(seed)
    bg = scene(width, height, rng)
    car_w = int(width * 0.42)
    for k, (text, region) in enumerate(plates):
        plate = clean_plate(text, region, plate_height(region, height), seed + k)
        color = tuple(int(c) for c in rng.integers(30, 220, 3))
        n = int(seconds_per_car * fps)
        for i in range(n):
            u = i / max(n - 1, 1)
            # ease in/out so the car lingers in the middle, like one stopping at a gate
            pos = 0.5 - 0.5 * np.cos(np.pi * u)
            yield draw_car(bg, plate, color, int(-car_w + pos * (width + car_w)))[0]
        for _ in range(int(gap_s * fps)):
            yield bg


def render(out: Path, plates: list[tuple[str, str]], width: int = 960, height: int = 540, fps: int = 10,
           seconds_per_car: float = 3.0, gap_s: float = 1.0, seed: int = 0) -> int:
    """Write ``drive(...)`` as a video file (MJPG, or mp4v for .mp4); returns the frame count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*("mp4v" if out.suffix == ".mp4" else "MJPG")), fps,
                         (width, height))
    if not vw.isOpened():
        raise RuntimeError(f"cannot write video {out}")
    n = 0
    for f in drive(plates, width, height, fps, seconds_per_car, gap_s, seed):
        vw.write(f)
        n += 1
    vw.release()
    return n


def video_frames(path: Path, fps: float) -> Iterator[Frame]:
    """A video file's frames as the pipeline gets them, stamped with the video's own time
    (frame i at i / fps s): played as fast as the pipeline reads, not in real time."""
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        while True:
            ok, image = cap.read()
            if not ok:
                return
            yield Frame(ts=i / fps, wall=1_800_000_000.0 + i / fps, image=image, index=i)
            i += 1
    finally:
        cap.release()
