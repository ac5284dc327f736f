"""How well the shipped recogniser reads Latin plates of countries outside the four regions, with
``formats.regions: [generic]`` (issue 25, item 3; the layouts and why: docs/plate-formats.md).

    python -m tools.eval_generic                                  # shipped INT8 model, 100 a layout
    python -m tools.eval_generic MODEL --n 200 --degrade 0.5 --out /tmp/generic   # + the PNGs

Renders, with ``tools.synth_fast``, plates in eight real layouts of countries whose layouts no
region of the training recipe names (its generic Latin plates are random groups, so a string of
such a layout turns up there only by chance), through the fast renderer's camera at a moderate
``--degrade``, and reads each with the product's reader (``tools.evaluate.reader_for``: one read
by default, the formats of the regions given). These are our own renders, not photos: the
figure is an upper bound for real plates of those countries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tools.evaluate import normalise, reader_for
from tools.synth_fast import Layout, camera, compose
from tools.synth_plates import CHARSET, DIGITS, LETTERS, _pick, _rand_chars, write_pngs

_NO_VOWELS = "BCDFGHJKLPRSTVWXYZ"  # Chile's serials since 2007 skip vowels (and M, N, Q, N with tilde)
_INDIA_STATES = ["MH", "DL", "KA", "TN", "UP", "GJ", "RJ", "KL", "WB", "HR", "PB", "AP", "TS", "MP"]
_NIGERIA_STATES = ["LAGOS", "ABUJA", "KANO", "RIVERS", "OYO", "KADUNA", "ENUGU"]


def _d(rng, n: int) -> str:
    return _rand_chars(rng, DIGITS, n)


def _l(rng, n: int, pool: str = LETTERS) -> str:
    return _rand_chars(rng, pool, n)


# name -> (continent, layout, text, plate look). Colours BGR; aspect is the plate's width/height.
LAYOUTS = {
    "Canada (Ontario)": ("North America", "LLLLDDD", lambda r: [_l(r, 4), _d(r, 3)],
                         lambda r: Layout(2.0, (245, 245, 245), (120, 40, 10), top="ONTARIO",
                                          bottom="YOURS TO DISCOVER", char_h=(0.62, 0.78))),
    "Chile": ("South America", "LLLLDD", lambda r: [_l(r, 2, _NO_VOWELS), _l(r, 2, _NO_VOWELS), _d(r, 2)],
              lambda r: Layout(2.75, (245, 245, 245), (15, 15, 15), sep="·", top="CHILE", char_h=(0.65, 0.78))),
    "Australia (Victoria)": ("Oceania", "DLLDLL", lambda r: [_d(r, 1) + _l(r, 2), _d(r, 1) + _l(r, 2)],
                             lambda r: Layout(2.75, (245, 245, 245), (110, 40, 20), sep=_pick(r, [" ", "·"]),
                                              top="VICTORIA", bottom="THE EDUCATION STATE", char_h=(0.62, 0.78))),
    "India": ("Asia", "LLDDLLDDDD", lambda r: [_pick(r, _INDIA_STATES), _d(r, 2), _l(r, 2), _d(r, 4)],
              lambda r: Layout(4.2, (245, 245, 245), (15, 15, 15), band=(160, 60, 20) if r.random() < 0.5 else None,
                               band_w=0.07, band_text="IND", char_h=(0.62, 0.76))),
    "Indonesia": ("Asia", "LDDDDLLL", lambda r: [_l(r, 1), _d(r, 4), _l(r, 3)],
                  lambda r: (Layout(3.2, (20, 20, 20), (235, 235, 235), char_h=(0.6, 0.74)) if r.random() < 0.6
                             else Layout(3.2, (245, 245, 245), (15, 15, 15), char_h=(0.6, 0.74)))),
    "Turkey": ("Europe/Asia", "DDLLLDD", lambda r: [f"{int(r.integers(1, 82)):02d}", _l(r, 3), _d(r, 2)],
               lambda r: Layout(520 / 110, (245, 245, 245), (15, 15, 15), band=(160, 50, 0), band_w=0.08,
                                band_text="TR", char_h=(0.62, 0.76))),
    "Nigeria": ("Africa", "LLLDDDLL", lambda r: [_l(r, 3), _d(r, 3) + _l(r, 2)],
                lambda r: Layout(2.0, (245, 245, 240), (40, 110, 20), sep="-", top="FEDERAL REPUBLIC OF NIGERIA",
                                 bottom=_pick(r, _NIGERIA_STATES), char_h=(0.6, 0.76))),
    "Kenya": ("Africa", "LLLDDDL", lambda r: ["K" + _l(r, 2), _d(r, 3) + _l(r, 1)],
              lambda r: Layout(520 / 114, (40, 205, 250) if r.random() < 0.5 else (245, 245, 245), (15, 15, 15),
                               char_h=(0.64, 0.78))),
}


def render(seed: int, index: int, name: str, degrade: float) -> tuple[np.ndarray, str, str]:
    """Plate ``index`` of layout ``name``: (BGR crop, label, "generic"). Deterministic."""
    rng = np.random.default_rng([seed, index, sorted(LAYOUTS).index(name)])
    _continent, _layout, text, look = LAYOUTS[name]
    groups = text(rng)
    lay = look(rng)
    plate = compose(rng, groups, lay, height=56 if lay.aspect > 3 else 72)
    return camera(rng, plate, "generic", degrade), "".join(groups), "generic"


def evaluate(model: str, n: int, seed: int, degrade: float, regions: str, retry_below: float,
             out: Path | None = None) -> dict:
    """Exact match per layout and overall, read with ``formats.regions`` = ``regions``."""
    res, right_all = {}, 0
    reader = reader_for(model, "", regions, "greedy", retry_below)
    for name, (continent, layout, _text, _look) in LAYOUTS.items():
        samples = [render(seed, i, name, degrade) for i in range(n)]
        readings = reader.read_crops([s[0] for s in samples])
        right = sum(normalise(p.reading.text, "generic", CHARSET) == label
                    for p, (_img, label, _r) in zip(readings, samples, strict=True))
        res[name] = {"continent": continent, "layout": layout, "n": n, "exact": round(right / n, 4)}
        right_all += right
        if out is not None:
            write_pngs(out / name.split(" ")[0].lower(), samples, seed, "generic-" + name)
    res["overall"] = {"n": n * len(LAYOUTS), "exact": round(right_all / (n * len(LAYOUTS)), 4)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="models/plate_crnn_int8.onnx")
    ap.add_argument("--n", type=int, default=100, help="plates per layout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--degrade", type=float, default=0.5, help="camera degradation, 0 (clean) to 1 (training streams 0.75)")
    ap.add_argument("--regions", default="generic",
                    help="formats.regions for the reader: a comma list (default generic), or all (no formats)")
    ap.add_argument("--retry-below", type=float, default=0.0,
                    help="re-read less confident crops from re-cut copies (recognizer.retry_below); 0 = one read")
    ap.add_argument("--out", type=Path, default=None, help="also write the rendered crops here (PNG + labels.csv)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = evaluate(args.model, args.n, args.seed, args.degrade, args.regions, args.retry_below, args.out)
    if args.json:
        print(json.dumps(res))
        return
    print(f"{args.model}, formats.regions [{args.regions}], degrade {args.degrade}, {args.n} plates a layout, "
          f"retry below {args.retry_below}")
    print("| layout | continent | pattern | exact |\n|---|---|---|---|")
    for name, v in res.items():
        if name != "overall":
            print(f"| {name} | {v['continent']} | `{v['layout']}` | {100 * v['exact']:.0f} % |")
    print(f"| **all {res['overall']['n']}** | | | **{100 * res['overall']['exact']:.1f} %** |")


if __name__ == "__main__":
    main()
