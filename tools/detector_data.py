"""Training samples for the plate detector: grey canvases with every plate's four corners.

Four kinds of sample, mixed per draw (``MIX``):

- ``frame``: a real dev frame (train split by plate, as the recogniser's crops), scaled so its
  plate is 10-180 px wide, placed at random in the canvas;
- ``openimages``: a car photo from many countries (train split by a hash of the file), boxes only;
- ``composite``: a no-plate scene as background with 1-4 plates pasted in under perspective
  (real crops of the train split, and plates rendered by ``synth_plates``), plus occluders and
  loose text that is not a plate (signs, van lettering, stickers);
- ``negative``: a no-plate scene alone, sometimes with loose text.

Then the camera: motion blur up to 8 px, defocus, low resolution upscaled, noise, exposure,
night/IR looks and JPEG. Everything is numpy/OpenCV on grey images (a few ms a sample); the
rendered plates come from a bank that a slow Pillow renderer refreshes a little at a time.

The data is read where it lies (``../shared/data``, or the folder ``EDGE_OCR_DATA`` names: the
copies ``tools/gpu_session.sh pack`` carries to a GPU machine); nothing is copied.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tools.evaluate import split_of

DATA = Path(os.environ.get("EDGE_OCR_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
MIX = {"frame": 0.28, "openimages": 0.17, "composite": 0.3, "negative": 0.25}
MIN_PLATE_W = 8.0  # px at the canvas: narrower plates are unreadable; the loss ignores them
# crops of these sources are the annotated box plus 8 % a side; the others are the plate itself
_MARGIN_SOURCES = {"openalpr-endtoend", "openalpr-td", "openalpr-td-2row"}
_CROP_MARGIN = 0.08


def hash_split(name: str, val_every: int) -> str:
    """'val' for one file in ``val_every`` (by a hash of its name), else 'train'."""
    return "val" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % val_every == 0 else "train"


def frame_split(row: dict) -> str:
    return split_of(row["text"], row["region"])


def read_grey(path: Path) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return None if img is None else np.asarray(img, np.uint8)


def box_quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)


@dataclass
class Photo:
    """A photo with plate corners (k, 4, 2) in its pixels; ``ignore`` marks boxes too small to
    learn; ``region`` is the plate's where the labels give it."""

    image: np.ndarray
    quads: np.ndarray
    ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    region: str = ""


def load_frames(root: Path, split: str) -> list[Photo]:
    rows = list(csv.DictReader((root / "frames.csv").open(encoding="utf-8")))
    out = []
    for r in rows:
        if frame_split(r) != split:
            continue
        img = read_grey(root / r["file"])
        if img is not None:
            q = box_quad(*(float(r[k]) for k in "xywh"))[None]
            out.append(Photo(img, q, np.zeros(1, bool), r["region"]))
    return out


def load_openimages(root: Path, split: str) -> list[Photo]:
    boxes: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in csv.DictReader((root / "boxes.csv").open(encoding="utf-8")):
        boxes[r["file"]].append(box_quad(*(float(r[k]) for k in "xywh")))
    out = []
    for name, qs in sorted(boxes.items()):
        if hash_split(name, 5) != split:
            continue
        img = read_grey(root / name)
        if img is not None:
            q = np.stack(qs)
            # boxes a few px wide in the 416 px export: a plate no one can read, neither found nor punished
            w = q[:, 1, 0] - q[:, 0, 0]
            out.append(Photo(img, q, w < 12))
    return out


def load_scenes(root: Path, split: str, limit: int | None = None) -> list[np.ndarray]:
    names = sorted(p.name for p in root.glob("*.jpg"))
    names = [n for n in names if hash_split(n, 8) == split][:limit]
    return [img for n in names if (img := read_grey(root / n)) is not None]


