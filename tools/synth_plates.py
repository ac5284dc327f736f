"""Synthetic licence-plate crops for training and testing the recogniser.

Renders US, EU, Brazilian and Chinese plate layouts with Pillow, then applies the distortions
a camera gives (perspective, rotation, crop jitter, blur, noise, light, JPEG, low resolution).
Deterministic for a seed: sample ``i`` of seed ``s`` is always the same image.

The training mix of these and the two-row plates (``synth_tworow``), and the command that writes
it, are ``synth_mix``.

Labels follow the real data's conventions (``../shared/PLATES.md``): uppercase, no separators,
Chinese plates start with the province character, and US plates write O as the digit 0.
"""

from __future__ import annotations

import csv
import functools
import glob
import os
import string
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge_ocr.read.preprocess import PreprocessSpec, model_pixels

DIGITS = string.digits
LETTERS = string.ascii_uppercase
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
SPECIALS = "警学挂港澳使领"
CHARSET = DIGITS + LETTERS + PROVINCES + SPECIALS
REGIONS = ("us", "eu", "br", "cn")

# Latin fonts from Debian packages (fonts-dejavu, fonts-liberation2, fonts-urw-base35,
# fonts-roboto-unhinted, fonts-croscore, fonts-freefont-ttf). Condensed sans first: plates use them.
_LATIN_PATTERNS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSansNarrow-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSansNarrow-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationMono-Bold.ttf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSansNarrow-Bold.otf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSansNarrow-Regular.otf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSans-Bold.otf",
    "/usr/share/fonts/opentype/urw-base35/NimbusMonoPS-Bold.otf",
    "/usr/share/fonts/opentype/urw-base35/URWGothic-Demi.otf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Medium.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Regular.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Bold.ttf",
    "/usr/share/fonts/truetype/croscore/Arimo-Bold.ttf",
    "/usr/share/fonts/truetype/croscore/Cousine-Bold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
]
_CJK_PATTERNS = [
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
]

US_STATES = [
    "CALIFORNIA", "TEXAS", "FLORIDA", "NEW YORK", "OREGON", "MAINE", "ARIZONA", "OHIO",
    "GEORGIA", "NEVADA", "KENTUCKY", "TENNESSEE", "VIRGINIA", "WEST VIRGINIA", "ILLINOIS",
    "NORTH CAROLINA", "NEW HAMPSHIRE", "COLORADO", "WASHINGTON", "MICHIGAN", "UTAH", "IOWA",
]
US_SLOGANS = [
    "LIVE FREE OR DIE", "Sunshine State", "The Lone Star State", "Land of Lincoln", "dmv.ca.gov",
    "Vacationland", "Grand Canyon State", "Wild, Wonderful", "FIRST IN FLIGHT", "Great Lakes",
    "KNOX", "CLARK", "LEGENDS", "Peach State", "Empire State", "Centennial", "Evergreen State",
]
BR_CITIES = ["SP-SAO PAULO", "BA-SALVADOR", "MG-MONTES CLAROS", "ES-VILA VELHA", "RJ-NITEROI",
             "BA-LAURO DE FREITAS", "PR-CURITIBA", "ES-CARIACICA", "SC-JOINVILLE"]
EU_CODES = ["D", "SK", "F", "I", "NL", "PL", "A", "CZ", "E", "B", "H", "SLO", "HR", "P"]


