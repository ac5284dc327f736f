"""Fast synthetic plates: every glyph of every font rendered once into an atlas, plates composed
from it with numpy and OpenCV (issue 25: data at the scale the network needs).

``synth_plates`` draws each plate with Pillow and runs a large camera model on it: about 44-100
plates a second per core, so a GPU run sees a few hundred thousand distinct plates. Here a font
is rasterised once per process (``atlas``: each glyph's grey mask at a fixed size, its offset
from the ascender line and its advance); a plate is a small float canvas (about 60 px high, big
enough for crops that end 12-110 px high) on which masks are resized and blended. The text comes
from ``synth_plates``' own generators (``us_text``, ``eu_text``, ``br_text``, ``cn_text``,
``latin_text``), so the layouts and the label convention are the same; ``lookalike`` then
swaps characters for the look-alikes the model confuses (5/S, 1/I/T, 8/B, 0/D/Q/O, 2/Z, V/Y/W,
M/W) in any position, keeping each position's class (letter or digit).

The camera (``camera``): perspective and rotation, loose and tight boxes (cutting into the first
or last character), down-scaling to a 12-25 px plate and back up, defocus and motion blur, light,
night/IR grey (low contrast, sometimes inverted), noise and JPEG. ``degrade`` (0-1) scales how
hard: 0.2 gives clean-ish plates; the training stream's 0.75 is about as hard for the shipped
model as recipe 2's Pillow camera (it read 67-75 % of 300 plates at 0.8-0.7, 72 % of recipe 2's,
without look-alikes); 1 is harder still.

Two-row plates (``RENDERERS_2ROW``: EU square, US and Brazilian motorcycle, Chinese yellow rear,
with ``synth_tworow``'s row texts) are composed the same way.

``sample(seed, index)`` is deterministic and returns what ``synth_mix.sample`` does (BGR crop,
label, region), so ``pack_samples`` and the stream workers take it as it is; training uses it as
``synth_mix`` recipe 3 (recipe 2's mix of regions, one- and two-row, all from here).

    python -m tools.synth_mix OUT_DIR --count 200 --seed 1 --recipe 3    # PNGs + labels.csv
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge_ocr.capture.grey import to_grey
from edge_ocr.read.tworow import find_rows
from tools.synth_plates import (
    BR_CITIES,
    DIGITS,
    EU_CODES,
    LETTERS,
    PROVINCES,
    SPECIALS,
    US_SLOGANS,
    US_STATES,
    _pick,
    _rand_chars,
    available_fonts,
    br_text,
    cn_text,
    eu_text,
    latin_text,
    us_text,
)
from tools.synth_tworow import _eu_rows

ATLAS_SIZE = 64  # font size (px) glyphs are rasterised at; plates are composed smaller than this
_SMALL_CHARS = LETTERS + string.ascii_lowercase + DIGITS + " -.,'"
# look-alike groups the model confuses (issue 25), split by class so a swap keeps the layout valid
LOOKALIKE_LETTERS = "SITBDQOZVYWM"
LOOKALIKE_DIGITS = "51802"
# letters a region's serials never print: US writes O as 0, Chinese serials skip I and O
_NO_LETTERS = {"us": "O", "cn": "IO"}


@dataclass
class Font:
    """One font's glyphs: ``masks[c]`` the ink (uint8, cropped to its bounding box), ``tops[c]``
    the box's offset below the ascender line, ``advance[c]`` the pen advance; ``cap`` the ink
    height of ``H`` (plate characters are scaled so a capital is the character height)."""

    path: str
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    tops: dict[str, int] = field(default_factory=dict)
    advance: dict[str, float] = field(default_factory=dict)
    line: int = ATLAS_SIZE
    cap: int = ATLAS_SIZE


@functools.cache
def atlas(path: str, chars: str = _SMALL_CHARS) -> Font:
    """Rasterise ``chars`` of the font at ``path`` once per process."""
    f = ImageFont.truetype(path, ATLAS_SIZE)
    ascent, descent = f.getmetrics()
    font = Font(path, line=ascent + descent)
    for ch in chars:
        l, t, r, b = f.getbbox(ch)
        font.advance[ch] = f.getlength(ch)
        if r <= l or b <= t:  # space: advance only
            font.masks[ch] = np.zeros((1, max(1, int(font.advance[ch]))), np.uint8)
            font.tops[ch] = 0
            continue
        img = Image.new("L", (r - l + 2, b - t + 2), 0)
        ImageDraw.Draw(img).text((1 - l, 1 - t), ch, font=f, fill=255)
        m = np.asarray(img)
        ys, xs = np.nonzero(m)
        font.masks[ch] = np.ascontiguousarray(m[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])
        font.tops[ch] = t - 1 + int(ys.min())
    if "H" in font.masks:
        font.cap = font.masks["H"].shape[0]
    return font


def latin_fonts() -> list[Font]:
    return [atlas(p) for p in available_fonts()[0]]


def cjk_fonts() -> list[Font]:
    return [atlas(p, PROVINCES + SPECIALS) for p in available_fonts()[1]]


@functools.lru_cache(maxsize=2048)
def text_line(path: str, text: str) -> np.ndarray:
    """A line of small text (state names, slogans, country codes) as one float32 mask, glyphs on a
    common baseline, ATLAS_SIZE-scale; cached: these words come from short lists."""
    font = atlas(path)
    text = "".join(c for c in text if c in font.masks) or "-"
    w = int(sum(font.advance[c] for c in text)) + 2
    out = np.zeros((font.line + 2, w), np.float32)
    x = 0.0
    for c in text:
        m = font.masks[c]
        y0, x0 = max(0, font.tops[c]), int(x)
        hh, ww = min(m.shape[0], out.shape[0] - y0), min(m.shape[1], w - x0)
        np.maximum(out[y0: y0 + hh, x0: x0 + ww], m[:hh, :ww] / np.float32(255), out=out[y0: y0 + hh, x0: x0 + ww])
        x += font.advance[c]
    return out


# ----------------------------------------------------------------------------- text

def lookalike(rng: np.random.Generator, groups: list[str], rate: float, region: str) -> list[str]:
    """Swap each character with probability ``rate`` for a look-alike of the same class (a letter
    for a letter, a digit for a digit), so the layout stays valid and every position sees them."""
    if rate <= 0:
        return groups
    letters = "".join(c for c in LOOKALIKE_LETTERS if c not in _NO_LETTERS.get(region, ""))
    out = []
    for g in groups:
        chars = list(g)
        hit = rng.random(len(chars)) < rate
        for k in np.flatnonzero(hit):
            c = chars[k]
            if c.isdigit():
                chars[k] = _pick(rng, LOOKALIKE_DIGITS)
            elif c in LETTERS:
                chars[k] = _pick(rng, letters)
        out.append("".join(chars))
    return out


# ----------------------------------------------------------------------------- composing

@dataclass
class Layout:
    """What a plate looks like, in plate-height units where it says so. Colours are BGR."""

    aspect: float
    ground: tuple
    ink: tuple
    sep: str = " "
    band: tuple | None = None  # colour of a band on the left
    band_w: float = 0.0  # share of the width
    band_text: str = ""
    band_ink: tuple = (255, 255, 255)
    top: str = ""  # small text above the characters
    bottom: str = ""
    small_ink: tuple | None = None
    top_band: tuple | None = None  # a coloured strip along the top (Mercosul)
    border: bool = True
    char_h: tuple = (0.6, 0.75)  # character height, share of the free height


def _lum(colour) -> float:
    """The grey a BGR colour turns into (OpenCV's BGR2GRAY weights). Plates are composed in grey:
    the network sees grey (``model_pixels``), blending commutes with the conversion, and one
    channel costs a third of three."""
    b, g, r = colour
    return 0.114 * float(b) + 0.587 * float(g) + 0.299 * float(r)


def _canvas(rng: np.random.Generator, h: int, w: int, ground: tuple) -> np.ndarray:
    img = np.full((h, w), _lum(ground), np.float32)
    if rng.random() < 0.5:  # a gradient of light or dirt across the plate
        delta = np.float32(rng.uniform(-40, 40))  # what a colour gradient of ±60 a channel (synth_plates) is in grey
        if rng.random() < 0.6:
            img += np.linspace(0, delta, h, dtype=np.float32)[:, None]
        else:
            img += np.linspace(0, delta, w, dtype=np.float32)[None, :]
    return img


def _paste(dst: np.ndarray, src: np.ndarray, y: int, x: int, op) -> None:
    """``op(dst part, src part)`` in place where ``src`` placed at (y, x) overlaps ``dst``."""
    h, w = src.shape[:2]
    y0, x0, y1, x1 = max(0, y), max(0, x), min(dst.shape[0], y + h), min(dst.shape[1], x + w)
    if y1 > y0 and x1 > x0:
        op(dst[y0:y1, x0:x1], src[y0 - y: y1 - y, x0 - x: x1 - x])


def _blend(img: np.ndarray, alpha: np.ndarray, colour: tuple, y: int, x: int) -> None:
    """Paint ``colour`` (BGR) through ``alpha`` (float 0-1) at (y, x), clipped to the grey image."""
    grey = np.float32(_lum(colour))

    def paint(roi, a):
        roi += (grey - roi) * a

    _paste(img, alpha, y, x, paint)


def _small_text(rng, img, font: Font, text: str, colour: tuple, cx: float, cy: float, height: float,
                max_w: float) -> None:
    line = text_line(font.path, text)
    s = height / line.shape[0]
    w = int(min(max_w, line.shape[1] * s * rng.uniform(0.9, 1.1)))
    h = max(2, int(round(height)))
    if w < 2:
        return
    _blend(img, cv2.resize(line, (w, h), interpolation=cv2.INTER_AREA), colour, int(cy - h / 2), int(cx - w / 2))


def _glyph(rng, font: Font, ch: str, char_h: float, squeeze: float) -> np.ndarray:
    """The character's mask (float 0-1) at ``char_h``, width from the font times ``squeeze``,
    with a little per-glyph jitter of size, width and stroke weight."""
    m = font.masks[ch]
    h = max(3, int(round(char_h * (m.shape[0] / font.cap if ch not in LETTERS + DIGITS else 1.0)
                         * rng.uniform(0.95, 1.04))))
    w = max(1, int(round(m.shape[1] * char_h / font.cap * squeeze * rng.uniform(0.92, 1.08))))
    g = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA if h < m.shape[0] else cv2.INTER_LINEAR)
    r = rng.random()
    if r < 0.12 and min(g.shape) > 4:  # bolder or thinner strokes than the font's
        g = cv2.dilate(g, np.ones((2, 2), np.uint8))
    elif r < 0.2 and min(g.shape) > 4:
        g = cv2.erode(g, np.ones((2, 1), np.uint8))
    return g.astype(np.float32) * np.float32(1 / 255)


def _characters(rng, img, groups: list[str], fonts: list[Font], cjk: Font | None, ink: tuple, x0: float,
                x1: float, cy: float, char_h: float, sep: str) -> None:
    """The plate's characters, centred between x0 and x1, squeezed to fit; separators between
    the groups ("-", "·", " ", "emblem" or none)."""
    font = _pick(rng, fonts)
    spacing = char_h * rng.uniform(0.03, 0.15)
    items = []  # (mask or None for a separator, width)
    for gi, g in enumerate(groups):
        for c in g:
            items.append(_glyph(rng, cjk if (cjk is not None and ord(c) > 127) else font, c, char_h, 1.0))
        if gi < len(groups) - 1:
            items.append(None)
    gap = char_h * (0.45 if sep.strip() else 0.35) if sep else 0.0
    widths = [gap if m is None else m.shape[1] for m in items]
    total = sum(widths) + spacing * (len(items) - 1)
    scale = min(1.0, (x1 - x0) / max(total, 1.0))
    x = x0 + ((x1 - x0) - total * scale) / 2
    ink_alpha = np.zeros(img.shape[:2], np.float32)  # all characters, painted in one blend
    for m, w in zip(items, widths):
        if m is not None:
            if scale < 1.0:
                m = cv2.resize(m, (max(1, int(m.shape[1] * scale)), m.shape[0]), interpolation=cv2.INTER_AREA)
            _paste(ink_alpha, m, int(round(cy - m.shape[0] / 2 + rng.normal(0, 0.02) * char_h)), int(round(x)),
                   lambda d, s_: np.maximum(d, s_, out=d))
        elif sep.strip():
            sx, u = int(x + w * scale / 2), char_h
            if sep == "-":
                cv2.rectangle(ink_alpha, (int(sx - 0.12 * u), int(cy - 0.05 * u)),
                              (int(sx + 0.12 * u), int(cy + 0.05 * u)), 1.0, -1)
            elif sep == "·":
                cv2.circle(ink_alpha, (sx, int(cy)), max(1, int(0.06 * u)), 1.0, -1)
            else:  # emblem: a coloured seal between the groups
                cv2.ellipse(img, (sx, int(cy)), (max(1, int(0.2 * u)), max(1, int(0.28 * u))), 0, 0, 360,
                            float(rng.integers(0, 255)), -1)
        x += (w + spacing) * scale
    _blend(img, ink_alpha, ink, 0, 0)


def compose(rng: np.random.Generator, groups: list[str], lay: Layout, height: int = 60,
            cjk: bool = False, lower: list[str] | None = None, upper_scale: float = 1.0) -> np.ndarray:
    """A plate (grey float32, ``height`` px high) of ``groups`` laid out as ``lay`` says; with
    ``lower`` a two-row plate: ``groups`` on top (``upper_scale`` times the height of the lower
    row's characters), ``lower`` below, ``lay.char_h`` then the share of the free height per row."""
    fonts = latin_fonts()
    H = height
    W = max(H, int(round(H * lay.aspect)))
    img = _canvas(rng, H, W, lay.ground)
    small_font = _pick(rng, fonts)
    small_ink = lay.small_ink or lay.ink
    top = 0.0
    if lay.top_band is not None:
        cv2.rectangle(img, (0, 0), (W, int(0.22 * H)), _lum(lay.top_band), -1)
        top = 0.22
    x0, x1 = 0.04 * W, 0.96 * W
    if lay.band is not None:
        bw = int(W * lay.band_w)
        cv2.rectangle(img, (0, 0), (bw, H), _lum(lay.band), -1)
        if lay.band_text:
            _small_text(rng, img, small_font, lay.band_text, lay.band_ink, bw / 2, 0.72 * H, 0.22 * H, 0.9 * bw)
        x0 = bw + 0.02 * W
    if lay.top:
        _small_text(rng, img, small_font, lay.top, (255, 255, 255) if lay.top_band else small_ink,
                    (x0 + x1) / 2, H * (0.11 if lay.top_band else 0.12), 0.15 * H, x1 - x0)
        top = max(top, 0.2)
    bottom = 0.0
    if lay.bottom:
        _small_text(rng, img, small_font, lay.bottom, small_ink, (x0 + x1) / 2, 0.89 * H, 0.14 * H, x1 - x0)
        bottom = 0.2
    free = (1 - top - bottom) * H
    char_h = free * rng.uniform(*lay.char_h)
    cjk_font = _pick(rng, cjk_fonts()) if cjk else None
    if lower is None:
        _characters(rng, img, groups, fonts, cjk_font, lay.ink, x0, x1, top * H + free / 2, char_h, lay.sep)
    else:
        _characters(rng, img, groups, fonts, cjk_font, lay.ink, x0, x1, top * H + free * 0.27, char_h * upper_scale,
                    lay.sep)
        _characters(rng, img, lower, fonts, cjk_font, lay.ink, x0, x1, top * H + free * 0.73, char_h, "")
    if lay.border:
        cv2.rectangle(img, (0, 0), (W - 1, H - 1), _lum(lay.ink), int(rng.integers(1, 4)))
    if rng.random() < 0.4:  # bolts
        r = max(1, int(0.04 * H))
        for bx in (0.2 * W, 0.8 * W):
            cv2.circle(img, (int(bx), int(0.1 * H)), r, 120.0, -1)
    return img


# ----------------------------------------------------------------------------- regions

_DARK = [(20, 20, 20), (120, 30, 30), (20, 20, 140), (30, 80, 20), (60, 10, 10)]  # BGR


def _rgb(c: tuple) -> tuple:
    return (float(c[2]), float(c[1]), float(c[0]))


def render_us(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    base = _rgb(_pick(rng, [(245, 245, 245), (235, 235, 225), (250, 250, 235), (220, 230, 245), (240, 220, 200),
                            (205, 225, 240)]))
    state = _pick(rng, US_STATES)
    lay = Layout(2.0, base, _pick(rng, _DARK), sep=_pick(rng, [" ", " ", "-", "·", "emblem", ""]),
                 top=state.title() if rng.random() < 0.5 else state,
                 bottom=_pick(rng, US_SLOGANS) if rng.random() < 0.8 else "",
                 small_ink=tuple(float(c) for c in rng.integers(0, 200, 3)), border=rng.random() < 0.3,
                 char_h=(0.62, 0.8))
    groups = lookalike(rng, us_text(rng), rate, "us")
    return compose(rng, groups, lay, height=72), "".join(groups)


def render_eu(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    yellow = rng.random() < 0.12
    band = rng.random() < 0.92
    lay = Layout(520 / 110, (30, 210, 250) if yellow else (245, 245, 245), (15, 15, 15),
                 sep=_pick(rng, ["-", " ", "emblem", "emblem", "·", ""]), band=(160, 50, 0) if band else None,
                 band_w=rng.uniform(0.075, 0.095), band_text=_pick(rng, EU_CODES) if band else "",
                 char_h=(0.62, 0.76))
    groups = lookalike(rng, eu_text(rng), rate, "eu")
    return compose(rng, groups, lay, height=52), "".join(groups)


def render_br(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    mercosul = rng.random() < 0.4
    groups = lookalike(rng, br_text(rng, mercosul), rate, "br")
    if mercosul:
        lay = Layout(400 / 130, (245, 245, 245), (15, 15, 15), sep="", top="BRASIL", top_band=(150, 60, 0),
                     char_h=(0.6, 0.78))
    else:
        grey = int(rng.integers(150, 215))
        lay = Layout(400 / 130, (grey - int(rng.integers(0, 25)), grey, grey), (15, 15, 15),
                     sep=_pick(rng, ["·", "-", " ", "·"]), top=_pick(rng, BR_CITIES), small_ink=(30, 30, 30),
                     char_h=(0.6, 0.78))
    return compose(rng, groups, lay, height=60), "".join(groups)


def render_cn(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    kind = _pick(rng, ["blue"] * 7 + ["green"] * 2 + ["yellow"])
    if kind == "blue":
        ground = (float(rng.integers(150, 230)), float(rng.integers(40, 100)), float(rng.integers(0, 40)))
        ink = (245, 245, 245)
    elif kind == "green":
        ground, ink = (float(rng.integers(140, 200)), 220.0, float(rng.integers(120, 200))), (15, 15, 15)
    else:
        ground, ink = (20, 190, 240), (15, 15, 15)
    prov, city, serial = cn_text(rng, kind)
    keep = 1 if kind == "green" else 0  # a green plate's serial starts with D or F (its layout)
    city, tail = lookalike(rng, [city, serial[keep:]], rate, "cn")
    serial = serial[:keep] + tail
    lay = Layout(440 / 140, ground, ink, sep="·", char_h=(0.62, 0.74))
    return compose(rng, [prov + city, serial], lay, height=56, cjk=True), prov + city + serial


_GROUNDS = [((245, 245, 245), (15, 15, 15)), ((40, 215, 250), (15, 15, 15)), ((20, 20, 20), (240, 240, 240)),
            ((160, 60, 30), (245, 245, 245)), ((30, 30, 170), (245, 245, 245)), ((60, 120, 40), (245, 245, 245)),
            ((195, 200, 200), (25, 25, 25)), ((245, 235, 230), (120, 40, 20)), ((245, 245, 245), (20, 20, 160))]


def render_latin(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    """A plate of no particular country (``synth_plates.render_latin``'s range): any aspect from
    2:1 to 5:1, either polarity, an optional band with a code, optional small text."""
    ground, ink = _pick(rng, _GROUNDS)
    band = rng.random() < 0.35
    lay = Layout(rng.uniform(2.0, 5.0), ground, ink, sep=_pick(rng, ["-", " ", "·", "", "emblem", " "]),
                 band=tuple(float(c) for c in rng.integers(0, 255, 3)) if band else None,
                 band_w=rng.uniform(0.06, 0.12), band_text=_rand_chars(rng, LETTERS, int(rng.integers(1, 4)))
                 if band and rng.random() < 0.6 else "",
                 top=_rand_chars(rng, LETTERS, int(rng.integers(4, 12))) if rng.random() < 0.3 else "",
                 bottom=_rand_chars(rng, LETTERS + " ", int(rng.integers(4, 14))) if rng.random() < 0.2 else "",
                 border=rng.random() < 0.6)
    groups = lookalike(rng, latin_text(rng), rate, "xx")
    return compose(rng, groups, lay, height=56), "".join(groups)


def render_eu2(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    """Square EU plate (``synth_tworow``'s countries and their rows): two rows of equal characters."""
    country = _pick(rng, ["DE", "AT", "CZ", "NL", "PL", "FR"])
    yellow = country == "NL" and rng.random() < 0.6
    band = not yellow and rng.random() < 0.85
    upper, lower = (lookalike(rng, g, rate, "eu") for g in _eu_rows(rng, country))
    lay = Layout(rng.uniform(1.2, 1.7), (30, 210, 250) if yellow else (245, 245, 245), (15, 15, 15),
                 sep=_pick(rng, ["-", " ", ""]), band=(160, 50, 0) if band else None, band_w=rng.uniform(0.1, 0.14),
                 band_text={"NL": "NL", "PL": "PL", "CZ": "CZ", "AT": "A", "FR": "F"}.get(country, "D") if band else "",
                 char_h=(0.32, 0.4))
    return compose(rng, upper, lay, height=96, lower=lower), "".join(upper + lower)


def render_us2(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    """US motorcycle plate: the state small at the top, two rows of 2-4 characters below."""
    pool_l = LETTERS.replace("O", "")
    upper, lower = (_rand_chars(rng, _pick(rng, [DIGITS, pool_l, pool_l + DIGITS]), int(rng.integers(2, n)))
                    for n in (4, 5))
    upper, lower = lookalike(rng, [upper, lower], rate, "us")
    lay = Layout(1.75, _rgb(_pick(rng, [(245, 245, 245), (250, 250, 235), (220, 230, 245), (240, 220, 200)])),
                 _pick(rng, _DARK), sep="", top=_pick(rng, US_STATES), border=rng.random() < 0.3, char_h=(0.36, 0.42))
    return compose(rng, [upper], lay, height=96, lower=[lower]), upper + lower


def render_br2(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    """Brazilian motorcycle plate: ABC above 1234 (grey) or above 1D23 (Mercosul)."""
    mercosul = rng.random() < 0.5
    upper = _rand_chars(rng, LETTERS, 3)
    lower = (_rand_chars(rng, DIGITS, 1) + _rand_chars(rng, LETTERS, 1) + _rand_chars(rng, DIGITS, 2) if mercosul
             else _rand_chars(rng, DIGITS, 4))
    upper, lower = lookalike(rng, [upper, lower], rate, "br")
    grey = float(rng.integers(150, 215))
    lay = (Layout(1.2, (245, 245, 245), (15, 15, 15), sep="", top="BRASIL", top_band=(150, 60, 0), char_h=(0.36, 0.42))
           if mercosul else Layout(1.4, (grey - 10, grey, grey), (15, 15, 15), sep="", top=_pick(rng, BR_CITIES),
                                   char_h=(0.36, 0.42)))
    return compose(rng, [upper], lay, height=96, lower=[lower]), upper + lower


def render_cn2(rng, rate: float = 0.0) -> tuple[np.ndarray, str]:
    """Chinese yellow two-row rear plate: province and city letter smaller on top, the serial below."""
    prov, city, serial = cn_text(rng, "yellow")
    city, serial = lookalike(rng, [city, serial], rate, "cn")
    lay = Layout(2.0, (20, 190, 240), (15, 15, 15), sep="·", char_h=(0.4, 0.46))
    return compose(rng, [prov, city], lay, height=96, cjk=True, lower=[serial], upper_scale=rng.uniform(0.6, 0.72)), \
        prov + city + serial


RENDERERS_2ROW = {"eu": render_eu2, "us": render_us2, "br": render_br2, "cn": render_cn2}
RENDERERS = {"us": render_us, "eu": render_eu, "br": render_br, "cn": render_cn, "xx": render_latin}


# ----------------------------------------------------------------------------- camera

def _surround(rng, plate: np.ndarray, pad_y: int, pad_x: int) -> np.ndarray:
    """The plate (grey uint8) on a car body: a shade with coarse texture (paint, shadows, bumper)."""
    h, w = plate.shape[:2]
    H, W = h + 2 * pad_y, w + 2 * pad_x
    tex = rng.integers(0, 255) + rng.normal(0, rng.uniform(2, 30), (H // 8 + 2, W // 8 + 2))
    out = cv2.resize(np.clip(tex, 0, 255).astype(np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)
    out[pad_y: pad_y + h, pad_x: pad_x + w] = plate
    return out


def _crop_margins(rng, region: str, degrade: float) -> tuple[np.ndarray, np.ndarray]:
    """Box margins (left/right as a share of the plate width, top/bottom of its height) as a
    detector or an annotator cuts them: usually a little loose, sometimes tight enough to cut
    into the first or last character, sometimes very loose with bumper and body."""
    kind = rng.random()
    if kind < 0.2 * degrade:  # tight
        return rng.uniform(-0.08, 0.01, 2), rng.uniform(-0.08, 0.04, 2)
    if kind < 0.35 * degrade:  # loose
        return rng.uniform(0.1, 0.4, 2), rng.uniform(0.2, 0.7, 2)
    if region == "cn" and rng.random() < 0.6:  # LPRNet-style crops are tight
        return rng.uniform(-0.02, 0.04, 2), rng.uniform(-0.04, 0.08, 2)
    return rng.uniform(-0.02, 0.1, 2), rng.uniform(-0.04, 0.18, 2)


def _geometry(rng, plate: np.ndarray, region: str, degrade: float) -> np.ndarray:
    """Perspective, rotation and the crop box, in one warp into the box's own size."""
    h, w = plate.shape[:2]
    mx, my = _crop_margins(rng, region, degrade)
    pad_y, pad_x = int(h * (0.3 + max(my.max(), 0))) + 2, int(w * (0.1 + max(mx.max(), 0))) + 2
    canvas = _surround(rng, plate, pad_y, pad_x)
    src = np.float32([[pad_x, pad_y], [pad_x + w, pad_y], [pad_x + w, pad_y + h], [pad_x, pad_y + h]])
    jit = rng.uniform(-0.06, 0.06, (4, 2)) * degrade * np.float32([w, h])
    ang = np.deg2rad(rng.normal(0, 3.0 * degrade))
    c = np.float32([pad_x + w / 2, pad_y + h / 2])
    rot = np.float32([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = ((src - c) @ rot.T + c + jit).astype(np.float32)
    (x0, y0), (x1, y1) = dst.min(0), dst.max(0)
    bw, bh = x1 - x0, y1 - y0
    cx0, cy0 = x0 - mx[0] * bw, y0 - my[0] * bh
    out_w, out_h = max(8, int(bw * (1 + mx.sum()))), max(8, int(bh * (1 + my.sum())))
    M = cv2.getPerspectiveTransform(src, dst - np.float32([cx0, cy0]))
    return cv2.warpPerspective(canvas, M, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _camera_size(rng, crop: np.ndarray, region: str, degrade: float) -> tuple[np.ndarray, float]:
    """The crop at the camera's resolution: often a plate 12-25 px high (far, or a small sensor),
    otherwise up to 60 px; and the factor a detector's crop is later scaled up by (1: none)."""
    h, w = crop.shape[:2]
    small = rng.random() < 0.35 * degrade + 0.1
    target = int(rng.integers(12, 26)) if small else int(rng.integers(26, max(h, 27)))
    crop = cv2.resize(crop, (max(6, int(round(w * target / h))), target), interpolation=cv2.INTER_AREA)
    return crop, (rng.uniform(1.5, 3.5) if small and rng.random() < 0.7 else 1.0)


def _rescale(rng, crop: np.ndarray, region: str, up: float, degrade: float) -> np.ndarray:
    """What whoever cut the crop did to its size: scaled up, sometimes without keeping the
    aspect; LPRNet's 94x24 for many Chinese crops."""
    if region == "cn" and rng.random() < 0.5:
        return cv2.resize(crop, (94, 24), interpolation=cv2.INTER_AREA)
    if up == 1.0:
        return crop
    squeeze = rng.uniform(0.6, 1.3) if rng.random() < 0.3 * degrade else 1.0
    return cv2.resize(crop, (max(8, int(crop.shape[1] * up * squeeze)), int(crop.shape[0] * up)),
                      interpolation=_pick(rng, [cv2.INTER_LINEAR, cv2.INTER_CUBIC]))


def _blur(rng, crop: np.ndarray, degrade: float) -> np.ndarray:
    r = rng.random()
    if r < 0.3 * degrade:  # defocus
        return cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.3, 0.4 + 0.5 * degrade) * max(1.0, crop.shape[0] / 40))
    if r < 0.5 * degrade:  # motion: a line kernel at any angle
        k = int(rng.integers(2, 3 + int(2.5 * degrade)) * max(1.0, crop.shape[0] / 30))
        kern = np.zeros((k, k), np.float32)
        a = rng.uniform(0, np.pi) if rng.random() < 0.3 else rng.normal(0, 0.25)  # mostly along the road
        p0 = (k - 1) / 2 * np.array([1 - np.cos(a), 1 - np.sin(a)])
        p1 = (k - 1) / 2 * np.array([1 + np.cos(a), 1 + np.sin(a)])
        cv2.line(kern, (int(round(p0[0])), int(round(p0[1]))), (int(round(p1[0])), int(round(p1[1]))), 1.0, 1)
        return cv2.filter2D(crop, -1, kern / kern.sum())
    return crop


def _light(rng, crop: np.ndarray, degrade: float) -> np.ndarray:
    """Exposure, haze; night/IR: low contrast, sometimes inverted."""
    if rng.random() < 0.15 * degrade:
        g = crop
        m = float(g.mean())
        g = m + (g - m) * rng.uniform(0.25, 0.7)
        if rng.random() < 0.35:  # inverted-ish: IR on some plates shows light characters on dark
            g = 255 - g * rng.uniform(0.7, 1.0)
        crop = g * rng.uniform(0.5, 1.2)
    elif rng.random() < 0.2 * degrade:  # washed out: dirt, haze, grey light
        m = float(crop.mean())
        crop = m + (crop - m) * rng.uniform(0.3, 0.65)
    gain, offset = rng.uniform(1 - 0.5 * degrade, 1 + 0.3 * degrade), rng.uniform(-30, 30) * degrade
    return crop * np.float32(gain) + np.float32(offset)


def camera(rng: np.random.Generator, plate: np.ndarray, region: str, degrade: float = 1.0) -> np.ndarray:
    """A composed plate as a camera and a detector deliver it: geometry and box, then optics,
    light, noise and codec at the camera's resolution, then the detector crop's rescale.
    BGR uint8 (grey in three channels: composed in grey, see ``_lum``)."""
    crop = _geometry(rng, np.clip(plate, 0, 255).astype(np.uint8), region, degrade)
    crop, up = _camera_size(rng, crop, region, degrade)
    crop = _light(rng, _blur(rng, crop.astype(np.float32), degrade), degrade)
    sigma = rng.uniform(0, 12 * degrade)
    if sigma > 0.5:  # sensor noise, on the brightness
        crop += rng.standard_normal(crop.shape, dtype=np.float32) * np.float32(sigma)
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    if rng.random() < 0.7 * degrade:
        _ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 90))])
        crop = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(_rescale(rng, crop, region, up, degrade), cv2.COLOR_GRAY2BGR)


# ----------------------------------------------------------------------------- the stream

def sample(seed: int, index: int, region: str | None = None, lookalike_rate: float = 0.25,
           degrade: float = 0.75, mix: Sequence[str] = (*RENDERERS, "2row")) -> tuple[np.ndarray, str, str]:
    """Sample ``index`` of the stream for ``seed``: (BGR crop, label, region), the region drawn
    from ``mix`` (``synth_mix`` recipe 3 passes its own) unless given. As in ``synth_mix``, a
    two-row plate is kept only if the runtime joins its rows into one line (else it would teach
    the network to read seven characters in a few columns)."""
    rng = np.random.default_rng([seed, index, 25])
    if region is None:
        region = _pick(rng, mix)
    if region == "2row":
        for _ in range(4):
            region2 = _pick(rng, ["eu", "eu", "us", "br", "cn"])
            plate, label = RENDERERS_2ROW[region2](rng, lookalike_rate)
            crop = camera(rng, plate, "2row", degrade)
            if find_rows(to_grey(crop)) is not None:
                return crop, label, region2
        region = "xx"
    plate, label = RENDERERS[region](rng, lookalike_rate)
    return camera(rng, plate, region, degrade), label, region

