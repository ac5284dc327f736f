"""Synthetic two-row licence plates: EU square plates, US and Brazilian motorcycle plates, Chinese
yellow two-row rear plates. Same conventions as ``synth_plates`` (whose fonts, text helpers and
camera it uses): a renderer takes a numpy Generator and returns (PIL RGB plate, label); the label
is the top row followed by the bottom row, no separators.

    python -m tools.synth_tworow OUT_DIR --count 300 --seed 1     # writes PNGs + labels.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tools.synth_plates import (
    BR_CITIES,
    DIGITS,
    LETTERS,
    US_STATES,
    _background,
    _bolts,
    _dark,
    _draw_glyphs,
    _font,
    _pick,
    _rand_chars,
    available_fonts,
    camera,
    cn_text,
    write_pngs,
)

REGIONS_2ROW = ("eu", "us", "br", "cn")
_EU_BLUE = (0, 50, 160)


def _eu_rows(rng, country: str) -> tuple[list[str], list[str]]:
    """(top groups, bottom groups) as a country prints them on a square plate."""
    L, D = LETTERS, DIGITS
    if country == "DE":  # HH / AB 1234
        return ([_rand_chars(rng, L, int(rng.integers(1, 4)))],
                [_rand_chars(rng, L, int(rng.integers(1, 3))), _rand_chars(rng, D, int(rng.integers(1, 5)))])
    if country == "AT":  # W (arms) 1 / 518 B
        top = [_rand_chars(rng, L, int(rng.integers(1, 3)))]
        if rng.random() < 0.5:
            top.append(_rand_chars(rng, D, 1))
        return top, [_rand_chars(rng, D + L, int(rng.integers(3, 6)))]
    if country == "CZ":  # 3B6 / 2037
        return [_rand_chars(rng, D, 1) + _rand_chars(rng, L, 1) + _rand_chars(rng, D + L, 1)], [_rand_chars(rng, D, 4)]
    if country == "NL":  # MZ-01 / GH
        return [_rand_chars(rng, L, 2), _rand_chars(rng, D, 2)], [_rand_chars(rng, L, 2)]
    if country == "PL":  # WA / 12345
        return [_rand_chars(rng, L, int(rng.integers(2, 4)))], [_rand_chars(rng, D + L, int(rng.integers(4, 6)))]
    return [_rand_chars(rng, L, 2), _rand_chars(rng, D, 3)], [_rand_chars(rng, L, 2)]  # FR: AB-123 / CD


def render_eu2(rng) -> tuple[Image.Image, str]:
    """Square EU plate (DE, AT, CZ, NL, PL, FR styles): two rows of equal big characters, a blue
    band on the left (not on old and Dutch yellow plates), an emblem beside the top row."""
    latin, _ = available_fonts()
    country = _pick(rng, ["DE", "AT", "CZ", "NL", "PL", "FR"])
    H = 200
    W = int(H * rng.uniform(1.2, 1.7))
    yellow = country == "NL" and rng.random() < 0.6
    img = _background(rng, W, H, (250, 210, 30) if yellow else (245, 245, 245))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, W - 1, H - 1], outline=(20, 20, 20), width=int(rng.integers(3, 8)))
    if country == "AT":  # red-white-red stripes along the top and bottom edges
        for y in (0, H - H * 0.06):
            d.rectangle([0, y, W, y + H * 0.06], fill=(200, 20, 30))
    band_w = 0
    if not yellow and rng.random() < 0.85:
        band_w = int(W * rng.uniform(0.1, 0.14))
        d.rectangle([0, 0, band_w, H], fill=_EU_BLUE)
        code = {"DE": "D", "AT": "A", "CZ": "CZ", "NL": "NL", "PL": "PL", "FR": "F"}[country]
        cf = _font(_pick(rng, latin), int(band_w * (0.6 if len(code) == 1 else 0.42)))
        b = cf.getbbox(code)
        d.text((band_w / 2 - (b[2] - b[0]) / 2 - b[0], H * 0.75), code, font=cf, fill=(255, 255, 255))
    top, bottom = _eu_rows(rng, country)
    ch = H * rng.uniform(0.32, 0.4)
    font = _font(_pick(rng, latin), int(ch * 1.3))
    fill = (15, 15, 15) if rng.random() < 0.85 else (150, 20, 20)
    x0, max_w = band_w + W * 0.04, W - band_w - W * 0.08
    top_w = max_w * (0.7 if country in ("DE", "AT") else 1.0)  # room for the seal or arms
    _draw_glyphs(d, rng, x0, H * 0.27, top, [font], ch, fill, _pick(rng, ["-", " ", ""]), 0.4, top_w)
    if top_w < max_w:
        r = ch * 0.3
        cx, cy = x0 + top_w + (max_w - top_w) / 2, H * 0.27
        d.ellipse([cx - r, cy - r * 1.2, cx + r, cy + r * 1.2], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    _draw_glyphs(d, rng, x0, H * 0.72, bottom, [font], ch, fill, _pick(rng, ["-", " ", "·", ""]), 0.4, max_w)
    return img, "".join(top + bottom)


def render_us2(rng) -> tuple[Image.Image, str]:
    """US motorcycle plate (7 x 4 in): the state name small at the top, the serial below in two
    rows of equal characters or, on some states, in one."""
    latin, _ = available_fonts()
    W, H = 350, 200
    base = _pick(rng, [(245, 245, 245), (250, 250, 235), (220, 230, 245), (240, 220, 200)])
    img = _background(rng, W, H, base)
    d = ImageDraw.Draw(img)
    small = _font(_pick(rng, latin), int(H * rng.uniform(0.1, 0.15)))
    state = _pick(rng, US_STATES)
    b = small.getbbox(state)
    d.text(((W - (b[2] - b[0])) / 2, H * 0.03), state, font=small, fill=tuple(int(c) for c in rng.integers(0, 200, 3)))
    fill = _dark(rng)
    pool_l = LETTERS.replace("O", "")  # US labels write O as 0 (synth_plates.render_us)
    if rng.random() < 0.75:  # two rows: 12 / ABC, ABC / 12, 123 / 45
        a = _rand_chars(rng, _pick(rng, [DIGITS, pool_l, pool_l + DIGITS]), int(rng.integers(2, 4)))
        z = _rand_chars(rng, _pick(rng, [DIGITS, pool_l, pool_l + DIGITS]), int(rng.integers(2, 5)))
        ch = H * rng.uniform(0.3, 0.34)
        font = _font(_pick(rng, latin), int(ch * 1.3))
        _draw_glyphs(d, rng, W * 0.08, H * 0.38, [a], [font], ch, fill, "", 0.3, W * 0.84)
        _draw_glyphs(d, rng, W * 0.08, H * 0.77, [z], [font], ch, fill, "", 0.3, W * 0.84)
        label = a + z
    else:
        label = _rand_chars(rng, pool_l + DIGITS, int(rng.integers(4, 7)))
        ch = H * rng.uniform(0.5, 0.6)
        font = _font(_pick(rng, latin), int(ch * 1.3))
        _draw_glyphs(d, rng, W * 0.05, H * 0.6, [label], [font], ch, fill, "", 0.3, W * 0.9)
    _bolts(rng, d, W, H, H * 0.3)
    return img, label


def render_br2(rng) -> tuple[Image.Image, str]:
    """Brazilian motorcycle plate: old grey (city name, ABC above 1234) or Mercosul (BRASIL
    band, ABC above 1D23)."""
    latin, _ = available_fonts()
    mercosul = rng.random() < 0.5
    if mercosul:
        W, H = 200 * 1.2, 170 * 1.2
        W, H = int(W), int(H)
        img = _background(rng, W, H, (245, 245, 245))
        d = ImageDraw.Draw(img)
        d.rectangle([0, 0, W, H * 0.18], fill=(0, 60, 150))
        f = _font(_pick(rng, latin), int(H * 0.11))
        d.text((W * 0.32, H * 0.03), "BRASIL", font=f, fill=(255, 255, 255))
        top_txt = _rand_chars(rng, LETTERS, 3)
        bot_txt = _rand_chars(rng, DIGITS, 1) + _rand_chars(rng, LETTERS, 1) + _rand_chars(rng, DIGITS, 2)
        y_top, y_bot, ch = H * 0.4, H * 0.76, H * rng.uniform(0.26, 0.3)
    else:
        W, H = int(187 * 1.3), int(136 * 1.3)
        grey = int(rng.integers(150, 215))
        img = _background(rng, W, H, (grey, grey, grey - int(rng.integers(0, 25))))
        d = ImageDraw.Draw(img)
        f = _font(_pick(rng, latin), int(H * 0.1))
        city = _pick(rng, BR_CITIES)
        b = f.getbbox(city)
        d.text(((W - (b[2] - b[0])) / 2, H * 0.03), city, font=f, fill=(30, 30, 30))
        top_txt, bot_txt = _rand_chars(rng, LETTERS, 3), _rand_chars(rng, DIGITS, 4)
        y_top, y_bot, ch = H * 0.38, H * 0.75, H * rng.uniform(0.27, 0.32)
    d.rectangle([0, 0, W - 1, H - 1], outline=(30, 30, 30), width=int(rng.integers(2, 6)))
    font = _font(_pick(rng, latin), int(ch * 1.3))
    _draw_glyphs(d, rng, W * 0.08, y_top, [top_txt], [font], ch, (15, 15, 15), "", 0.3, W * 0.84)
    _draw_glyphs(d, rng, W * 0.06, y_bot, [bot_txt], [font], ch, (15, 15, 15), "", 0.3, W * 0.88)
    return img, top_txt + bot_txt


def render_cn2(rng) -> tuple[Image.Image, str]:
    """Chinese yellow two-row rear plate (440 x 220 mm): province and city letter smaller on top
    (about 0.65 of the serial's height), the five-character serial big below."""
    latin, cjk = available_fonts()
    W, H = 440, 220
    img = _background(rng, W, H, (240, 190, 20))
    d = ImageDraw.Draw(img)
    d.rectangle([4, 4, W - 5, H - 5], outline=(20, 20, 20), width=int(rng.integers(2, 5)))
    prov, city, serial = cn_text(rng, "yellow")
    ch_bot = H * rng.uniform(0.4, 0.46)
    ch_top = ch_bot * rng.uniform(0.6, 0.72)
    top_fonts = [_font(_pick(rng, latin), int(ch_top * 1.3)), _font(_pick(rng, cjk), int(ch_top * 1.1))]
    bot_fonts = [_font(_pick(rng, latin), int(ch_bot * 1.3)), _font(_pick(rng, cjk), int(ch_bot * 1.1))]
    _draw_glyphs(d, rng, W * 0.3, H * 0.24, [prov, city], top_fonts, ch_top, (15, 15, 15), "·", 0.35, W * 0.4)
    _draw_glyphs(d, rng, W * 0.05, H * 0.68, [serial], bot_fonts, ch_bot, (15, 15, 15), "", 0.3, W * 0.9)
    return img, prov + city + serial


RENDERERS_2ROW = {"eu": render_eu2, "us": render_us2, "br": render_br2, "cn": render_cn2}


def render2(rng: np.random.Generator, region: str | None = None, robust: bool = False) -> tuple[np.ndarray, str, str]:
    """One two-row plate through the camera: (BGR crop, label, region); ``robust`` as in
    ``synth_plates.camera``."""
    if region is None:
        region = _pick(rng, ["eu", "eu", "us", "br", "cn"])
    plate, label = RENDERERS_2ROW[region](rng)
    # not "cn": camera squashes Chinese crops to LPRNet's 94x24, which only fits one-row plates
    return camera(rng, plate, "2row", robust=robust), label, region


def sample2(seed: int, index: int, region: str | None = None) -> tuple[np.ndarray, str, str]:
    """Two-row sample ``index`` of the stream for ``seed``: (BGR crop, label, region). Its own
    random stream, so mixing it with ``synth_mix.sample(seed, index)`` repeats nothing."""
    return render2(np.random.default_rng([seed, index, 2]), region)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output folder (PNG files and labels.csv)")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--region", choices=REGIONS_2ROW, default=None, help="only this region")
    args = ap.parse_args()
    write_pngs(args.out, (sample2(args.seed, i, args.region) for i in range(args.count)), args.seed, "synthetic-2row",
               suffix="2")
    print(f"wrote {args.count} crops to {args.out}")


if __name__ == "__main__":
    main()