def load_crops(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train-split real crops as (grey crop, the plate's quad in it)."""
    out = []
    for r in csv.DictReader((root / "labels.csv").open(encoding="utf-8")):
        if split_of(r["text"], r["region"]) != "train":
            continue
        img = read_grey(root / r["file"])
        if img is None:
            continue
        h, w = img.shape
        if r["source"] in _MARGIN_SOURCES:
            mx, my = w * _CROP_MARGIN / (1 + 2 * _CROP_MARGIN), h * _CROP_MARGIN / (1 + 2 * _CROP_MARGIN)
            q = box_quad(mx, my, w - 2 * mx, h - 2 * my)
        else:
            q = box_quad(0, 0, w, h)
        out.append((img, q))
    return out


class PlateBank:
    """Rendered plates (grey, whole plate) that a slow renderer refreshes a few at a time."""

    def __init__(self, size: int, seed: int, height: int = 72) -> None:
        self.height = height
        self.rng = np.random.default_rng(seed)
        self.plates = [self._render() for _ in range(size)]

    def _render(self) -> np.ndarray:
        from tools.synth_plates import RENDERERS
        from tools.synth_tworow import RENDERERS_2ROW

        rng = self.rng
        if rng.random() < 0.12:
            pil, _ = RENDERERS_2ROW[str(rng.choice(["eu", "us", "br", "cn"]))](rng)
        else:
            pil, _ = RENDERERS[str(rng.choice(["us", "us", "eu", "eu", "br", "cn", "xx", "xx"]))](rng)
        img = cv2.cvtColor(np.asarray(pil.convert("RGB")), cv2.COLOR_RGB2GRAY)
        w = max(8, round(img.shape[1] * self.height / img.shape[0]))
        return np.asarray(cv2.resize(img, (w, self.height), interpolation=cv2.INTER_AREA), np.uint8)

    def pick(self, refresh: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        i = int(self.rng.integers(len(self.plates)))
        if self.rng.random() < refresh:
            self.plates[i] = self._render()
        p = self.plates[i]
        return p, box_quad(0, 0, p.shape[1], p.shape[0])


def _place(rng: np.random.Generator, photo: Photo, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp a photo into a size x size canvas so one of its plates is 10-180 px wide and in view."""
    k = int(rng.integers(len(photo.quads)))
    q = photo.quads[k]
    pw = float(np.linalg.norm(q[1] - q[0]))
    target = math.exp(rng.uniform(math.log(10), math.log(180)))
    s = target / max(pw, 1.0)
    s = min(s, 4.0)
    qc = q.mean(0)
    m = cv2.getRotationMatrix2D((float(qc[0]), float(qc[1])), rng.normal(0, 4), s)
    # the plate's centre lands anywhere a plate of this width fits
    half = min(target / 2 + 2, size / 2 - 1)
    m[:, 2] += rng.uniform(half, size - half, 2) - qc
    img = cv2.warpAffine(photo.image, m, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT101 if rng.random() < 0.5 else cv2.BORDER_CONSTANT,
                         borderValue=int(rng.integers(0, 255)))
    quads = photo.quads @ m[:, :2].T + m[:, 2]
    return np.asarray(img, np.uint8), quads.astype(np.float32)


def _background(rng: np.random.Generator, scenes: list[np.ndarray], size: int) -> np.ndarray:
    sc = scenes[int(rng.integers(len(scenes)))]
    h, w = sc.shape
    s = max(size / w, size / h) * rng.uniform(1.0, 2.5)
    x0 = rng.uniform(0, max(w * s - size, 0))
    y0 = rng.uniform(0, max(h * s - size, 0))
    m = np.array([[s, 0, -x0], [0, s, -y0]], np.float32)
    if rng.random() < 0.5:
        m[0] *= -1
        m[0, 2] += size - 1
    return np.asarray(cv2.warpAffine(sc, m, (size, size), borderMode=cv2.BORDER_REFLECT101), np.uint8)


def _paste(rng: np.random.Generator, canvas: np.ndarray, plate: np.ndarray, inner: np.ndarray,
           taken: list[np.ndarray]) -> np.ndarray | None:
    """Paste ``plate`` under a random perspective, clear of the ``taken`` plates; returns the
    plate's quad in the canvas, or None where it did not fit."""
    size = canvas.shape[0]
    ph, pw = plate.shape
    aspect = pw / ph * rng.uniform(0.8, 1.2)
    w = math.exp(rng.uniform(math.log(10), math.log(min(200, size * 0.8))))
    h = w / aspect
    if h > size * 0.6:
        return None
    cx, cy = rng.uniform(w / 2, size - w / 2), rng.uniform(h / 2, size - h / 2)
    ang = math.radians(rng.normal(0, 6) if rng.random() < 0.8 else rng.uniform(-25, 25))
    ca, sa = math.cos(ang), math.sin(ang)
    base = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]], np.float32)
    # perspective: one side shorter (a plate seen from the side or from above)
    base += rng.normal(0, 0.06, (4, 2)).astype(np.float32) * np.float32(h)
    if rng.random() < 0.4:
        # one side farther away: the left (corners 0, 3) or the right (1, 2) edge shorter
        base[[0, 3] if rng.random() < 0.5 else [1, 2], 1] *= 1 - rng.uniform(0, 0.25)
    rot = np.array([[ca, -sa], [sa, ca]], np.float32)
    dst = base @ rot.T + np.array([cx, cy], np.float32)
    if any(_overlap(dst, t) for t in taken):
        return None
    src = box_quad(0, 0, pw, ph)
    hm = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    gain = rng.uniform(0.45, 1.25)
    warped = cv2.warpPerspective(np.clip(plate.astype(np.float32) * gain + rng.normal(0, 12), 0, 255),
                                 hm, (size, size), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones((ph, pw), np.float32), hm, (size, size), flags=cv2.INTER_LINEAR)
    out = canvas.astype(np.float32) * (1 - mask) + warped * mask
    canvas[:] = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.perspectiveTransform(inner[None].astype(np.float32), hm)[0]


def _loose_text(rng: np.random.Generator, canvas: np.ndarray, near: np.ndarray | None = None) -> None:
    """Text that is not a plate: lettering, signs, dealer lines (hard negatives)."""
    size = canvas.shape[0]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .-"
    n = int(rng.integers(3, 16))
    text = "".join(rng.choice(list(alphabet), n))
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                           cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN]))
    scale = rng.uniform(0.25, 1.4)
    thick = int(rng.integers(1, 3))
    if near is not None:  # a dealer line or a sticker just above or below a plate
        x, y = near[:, 0].min(), near[:, 1].max() + rng.uniform(4, 16) if rng.random() < 0.5 else near[:, 1].min() - 3
        scale = max(0.25, (near[:, 1].max() - near[:, 1].min()) / 60)
    else:
        x, y = rng.uniform(0, size * 0.8), rng.uniform(10, size)
    colour = int(rng.integers(0, 60)) if rng.random() < 0.6 else int(rng.integers(190, 256))
    cv2.putText(canvas, text, (int(x), int(y)), font, scale, colour, thick, cv2.LINE_AA)


def camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """What a camera and its codec do to the whole canvas."""
    f = img.astype(np.float32)
    size = img.shape[0]
    if rng.random() < 0.35:  # motion blur, up to 8 px
        n = int(rng.integers(2, 9))
        k = np.zeros((n, n), np.float32)
        k[n // 2, :] = 1.0 / n
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1.0), (n, n))
        f = cv2.filter2D(f, -1, k / max(float(k.sum()), 1e-6))
    elif rng.random() < 0.2:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.5, 1.6))
    if rng.random() < 0.25:  # low resolution upscaled
        s = rng.uniform(0.35, 0.8)
        small = cv2.resize(f, (max(8, int(size * s)), max(8, int(size * s))), interpolation=cv2.INTER_AREA)
        f = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    look = rng.random()
    if look < 0.12:  # night: dark, contrasty, noisy
        f = 255 * (f / 255) ** rng.uniform(1.5, 2.8) * rng.uniform(0.4, 0.9)
    elif look < 0.2:  # infrared: washed out, bright plates
        f = 255 * (f / 255) ** rng.uniform(0.4, 0.7)
    else:
        f = f * rng.uniform(0.6, 1.35) + rng.uniform(-40, 40)
    if rng.random() < 0.5:
        f = f + rng.normal(0, rng.uniform(2, 14), f.shape).astype(np.float32)
    out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(12, 90))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return np.asarray(out, np.uint8)