@functools.cache
def available_fonts() -> tuple[list[str], list[str]]:
    """(latin fonts, CJK fonts) present on this machine. Raises if none of a kind exist.

    ``EDGE_OCR_FONT_DIR`` names a folder holding copies of these files under the same names
    (``tools/gpu_session.sh pack``), for a machine without the Debian font packages."""
    folder = os.environ.get("EDGE_OCR_FONT_DIR")
    where = (lambda p: os.path.join(folder, os.path.basename(p))) if folder else (lambda p: p)
    latin = [where(p) for p in _LATIN_PATTERNS if os.path.exists(where(p))]
    cjk = [where(p) for p in _CJK_PATTERNS if os.path.exists(where(p))]
    if not latin:
        latin = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/*.ttf"))
    if not latin:
        raise RuntimeError("no Latin fonts found: apt-get install fonts-dejavu-core")
    if not cjk:
        raise RuntimeError("no CJK font found: apt-get install fonts-wqy-zenhei")
    return latin, cjk


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _rand_chars(rng: np.random.Generator, pool: str, n: int) -> str:
    return "".join(pool[int(i)] for i in rng.integers(0, len(pool), n))


# ----------------------------------------------------------------------------- text formats

def us_text(rng: np.random.Generator) -> list[str]:
    """Groups of characters as printed (joined for the label)."""
    pool_l = LETTERS.replace("O", "")
    r = rng.random()
    if r < 0.35:  # 1ABC234 (California)
        groups = [_rand_chars(rng, DIGITS, 1) + _rand_chars(rng, pool_l, 3), _rand_chars(rng, DIGITS, 3)]
    elif r < 0.6:  # ABC 1234
        groups = [_rand_chars(rng, pool_l, 3), _rand_chars(rng, DIGITS, int(rng.integers(3, 5)))]
    elif r < 0.75:  # 123 ABC
        groups = [_rand_chars(rng, DIGITS, 3), _rand_chars(rng, pool_l, 3)]
    elif r < 0.9:  # mixed
        n = int(rng.integers(5, 8))
        groups = [_rand_chars(rng, DIGITS + pool_l, n)]
    else:  # vanity 3..8
        n = int(rng.integers(3, 9))
        groups = [_rand_chars(rng, pool_l + DIGITS, n)]
    return groups


def eu_text(rng: np.random.Generator) -> list[str]:
    r = rng.random()
    L, D = LETTERS, DIGITS
    if r < 0.3:  # SK: RK-123AB
        return [_rand_chars(rng, L, 2), _rand_chars(rng, D, 3) + _rand_chars(rng, L, 2)]
    if r < 0.45:  # D: B AB 1234
        return [_rand_chars(rng, L, int(rng.integers(1, 4))), _rand_chars(rng, L, int(rng.integers(1, 3))),
                _rand_chars(rng, D, int(rng.integers(1, 5)))]
    if r < 0.55:  # F/I: AB-123-CD
        return [_rand_chars(rng, L, 2), _rand_chars(rng, D, 3), _rand_chars(rng, L, 2)]
    if r < 0.65:  # E: 1234 BCD
        return [_rand_chars(rng, D, 4), _rand_chars(rng, L, 3)]
    if r < 0.8:  # PL: WA 12345 / WSQ 3021
        return [_rand_chars(rng, L, int(rng.integers(2, 4))), _rand_chars(rng, D + L, int(rng.integers(4, 6)))]
    if r < 0.9:  # NL: XX-999-X
        return [_rand_chars(rng, L, 2), _rand_chars(rng, D, 3), _rand_chars(rng, L, 1)]
    n = int(rng.integers(5, 9))
    return [_rand_chars(rng, L + D, n)]


def br_text(rng: np.random.Generator, mercosul: bool) -> list[str]:
    if mercosul:
        return [_rand_chars(rng, LETTERS, 3) + _rand_chars(rng, DIGITS, 1) + _rand_chars(rng, LETTERS, 1)
                + _rand_chars(rng, DIGITS, 2)]
    return [_rand_chars(rng, LETTERS, 3), _rand_chars(rng, DIGITS, 4)]


def cn_text(rng: np.random.Generator, kind: str) -> tuple[str, str, str]:
    """(province, city letter, serial)."""
    serial_pool = DIGITS + LETTERS.replace("I", "").replace("O", "")
    # the real data is dominated by Anhui (皖) plates; keep every province well represented
    prov = "皖" if rng.random() < 0.25 else _pick(rng, PROVINCES)
    city = _pick(rng, LETTERS.replace("I", "").replace("O", ""))
    if kind == "green":
        serial = _pick(rng, "DF") + _rand_chars(rng, serial_pool, 5)
    else:
        serial = _rand_chars(rng, serial_pool, 5)
        if rng.random() < 0.04:
            serial = serial[:4] + _pick(rng, "警学挂港澳")
    return prov, city, serial


# ----------------------------------------------------------------------------- drawing helpers

def _text_size(font: ImageFont.FreeTypeFont, text: str) -> tuple[int, int, int, int]:
    return font.getbbox(text)


def _draw_glyphs(draw: ImageDraw.ImageDraw, rng, x0: float, y_mid: float, groups: list[str], fonts: list,
                 char_h: float, fill, sep: str, gap_chars: float, max_w: float) -> None:
    """Draw groups of characters with random spacing, vertically centred at y_mid,
    horizontally stretched/squeezed so the whole line fits in max_w."""
    items: list[tuple[str, ImageFont.FreeTypeFont | None]] = []
    for gi, g in enumerate(groups):
        for ch in g:
            items.append((ch, fonts[0] if len(fonts) == 1 or ord(ch) < 128 else fonts[1]))
        if gi < len(groups) - 1:
            items.append((sep, None))
    spacing = char_h * float(rng.uniform(0.03, 0.15))
    widths = []
    for ch, f in items:
        if f is None:
            widths.append(char_h * gap_chars)
        else:
            b = f.getbbox(ch)
            widths.append(b[2] - b[0])
    total = sum(widths) + spacing * (len(items) - 1)
    scale = min(1.0, max_w / max(total, 1))
    x = x0 + (max_w - total * scale) / 2
    for (ch, f), w in zip(items, widths):
        if f is not None:
            b = f.getbbox(ch)
            # glyph image so we can squeeze it horizontally when the line is too long
            gw, gh = b[2] - b[0] + 2, b[3] - b[1] + 2
            glyph = Image.new("L", (gw, gh), 0)
            ImageDraw.Draw(glyph).text((-b[0] + 1, -b[1] + 1), ch, font=f, fill=255)
            tw = max(1, int(round(gw * scale)))
            th = int(round(char_h))
            glyph = glyph.resize((tw, th), Image.BILINEAR)
            draw.bitmap((int(x), int(y_mid - th / 2)), glyph, fill=fill)
        elif sep.strip():
            sx = x + w * scale / 2
            if sep == "-":
                draw.rectangle([sx - char_h * 0.12, y_mid - char_h * 0.05, sx + char_h * 0.12, y_mid + char_h * 0.05],
                               fill=fill)
            elif sep == "·":
                r = char_h * 0.06
                draw.ellipse([sx - r, y_mid - r, sx + r, y_mid + r], fill=fill)
            elif sep == "emblem":
                r = char_h * 0.22
                col = tuple(int(c) for c in rng.integers(0, 255, 3))
                draw.ellipse([sx - r, y_mid - r * 1.3, sx + r, y_mid + r * 1.3], fill=col)
                draw.rectangle([sx - r * 0.5, y_mid - r * 0.8, sx + r * 0.5, y_mid + r * 0.4],
                               fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        x += (w + spacing) * scale


def _background(rng, w: int, h: int, base) -> Image.Image:
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.array(base, np.float32)
    if rng.random() < 0.5:  # gradient
        g = np.linspace(0, 1, h if rng.random() < 0.6 else w, dtype=np.float32)
        delta = rng.uniform(-60, 60, 3).astype(np.float32)
        if g.shape[0] == h:
            img += g[:, None, None] * delta
        else:
            img += g[None, :, None] * delta
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _picture_blobs(rng, draw: ImageDraw.ImageDraw, w: int, h: int, n: int) -> None:
    """Scenic US backgrounds: soft coloured shapes behind the characters."""
    for _ in range(n):
        col = tuple(int(c) for c in rng.integers(60, 255, 3))
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(w * 0.05, w * 0.4), rng.uniform(h * 0.05, h * 0.4)
        if rng.random() < 0.5:
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=col)
        else:
            draw.polygon([(x, y - ry), (x - rx, y + ry), (x + rx, y + ry)], fill=col)


def _bolts(rng, draw, w, h, ch):
    if rng.random() < 0.5:
        r = max(2, int(ch * 0.06))
        for bx in (w * 0.2, w * 0.8):
            for by in ((h * 0.12,) if rng.random() < 0.5 else (h * 0.12, h * 0.88)):
                draw.ellipse([bx - r, by - r, bx + r, by + r], fill=(120, 120, 120), outline=(60, 60, 60))


def _dark(rng):
    return tuple(int(c) for c in _pick(rng, [(20, 20, 20), (30, 30, 120), (140, 20, 20), (20, 80, 30), (10, 10, 60)]) )


# ----------------------------------------------------------------------------- layouts

def render_us(rng) -> tuple[Image.Image, str]:
    latin, _ = available_fonts()
    W, H = 360, 180
    ch = H * rng.uniform(0.38, 0.5)
    base = _pick(rng, [(245, 245, 245), (235, 235, 225), (250, 250, 235), (220, 230, 245), (240, 220, 200),
                       (250, 250, 250), (205, 225, 240)])
    img = _background(rng, W, H, base)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.45:
        _picture_blobs(rng, d, W, H, int(rng.integers(1, 6)))
        if rng.random() < 0.5:  # light plate area behind the characters keeps it readable
            d.rectangle([0, H * 0.28, W, H * 0.78], fill=base)
    fill = _dark(rng)
    small = _font(_pick(rng, latin), int(H * rng.uniform(0.13, 0.2)))
    state = _pick(rng, US_STATES)
    if rng.random() < 0.5:
        state = state.title()
    top_col = tuple(int(c) for c in rng.integers(0, 200, 3))
    b = small.getbbox(state)
    d.text(((W - (b[2] - b[0])) / 2, H * 0.04), state, font=small, fill=top_col)
    if rng.random() < 0.8:
        slogan = _pick(rng, US_SLOGANS)
        b = small.getbbox(slogan)
        d.text(((W - (b[2] - b[0])) / 2, H * 0.8), slogan, font=small, fill=top_col)
    if rng.random() < 0.5:  # registration stickers in corners
        for cx in ([W * 0.03] if rng.random() < 0.5 else [W * 0.03, W * 0.85]):
            d.rectangle([cx, H * 0.05, cx + W * 0.12, H * 0.22], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    groups = us_text(rng)
    font = _font(_pick(rng, latin), int(ch * 1.3))
    sep = _pick(rng, [" ", " ", "-", "·", "emblem", ""]) if len(groups) > 1 else ""
    _draw_glyphs(d, rng, W * 0.05, H * rng.uniform(0.5, 0.56), groups, [font], ch, fill, sep, 0.35, W * 0.9)
    label = "".join(groups)
    if rng.random() < 0.3:
        d.rectangle([1, 1, W - 2, H - 2], outline=fill, width=int(rng.integers(2, 6)))
    _bolts(rng, d, W, H, ch)
    # US labels write O as 0: the generator never prints a letter O on US plates
    return img, label


def render_eu(rng) -> tuple[Image.Image, str]:
    latin, _ = available_fonts()
    W, H = 520, 110
    yellow = rng.random() < 0.12
    img = _background(rng, W, H, (40, 190, 240)[::-1] if False else ((250, 210, 30) if yellow else (245, 245, 245)))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, W - 1, H - 1], outline=(20, 20, 20), width=int(rng.integers(2, 6)))
    band_w = int(W * rng.uniform(0.075, 0.095))
    if rng.random() < 0.92:
        d.rectangle([0, 0, band_w, H], fill=(160, 50, 0)[::-1])  # EU blue (RGB 0,50,160)
        cx, cy, r = band_w / 2, H * 0.33, band_w * 0.3
        for k in range(12):
            a = 2 * np.pi * k / 12
            sx, sy = cx + r * np.cos(a), cy + r * np.sin(a)
            d.ellipse([sx - 2, sy - 2, sx + 2, sy + 2], fill=(255, 220, 0))
        code = _pick(rng, EU_CODES)
        cf = _font(_pick(rng, latin), int(H * 0.28))
        b = cf.getbbox(code)
        d.text((cx - (b[2] - b[0]) / 2 - b[0], H * 0.58), code, font=cf, fill=(255, 255, 255))
    ch = H * rng.uniform(0.62, 0.76)
    groups = eu_text(rng)
    font = _font(_pick(rng, latin), int(ch * 1.3))
    sep = _pick(rng, ["-", " ", "emblem", "emblem", "·", ""]) if len(groups) > 1 else ""
    _draw_glyphs(d, rng, band_w + W * 0.02, H * 0.52, groups, [font], ch, (15, 15, 15), sep, 0.45,
                 W - band_w - W * 0.04)
    return img, "".join(groups)


def render_br(rng) -> tuple[Image.Image, str]:
    latin, _ = available_fonts()
    W, H = 400, 130
    mercosul = rng.random() < 0.4
    if mercosul:
        img = _background(rng, W, H, (245, 245, 245))
        d = ImageDraw.Draw(img)
        d.rectangle([0, 0, W, H * 0.22], fill=(150, 60, 0)[::-1])
        f = _font(_pick(rng, latin), int(H * 0.15))
        d.text((W * 0.4, H * 0.03), "BRASIL", font=f, fill=(255, 255, 255))
        d.rectangle([W * 0.88, H * 0.04, W * 0.97, H * 0.18], fill=(0, 150, 60))
        top = H * 0.22
    else:
        grey = int(rng.integers(150, 215))
        img = _background(rng, W, H, (grey, grey, grey - int(rng.integers(0, 25))))
        d = ImageDraw.Draw(img)
        f = _font(_pick(rng, latin), int(H * 0.14))
        city = _pick(rng, BR_CITIES)
        b = f.getbbox(city)
        d.text(((W - (b[2] - b[0])) / 2, H * 0.04), city, font=f, fill=(30, 30, 30))
        top = H * 0.2
    d.rectangle([0, 0, W - 1, H - 1], outline=(30, 30, 30), width=int(rng.integers(2, 6)))
    ch = (H - top) * rng.uniform(0.6, 0.78)
    groups = br_text(rng, mercosul)
    font = _font(_pick(rng, latin), int(ch * 1.3))
    sep = "" if mercosul else _pick(rng, ["·", "-", " ", "·"])
    _draw_glyphs(d, rng, W * 0.04, top + (H - top) * 0.5, groups, [font], ch, (15, 15, 15), sep, 0.4, W * 0.92)
    _bolts(rng, d, W, H, ch)
    return img, "".join(groups)


def render_cn(rng) -> tuple[Image.Image, str]:
    latin, cjk = available_fonts()
    W, H = 440, 140
    kind = _pick(rng, ["blue"] * 7 + ["green"] * 2 + ["yellow"])
    if kind == "blue":
        base, fill, border = (int(rng.integers(150, 230)), int(rng.integers(40, 90)), int(rng.integers(0, 40))), (245, 245, 245), (240, 240, 240)
        base = base[::-1][::-1]
        base = (base[2], base[1], base[0])  # RGB: blue-ish
        base = (int(rng.integers(0, 40)), int(rng.integers(40, 100)), int(rng.integers(150, 230)))
    elif kind == "green":
        base, fill, border = (int(rng.integers(120, 200)), 220, int(rng.integers(140, 200))), (15, 15, 15), (30, 30, 30)
    else:
        base, fill, border = (240, 190, 20), (15, 15, 15), (20, 20, 20)
    img = _background(rng, W, H, base)
    d = ImageDraw.Draw(img)
    d.rectangle([4, 4, W - 5, H - 5], outline=border, width=int(rng.integers(2, 5)))
    prov, city, serial = cn_text(rng, kind)
    ch = H * rng.uniform(0.62, 0.74)
    lat = _font(_pick(rng, latin), int(ch * 1.3))
    han = _font(_pick(rng, cjk), int(ch * 1.1))
    _draw_glyphs(d, rng, W * 0.04, H * 0.5, [prov + city, serial], [lat, han], ch, fill, "·", 0.35, W * 0.92)
    return img, prov + city + serial


def latin_text(rng: np.random.Generator) -> list[str]:
    """Plates of countries that write Latin letters and digits in layouts none of the four
    regions use (``ABC-1234``, ``01A123BC``, ``12-AB-34``, ``A 1234 BC``, all-digit, ...):
    every position may hold a letter or a digit, so the network cannot lean on a format."""
    L, D = LETTERS, DIGITS
    r = rng.random()
    if r < 0.45:  # random groups of letters or digits
        groups = []
        for _ in range(int(rng.integers(1, 4))):
            pool = _pick(rng, [L, D, L + D])
            groups.append(_rand_chars(rng, pool, int(rng.integers(1, 5))))
    elif r < 0.6:  # 01A123BC style: digits, letter(s), digits, letters
        groups = [_rand_chars(rng, D, 2) + _rand_chars(rng, L, int(rng.integers(1, 3))),
                  _rand_chars(rng, D, 3) + _rand_chars(rng, L, int(rng.integers(0, 3)))]
    elif r < 0.75:  # ABC-1234 / AB-1234-C
        groups = [_rand_chars(rng, L, int(rng.integers(1, 4))), _rand_chars(rng, D, int(rng.integers(2, 5)))]
        if rng.random() < 0.4:
            groups.append(_rand_chars(rng, L, int(rng.integers(1, 3))))
    elif r < 0.85:  # digits first: 1234-AB, 12-AB-34
        groups = [_rand_chars(rng, D, int(rng.integers(1, 5))), _rand_chars(rng, L, int(rng.integers(1, 4)))]
        if rng.random() < 0.5:
            groups.append(_rand_chars(rng, D, int(rng.integers(1, 4))))
    else:  # any character anywhere
        groups = [_rand_chars(rng, L + D, int(rng.integers(4, 9)))]
    n = sum(len(g) for g in groups)
    while n < 3:  # a plate has at least three characters
        groups.append(_rand_chars(rng, L + D, 1))
        n += 1
    while n > 9:
        groups[-1] = groups[-1][:-1] or groups.pop()
        n = sum(len(g) for g in groups)
    return [g for g in groups if g]


def render_latin(rng) -> tuple[Image.Image, str]:
    """A plate of no particular country: random aspect (2:1 to 5:1), colours of either polarity
    (dark on light, light on dark, coloured grounds), an optional band, flag or emblem on the
    left, optional small text above or below, any of the Latin fonts."""
    latin, _ = available_fonts()
    H = 120
    W = int(H * rng.uniform(2.0, 5.0))
    grounds = [((245, 245, 245), (15, 15, 15)), ((250, 215, 40), (15, 15, 15)), ((20, 20, 20), (240, 240, 240)),
               ((30, 60, 160), (245, 245, 245)), ((170, 30, 30), (245, 245, 245)), ((40, 120, 60), (245, 245, 245)),
               ((200, 200, 195), (25, 25, 25)), ((230, 235, 245), (20, 40, 120)), ((245, 245, 245), (160, 20, 20))]
    base, fill = _pick(rng, grounds)
    img = _background(rng, W, H, base)
    d = ImageDraw.Draw(img)
    x0 = W * rng.uniform(0.02, 0.05)
    band = rng.random()
    if band < 0.35:  # a band on the left: blue EU-like, or a flag of two or three stripes
        bw = int(W * rng.uniform(0.06, 0.12))
        if rng.random() < 0.5:
            d.rectangle([0, 0, bw, H], fill=(0, 50, 160))
        else:
            cols = [tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in range(int(rng.integers(2, 4)))]
            for k, col in enumerate(cols):
                d.rectangle([0, H * k / len(cols), bw, H * (k + 1) / len(cols)], fill=col)
        if rng.random() < 0.6:
            cf = _font(_pick(rng, latin), int(H * 0.22))
            code = _rand_chars(rng, LETTERS, int(rng.integers(1, 4)))
            d.text((bw * 0.1, H * 0.62), code, font=cf, fill=(255, 255, 255))
        x0 = bw + W * 0.02
    elif band < 0.45:  # emblem or small square picture on the left
        r = H * 0.18
        d.ellipse([x0, H / 2 - r, x0 + 2 * r, H / 2 + r], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        x0 += 2 * r + W * 0.02
    top, bottom = 0.0, 0.0
    small = _font(_pick(rng, latin), int(H * rng.uniform(0.11, 0.16)))
    if rng.random() < 0.3:
        word = _rand_chars(rng, LETTERS, int(rng.integers(4, 12)))
        d.text((W * rng.uniform(0.2, 0.5), H * 0.03), word, font=small, fill=fill)
        top = 0.16
    if rng.random() < 0.2:
        word = _rand_chars(rng, LETTERS + " ", int(rng.integers(4, 14)))
        d.text((W * rng.uniform(0.15, 0.45), H * 0.82), word, font=small, fill=fill)
        bottom = 0.16
    if rng.random() < 0.6:
        d.rectangle([1, 1, W - 2, H - 2], outline=fill, width=int(rng.integers(1, 5)))
    groups = latin_text(rng)
    ch = H * (1 - top - bottom) * rng.uniform(0.6, 0.8)
    font = _font(_pick(rng, latin), int(ch * 1.3))
    sep = _pick(rng, ["-", " ", "·", "", "emblem", " "]) if len(groups) > 1 else ""
    _draw_glyphs(d, rng, x0, H * (top + (1 - top - bottom) / 2), groups, [font], ch, fill, sep, 0.4,
                 W - x0 - W * 0.03)
    _bolts(rng, d, W, H, ch)
    return img, "".join(groups)


RENDERERS = {"us": render_us, "eu": render_eu, "br": render_br, "cn": render_cn, "xx": render_latin}


# ----------------------------------------------------------------------------- camera effects

def camera(rng: np.random.Generator, plate_rgb: Image.Image, region: str, robust: bool = False) -> np.ndarray:
    """Place the plate in a scene-like border, warp, crop with jitter, degrade. Returns BGR uint8.

    ``robust`` (training recipe 2) adds what real crops from unseen cameras showed: boxes that
    touch or cut into the first or last character, very loose boxes with bumper and body,
    plates 12-25 px high rescaled up, crops squeezed or stretched to a fixed size, heavy blur
    and low contrast."""
    plate = cv2.cvtColor(np.asarray(plate_rgb), cv2.COLOR_RGB2BGR)
    h, w = plate.shape[:2]
    # surrounding: car body / bumper colour with texture, so loose crops see something real-ish
    pad = int(h * (0.9 if robust else 0.3))
    ch_, cw_ = h + 2 * pad, w + 2 * pad
    # coarse texture, upsampled: cheap and looks like paint and shadows rather than pixel noise
    tex = rng.normal(0, rng.uniform(2, 25), (ch_ // 8 + 1, cw_ // 8 + 1, 1)).astype(np.float32)
    tex = cv2.resize(tex, (cw_, ch_), interpolation=cv2.INTER_LINEAR)[..., None]
    canvas = np.clip(rng.integers(0, 255, 3).astype(np.float32)[None, None, :] + tex, 0, 255).astype(np.uint8)
    canvas[pad:pad + h, pad:pad + w] = plate
    # perspective: move corners by a few percent, plus rotation
    src = np.float32([[pad, pad], [pad + w, pad], [pad + w, pad + h], [pad, pad + h]])
    jit = rng.uniform(-0.06, 0.06, (4, 2)) * np.float32([w, h])
    ang = np.deg2rad(rng.normal(0, 3.0))
    c = np.float32([pad + w / 2, pad + h / 2])
    rot = np.float32([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = ((src - c) @ rot.T + c + jit).astype(np.float32)
    M = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(canvas, M, (canvas.shape[1], canvas.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    # crop: the box of the warped plate, grown or shrunk (tight and loose annotations)
    x0, y0 = dst.min(0)
    x1, y1 = dst.max(0)
    bw, bh = x1 - x0, y1 - y0
    gx = rng.uniform(-0.03, 0.12, 2) * bw
    gy = rng.uniform(-0.05, 0.2, 2) * bh
    if region == "cn" and rng.random() < 0.6:
        gx = rng.uniform(-0.02, 0.04, 2) * bw  # LPRNet-style crops are tight
        gy = rng.uniform(-0.04, 0.08, 2) * bh
    if robust:
        kind = rng.random()
        if kind < 0.25:  # tight: the box edge touches or cuts into the first or last character
            gx = rng.uniform(-0.09, 0.01, 2) * bw
            gy = rng.uniform(-0.08, 0.04, 2) * bh
        elif kind < 0.4:  # loose: bumper, body, other text around the plate
            gx = rng.uniform(0.1, 0.45, 2) * bw
            gy = rng.uniform(0.2, 0.8, 2) * bh
    cx0 = int(max(0, x0 - gx[0]))
    cy0 = int(max(0, y0 - gy[0]))
    cx1 = int(min(warped.shape[1], x1 + gx[1]))
    cy1 = int(min(warped.shape[0], y1 + gy[1]))
    crop = warped[cy0:cy1, cx0:cx1]
    # resolution: plates 15..100 px high in the camera, then upscaled like a detector crop
    if region == "cn" and rng.random() < 0.6:
        out_h, out_w = 24, 94
        crop = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
    elif robust and rng.random() < 0.35:
        # a small plate (12-25 px) that a detector cut out and rescaled up to a fixed size,
        # often without keeping the aspect (seen in openalpr-td: 80 px high, squeezed)
        small_h = int(rng.integers(12, 26))
        s_ = small_h / crop.shape[0]
        crop = cv2.resize(crop, (max(6, int(crop.shape[1] * s_)), small_h), interpolation=cv2.INTER_AREA)
        out_h = int(rng.choice([32, 48, 64, 80, 100]))
        squeeze = rng.uniform(0.55, 1.25) if rng.random() < 0.6 else 1.0
        out_w = max(8, int(crop.shape[1] * out_h / small_h * squeeze))
        crop = cv2.resize(crop, (out_w, out_h), interpolation=_pick(rng, [cv2.INTER_LINEAR, cv2.INTER_CUBIC]))
    else:
        target_h = int(rng.choice([rng.integers(15, 40), rng.integers(40, 110)]))
        s = target_h / crop.shape[0]
        crop = cv2.resize(crop, (max(8, int(crop.shape[1] * s)), target_h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            up = rng.uniform(1.0, 3.0)
            crop = cv2.resize(crop, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR)
        if robust and rng.random() < 0.25:  # aspect not kept by whoever cut the crop
            crop = cv2.resize(crop, (max(8, int(crop.shape[1] * rng.uniform(0.6, 1.35))), crop.shape[0]),
                              interpolation=cv2.INTER_LINEAR)
    crop = crop.astype(np.float32)
    # blur: defocus or motion
    r = rng.random()
    if r < 0.25:
        k = rng.uniform(0.3, 1.4)
        crop = cv2.GaussianBlur(crop, (0, 0), k)
    elif r < 0.4:
        k = int(rng.integers(3, 8))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2, :] = 1.0 / k
        if rng.random() < 0.5:
            kern = kern.T
        crop = cv2.filter2D(crop, -1, kern)
    if robust and rng.random() < 0.2:  # a soft, out-of-focus camera on top of the rest
        crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(1.0, 2.2) * max(1.0, crop.shape[0] / 60))
    if robust and rng.random() < 0.25:  # washed out: dirt, haze, a grey plate under grey light
        m = crop.mean()
        crop = m + (crop - m) * rng.uniform(0.25, 0.6)
    # light: low light, overexposure, colour cast, glare
    crop = crop * rng.uniform(0.35, 1.3) + rng.uniform(-40, 40)
    crop = crop * rng.uniform(0.85, 1.15, 3)[None, None, :]
    if rng.random() < 0.15:
        hh, ww = crop.shape[:2]
        yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        gx_, gy_ = rng.uniform(0, ww), rng.uniform(0, hh)
        sig = rng.uniform(0.15, 0.5) * ww
        crop += (rng.uniform(60, 180) * np.exp(-((xx - gx_) ** 2 + (yy - gy_) ** 2) / (2 * sig * sig)))[..., None]
    if rng.random() < 0.15:  # shadow band
        hh, ww = crop.shape[:2]
        x_cut = int(rng.uniform(0.2, 0.8) * ww)
        if rng.random() < 0.5:
            crop[:, :x_cut] *= rng.uniform(0.4, 0.8)
        else:
            crop[:, x_cut:] *= rng.uniform(0.4, 0.8)
    crop += rng.normal(0, rng.uniform(0, 12), crop.shape).astype(np.float32)
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        q = int(rng.integers(15, 90))
        _ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, q])
        crop = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return crop


def pack_samples(samples, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(BGR image, text, region) samples -> what training stores: each image as the model sees it
    before normalisation (``model_pixels``), uint8 (N, height, width) zero-padded on the right,
    their content widths (int16), texts and regions. Consumes ``samples`` lazily, so only the
    small model-size copies are held."""
    smalls, texts, regions = [], [], []
    for img, text, region in samples:
        smalls.append(model_pixels(img, spec))
        texts.append(text)
        regions.append(region)
    imgs = np.zeros((len(smalls), spec.height, spec.width), np.uint8)
    for k, small in enumerate(smalls):
        imgs[k, :, : small.shape[1]] = small
    return imgs, np.array([m.shape[1] for m in smalls], np.int16), texts, regions


def write_pngs(out: Path, samples, seed: int, source: str, suffix: str = "") -> None:
    """(BGR image, text, region) samples -> numbered PNG files and a labels.csv like the real
    crops' (file, text, region, source) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["file", "text", "region", "source"])
        for i, (img, label, region) in enumerate(samples):
            name = f"{region}{suffix}-{seed}-{i:06d}.png"
            cv2.imwrite(str(out / name), img)
            wr.writerow([name, label, region, source])
