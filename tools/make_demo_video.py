"""Render a short street-scene video with cars carrying synthetic plates, for the demo and tests.

    python -m tools.make_demo_video samples/demo.mp4

writes the bundled demo video: 960x540 at 10 fps, 3 s per car and 1 s of empty street after
each, three cars carrying a European RK115AN, a Brazilian PJC4903 and a US 7ABC123 (the default
``--plates RK115AN:eu,PJC4903:br,7ABC123:us``, each TEXT:REGION drawn in that region's plate
layout and shape). Each car drives into view, slows near the middle, and leaves; the plate texts
are known, so a test can check what the daemon reads. Needs Pillow and fonts (the generator's),
not the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from tools import synth_plates


def clean_plate(text: str, region: str, height: int, seed: int = 0) -> np.ndarray:
    """A plate image (BGR) showing ``text`` in the region's layout, without camera effects."""
    rng = np.random.default_rng(seed)
    latin, _cjk = synth_plates.available_fonts()
    font_path = next((p for p in latin if "Condensed-Bold" in p or "Narrow-Bold" in p), latin[0])
    if region == "eu":
        W, H = 520, 110
        img = synth_plates.Image.new("RGB", (W, H), (245, 245, 245))
        d = synth_plates.ImageDraw.Draw(img)
        d.rectangle([0, 0, W - 1, H - 1], outline=(20, 20, 20), width=4)
        d.rectangle([0, 0, 46, H], fill=(0, 50, 160))
        groups = [text[:2], text[2:]]
        sep = "-"
        x0, mw = 56, W - 70
    elif region == "br":
        W, H = 400, 130
        img = synth_plates.Image.new("RGB", (W, H), (190, 190, 185))
        d = synth_plates.ImageDraw.Draw(img)
        d.rectangle([0, 0, W - 1, H - 1], outline=(30, 30, 30), width=4)
        groups, sep, x0, mw = [text[:3], text[3:]], "·", 16, W - 32
    else:  # us
        W, H = 360, 180
        img = synth_plates.Image.new("RGB", (W, H), (245, 245, 245))
        d = synth_plates.ImageDraw.Draw(img)
        d.rectangle([0, 0, W - 1, H - 1], outline=(30, 30, 120), width=4)
        groups, sep, x0, mw = [text], "", 18, W - 36
    ch = H * (0.45 if region == "us" else 0.7)
    font = synth_plates._font(font_path, int(ch * 1.3))
    synth_plates._draw_glyphs(d, rng, x0, H * 0.52, groups, [font], ch, (15, 15, 15), sep, 0.4, mw)
    plate = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)
    return cv2.resize(plate, (int(W * height / H), height), interpolation=cv2.INTER_AREA)


def scene(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A static road background: sky, buildings, asphalt, lane marks."""
    bg = np.zeros((height, width, 3), np.uint8)
    bg[: height // 3] = (200, 170, 140)
    for x in range(0, width, width // 8):
        h = int(rng.integers(height // 6, height // 3))
        bg[height // 3 - h: height // 3, x: x + width // 10] = tuple(int(c) for c in rng.integers(60, 160, 3))
    bg[height // 3:] = (70, 70, 70)
    for x in range(0, width, width // 6):
        cv2.rectangle(bg, (x, int(height * 0.9)), (x + width // 12, int(height * 0.92)), (220, 220, 220), -1)
    noise = rng.normal(0, 4, bg.shape)
    return np.clip(bg + noise, 0, 255).astype(np.uint8)


def draw_car(bg: np.ndarray, plate: np.ndarray, color: tuple[int, ...], x: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``bg`` with a box-shaped car whose left edge is at ``x`` and ``plate`` on its bumper, and
    the plate's box (x, y, w, h) in the frame."""
    height, width = bg.shape[:2]
    car_w, car_h = int(width * 0.42), int(height * 0.38)
    y = int(height * 0.45)
    f = bg.copy()
    cv2.rectangle(f, (x, y), (x + car_w, y + car_h), color, -1)
    cv2.rectangle(f, (x + car_w // 8, y - car_h // 3), (x + car_w * 7 // 8, y), color, -1)
    cv2.rectangle(f, (x + car_w // 5, y - car_h // 4), (x + car_w * 4 // 5, y - 4), (90, 60, 40), -1)
    ph, pw = plate.shape[:2]
    px, py = x + (car_w - pw) // 2, y + car_h - ph - car_h // 8
    x0, x1 = max(px, 0), min(px + pw, width)
    if x1 > x0:
        f[py: py + ph, x0:x1] = plate[:, x0 - px: x1 - px]
    return f, (px, py, pw, ph)


def still(text: str, region: str, width: int = 960, height: int = 540, seed: int = 0) -> np.ndarray:
    """One frame with a car parked in the middle, its plate reading ``text``."""
    rng = np.random.default_rng(seed)
    bg = scene(width, height, rng)
    car_h = int(height * 0.38)
    plate = clean_plate(text, region, max(24, int(car_h * (0.22 if region == "us" else 0.15))), seed)
    return draw_car(bg, plate, (40, 60, 170), (width - int(width * 0.42)) // 2)[0]


def render(out: Path, plates: list[tuple[str, str]], width: int = 960, height: int = 540, fps: int = 10,
           seconds_per_car: float = 3.0, gap_s: float = 1.0, seed: int = 0) -> int:
    """Write the video; returns the number of frames."""
    rng = np.random.default_rng(seed)
    bg = scene(width, height, rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if out.suffix == ".mp4" else "MJPG"))
    vw = cv2.VideoWriter(str(out), fourcc, fps, (width, height))
    if not vw.isOpened():
        raise RuntimeError(f"cannot write video {out}")
    n = 0
    for k, (text, region) in enumerate(plates):
        car_w, car_h = int(width * 0.42), int(height * 0.38)
        plate = clean_plate(text, region, max(24, int(car_h * (0.22 if region == "us" else 0.15))), seed + k)
        color = tuple(int(c) for c in rng.integers(30, 220, 3))
        frames = int(seconds_per_car * fps)
        for i in range(frames):
            u = i / max(frames - 1, 1)
            # ease in/out so the car lingers in the middle, like one stopping at a gate
            pos = 0.5 - 0.5 * np.cos(np.pi * u)
            f = draw_car(bg, plate, color, int(-car_w + pos * (width + car_w)))[0]
            vw.write(f)
            n += 1
        for _ in range(int(gap_s * fps)):
            vw.write(bg)
            n += 1
    vw.release()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--plates", default="RK115AN:eu,PJC4903:br,7ABC123:us",
                    help="comma-separated TEXT:REGION (eu, br, us)")
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=540)
    ap.add_argument("--fps", type=int, default=10)
    args = ap.parse_args()
    plates = [tuple(p.split(":")) for p in args.plates.split(",")]
    n = render(args.out, plates, args.width, args.height, args.fps)  # type: ignore[arg-type]
    print(f"wrote {n} frames to {args.out}")


if __name__ == "__main__":
    main()