class DetectorData:
    """Draws training samples: ``sample(rng)`` -> (grey canvas, quads (k,4,2), ignore (k,))."""

    def __init__(self, size: int = 256, seed: int = 0, data: Path = DATA, bank: int = 800) -> None:
        self.size = size
        real = data / "plates-real-dev"
        self.frames = load_frames(real / "frames", "train")
        self.openimages = load_openimages(data / "plates-openimages-dev", "train")
        self.scenes = load_scenes(data / "scenes-neg", "train")
        self.crops = load_crops(real / "crops")
        self.bank = PlateBank(bank, seed)

    def summary(self) -> str:
        return (f"{len(self.frames)} frames, {len(self.openimages)} openimages photos, {len(self.scenes)} scenes, "
                f"{len(self.crops)} real crops, {len(self.bank.plates)} rendered plates in the bank")

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kind = rng.choice(list(MIX), p=list(MIX.values()))
        if kind == "frame" or kind == "openimages":
            src = self.frames if kind == "frame" else self.openimages
            ph = src[int(rng.integers(len(src)))]
            img, quads = _place(rng, ph, self.size)
            ignore = ph.ignore.copy()
        else:
            img = _background(rng, self.scenes, self.size)
            quads_l = []
            if kind == "composite":
                for _ in range(int(rng.choice([1, 1, 1, 2, 2, 3, 4]))):
                    plate, inner = (self.crops[int(rng.integers(len(self.crops)))] if rng.random() < 0.45
                                    else self.bank.pick())
                    q = _paste(rng, img, plate, inner, quads_l)
                    if q is not None:
                        quads_l.append(q)
                        if rng.random() < 0.2:
                            _loose_text(rng, img, q)
                        if rng.random() < 0.12:
                            _occlude(rng, img, q)
            for _ in range(int(rng.choice([0, 0, 1, 2, 3]))):
                _loose_text(rng, img)
            quads = np.array(quads_l, np.float32).reshape(-1, 4, 2)
            ignore = np.zeros(len(quads), bool)
        img = camera(rng, img)
        w = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1) if len(quads) else np.zeros(0)
        c = quads.mean(1) if len(quads) else np.zeros((0, 2))
        inside = (c[:, 0] >= 0) & (c[:, 0] < self.size) & (c[:, 1] >= 0) & (c[:, 1] < self.size)
        ignore = ignore | (w < MIN_PLATE_W) | ~_mostly_inside(quads, self.size)
        keep = inside
        return img, quads[keep], ignore[keep]


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    lo, hi = np.maximum(a.min(0), b.min(0)), np.minimum(a.max(0), b.max(0))
    return bool(np.all(hi > lo))


def _mostly_inside(quads: np.ndarray, size: int) -> np.ndarray:
    """A plate cut by the canvas edge is neither a plate to find nor a background to refuse."""
    if not len(quads):
        return np.zeros(0, bool)
    lo = quads.min(1)
    hi = quads.max(1)
    area = np.prod(np.maximum(hi - lo, 1e-3), 1)
    clo, chi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    inter = np.prod(np.maximum(chi - clo, 0), 1)
    return inter / area >= 0.85


def _occlude(rng: np.random.Generator, img: np.ndarray, q: np.ndarray) -> None:
    """A tow bar, a bike rack or a leg in front of part of the plate."""
    lo, hi = q.min(0), q.max(0)
    w, h = hi - lo
    x = lo[0] + rng.uniform(0, w * 0.8)
    ow = w * rng.uniform(0.05, 0.25)
    cv2.rectangle(img, (int(x), int(lo[1] - h * 0.3)), (int(x + ow), int(hi[1] + h * 0.3)),
                  int(rng.integers(0, 256)), -1)
