"""Videos made from real car photos, with their truth: which car is in view when.

Each photo (one annotated plate, ``frames.csv``: file,x,y,w,h,text,region) becomes a car that
slides across a static 1280x720 road scene: an empty stretch first, then the photo, cut to a
window around its plate, enters at one edge and leaves at the other at constant speed, with
horizontal motion blur. Directions alternate; plate scale and blur cycle over the lists given,
so every car of a region sees each setting in turn. Written with OpenCV (mp4v by default: a
compressed stream, as from a camera).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from tools import make_demo_video

W, H = 1280, 720
CROP_MARGIN = 0.08  # the labelled crops are the box plus 8 % of its width/height per side
MIN_PLATE_W = 80  # a camera set up for plates sees them at least this wide; smaller photos are not enlarged
MAX_PLATE_W = 360
MAX_WINDOW = (880, 600)  # the "car": the photo cut around its plate, at most this big in the scene


@dataclass(frozen=True)
class Car:
    """One annotated photo: the plate box is in the photo's own pixels."""

    file: str
    box: tuple[int, int, int, int]
    text: str
    region: str


@dataclass(frozen=True)
class Pass:
    """One car's pass in a video; times in seconds of video from its first frame.

    ``enter``/``leave`` span the frames where any of the car is in view, ``plate_from``/
    ``plate_to`` those where the whole plate is."""

    car: Car
    scale: float
    blur_px: int
    direction: int
    enter: float
    leave: float
    plate_from: float
    plate_to: float
    plate_w: int

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("car"))
        return d


def load_cars(csv_path: Path) -> list[Car]:
    """Rows of ``frames.csv``.

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: a row lacks one of the columns file,x,y,w,h,text,region.
    """
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no such frames.csv (file,x,y,w,h,text,region)")
    with open(csv_path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cars = []
    for i, r in enumerate(rows, start=2):
        try:
            cars.append(Car(r["file"], (int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])), r["text"], r["region"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{csv_path}:{i}: need file,x,y,w,h,text,region ({exc})") from None
    return cars


def plate_crop(photo: npt.NDArray[np.uint8], box: tuple[int, int, int, int],
               margin: float = CROP_MARGIN) -> npt.NDArray[np.uint8]:
    """The box plus ``margin`` of its width/height per side, clipped to the photo: how the
    labelled crops of the dev set were cut."""
    x, y, w, h = box
    mx, my = int(round(w * margin)), int(round(h * margin))
    ih, iw = photo.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(iw, x + w + mx), min(ih, y + h + my)
    return photo[y0:y1, x0:x1]


def effective_scale(plate_w: int, scale: float) -> float:
    """``scale`` kept within what a plate camera sees: the plate at least ``MIN_PLATE_W`` wide
    (never enlarging a photo beyond its own pixels to get there) and at most ``MAX_PLATE_W``."""
    k = max(scale, min(1.0, MIN_PLATE_W / plate_w))
    return min(k, MAX_PLATE_W / plate_w)


def car_window(photo: npt.NDArray[np.uint8], box: tuple[int, int, int, int],
               scale: float) -> tuple[npt.NDArray[np.uint8], tuple[int, int, int, int]]:
    """The photo scaled and cut to at most ``MAX_WINDOW`` around its plate; returns the window
    and the plate box inside it."""
    x, y, w, h = box
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    sh, sw = small.shape[:2]
    px, py, pw, ph = int(round(x * scale)), int(round(y * scale)), int(round(w * scale)), int(round(h * scale))
    ww, wh = min(sw, MAX_WINDOW[0]), min(sh, MAX_WINDOW[1])
    # centre the plate where the photo allows; keep the window inside the photo
    x0 = int(np.clip(px + pw / 2 - ww / 2, 0, sw - ww))
    y0 = int(np.clip(py + ph / 2 - wh * 0.6, 0, sh - wh))
    return small[y0:y0 + wh, x0:x0 + ww], (px - x0, py - y0, pw, ph)


def motion_blur(img: npt.NDArray[np.uint8], px: int) -> npt.NDArray[np.uint8]:
    """Horizontal box blur of ``px`` pixels: the smear of a car moving during the exposure."""
    if px <= 1:
        return img
    k = np.full((1, px), 1.0 / px, np.float32)
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REPLICATE)


def render(out: Path, cars: list[Car], photos_dir: Path, fps: float = 10.0, pass_s: float = 3.0, gap_s: float = 1.0,
           scales: tuple[float, ...] = (1.0, 0.75, 0.55), blurs: tuple[int, ...] = (0, 2, 4), seed: int = 0,
           fourcc: str = "mp4v", first: int = 0) -> list[Pass]:
    """Write one video of ``cars`` passing in turn; returns each pass with its times.

    ``first`` is the index of the first car in the whole run, so the scale/blur/direction cycles
    do not restart in every video of a run.

    Raises:
        FileNotFoundError: a photo cannot be read (named).
        RuntimeError: OpenCV cannot write ``out`` with ``fourcc``.
    """
    rng = np.random.default_rng(seed)
    bg = make_demo_video.scene(W, H, rng)
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    if not vw.isOpened():
        raise RuntimeError(f"cannot write {out} with fourcc {fourcc}")
    passes: list[Pass] = []
    n = 0
    try:
        for k, car in enumerate(cars, start=first):
            photo = cv2.imread(str(photos_dir / car.file), cv2.IMREAD_COLOR)
            if photo is None:
                raise FileNotFoundError(f"{photos_dir / car.file}: cannot read the photo")
            for _ in range(int(round(gap_s * fps))):
                vw.write(bg)
                n += 1
            scale = effective_scale(car.box[2], scales[k % len(scales)])
            blur = blurs[(k // len(scales)) % len(blurs)]  # every scale meets every blur
            direction = 1 if k % 2 == 0 else -1
            win, (bx, by, bw, bh) = car_window(photo, car.box, scale)
            win = motion_blur(win, blur)
            wh, ww = win.shape[:2]
            top = int(np.clip(H * 0.62 - by - bh / 2, 0, H - wh))
            frames = max(2, int(round(pass_s * fps)))
            enter = leave = plate_from = plate_to = None
            for i in range(frames):
                u = i / (frames - 1)
                left = int(round(-ww + u * (W + ww))) if direction > 0 else int(round(W - u * (W + ww)))
                f = bg.copy()
                x0, x1 = max(left, 0), min(left + ww, W)
                if x1 > x0:
                    f[top:top + wh, x0:x1] = win[:, x0 - left:x1 - left]
                    t = n / fps
                    enter = t if enter is None else enter
                    leave = t
                    if left + bx >= 0 and left + bx + bw <= W:
                        plate_from = t if plate_from is None else plate_from
                        plate_to = t
                vw.write(f)
                n += 1
            if enter is None or plate_from is None:
                raise RuntimeError(f"{car.file}: the plate never came fully into view (pass too short?)")
            passes.append(Pass(car, round(scale, 3), blur, direction, enter, leave, plate_from, plate_to, bw))
        for _ in range(int(round(gap_s * fps))):  # let the last car's track end before the file does
            vw.write(bg)
            n += 1
    finally:
        vw.release()
    return passes
