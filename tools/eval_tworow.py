"""How well ``tworow.find_rows`` tells two-row plate crops from one-row ones, and what it costs.

    python -m tools.eval_tworow --crops ../shared/data/plates-real-dev/crops/labels.csv
    python -m tools.eval_tworow --synth 300 --neg 600 --no-real      # rendered plates only

Prints one table: per real source (openalpr-td-2row are two-row, every other source one-row) and
per rendered set (two-row: ``synth_tworow.sample2``, split into true two-row layouts and the US
motorcycle layouts that print the serial in one row; one-row: ``synth_mix.sample`` recipes 1
and 2 without their two-row share) the crops found two-row, and the median/p95 time of one
``find_rows`` call on a 100x70 crop (two-row and one-row plates resized to it) and on the real
one-row crops as they come (most leave at the aspect gate). ``--misses DIR`` writes the missed
two-row and the false-positive crops there to look at.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from edge_ocr.capture.grey import to_grey
from edge_ocr.read.tworow import find_rows
from tools import synth_mix, synth_plates, synth_tworow

TWO_ROW_SOURCES = {"openalpr-td-2row"}


def _us2_one_row(seed: int, index: int) -> bool:
    """Whether ``sample2(seed, index)`` is a US motorcycle plate with its serial in one row (the
    renderer draws one group of glyphs then, two otherwise)."""
    calls = []
    orig = synth_tworow._draw_glyphs
    synth_tworow._draw_glyphs = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        synth_tworow.sample2(seed, index)
    finally:
        synth_tworow._draw_glyphs = orig
    return len(calls) == 1


def _one_row_samples(seed: int, n: int, recipe: int):
    """``n`` one-row rendered crops of ``synth_mix.sample`` (the recipe's two-row share skipped)."""
    i = 0
    got = 0
    while got < n:
        rng = np.random.default_rng([seed, i])
        if synth_plates._pick(rng, synth_mix.MIX[recipe]) != "2row":
            img, _label, region = synth_mix.sample(seed, i, recipe=recipe)
            yield img, region
            got += 1
        i += 1


def _time(crops: list[np.ndarray], repeat: int = 3) -> tuple[float, float]:
    """(p50, p95) of one find_rows call in ms, each crop timed ``repeat`` times (best kept)."""
    ts = []
    for g in crops:
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            find_rows(g)
            best = min(best, time.perf_counter() - t)
        ts.append(best * 1e3)
    return float(np.percentile(ts, 50)), float(np.percentile(ts, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=Path, default=ROOT.parent.parent / "shared/data/plates-real-dev/crops/labels.csv",
                    help="labels.csv of the real crops (file,text,region,source)")
    ap.add_argument("--no-real", action="store_true", help="rendered plates only")
    ap.add_argument("--synth", type=int, default=300, help="rendered two-row plates (sample2, seed --seed)")
    ap.add_argument("--neg", type=int, default=600, help="rendered one-row plates per recipe (1 and 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--misses", type=Path, default=None, help="write missed / falsely found crops here")
    args = ap.parse_args()
    if args.misses:
        args.misses.mkdir(parents=True, exist_ok=True)

    table: list[tuple[str, int, int, str]] = []  # (set, found, total, kind)
    timing_two: list[np.ndarray] = []
    timing_one: list[np.ndarray] = []
    timing_raw: list[np.ndarray] = []

    def note(g: np.ndarray, found: bool, positive: bool, name: str) -> None:
        if args.misses and found != positive:
            cv2.imwrite(str(args.misses / f"{'miss' if positive else 'fp'}-{name}.png"), g)

    if not args.no_real:
        if not args.crops.is_file():
            sys.exit(f"no labels file {args.crops} (give --crops or --no-real)")
        stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        us: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        with open(args.crops, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                img = cv2.imread(str(args.crops.parent / r["file"]))
                if img is None:
                    sys.exit(f"cannot read crop {r['file']}")
                g = to_grey(img)
                found = find_rows(g) is not None
                pos = r["source"] in TWO_ROW_SOURCES
                stats[r["source"]][0] += found
                stats[r["source"]][1] += 1
                if r["region"] == "us":
                    us[r["source"]][0] += found
                    us[r["source"]][1] += 1
                note(g, found, pos, Path(r["file"]).stem)
                small = cv2.resize(g, (100, 70), interpolation=cv2.INTER_AREA)
                (timing_two if pos else timing_one).append(small)
                if not pos:
                    timing_raw.append(g)
        for src in sorted(stats, key=lambda s: (s not in TWO_ROW_SOURCES, s)):
            table.append((f"real {src}", *stats[src], "two-row" if src in TWO_ROW_SOURCES else "one-row"))
        for src in sorted(us):
            table.append((f"  of which US ({src})", *us[src], "one-row"))

    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in range(args.synth):
        img, _label, region = synth_tworow.sample2(args.seed, i)
        key = "us one-row moto" if region == "us" and _us2_one_row(args.seed, i) else region
        g = to_grey(img)
        found = find_rows(g) is not None
        per[key][0] += found
        per[key][1] += 1
        note(g, found, key != "us one-row moto", f"s2-{key}-{i}")
        if len(timing_two) < 400:
            timing_two.append(cv2.resize(g, (100, 70), interpolation=cv2.INTER_AREA))
    two = [k for k in per if k != "us one-row moto"]
    table.append(("synth two-row (sample2)", sum(per[k][0] for k in two), sum(per[k][1] for k in two), "two-row"))
    for k in sorted(per):
        table.append((f"  {k}", *per[k], "(one-row layout)" if k == "us one-row moto" else "two-row"))

    for recipe in (1, 2):
        by_region: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for k, (img, region) in enumerate(_one_row_samples(args.seed, args.neg, recipe)):
            g = to_grey(img)
            found = find_rows(g) is not None
            by_region[region][0] += found
            by_region[region][1] += 1
            note(g, found, False, f"r{recipe}-{region}-{k}")
            if len(timing_one) < 2000:
                timing_one.append(cv2.resize(g, (100, 70), interpolation=cv2.INTER_AREA))
        table.append((f"synth one-row recipe {recipe}", sum(v[0] for v in by_region.values()),
                      sum(v[1] for v in by_region.values()), "one-row"))
        for reg in sorted(by_region):
            table.append((f"  {reg}", *by_region[reg], "one-row"))

    print(f"{'set':40s} {'found':>7s} {'total':>6s} {'rate':>7s}  kind")
    for name, f, n, kind in table:
        print(f"{name:40s} {f:7d} {n:6d} {100 * f / max(n, 1):6.1f}%  {kind}")
    for name, crops in (("two-row plates at 100x70", timing_two), ("one-row plates at 100x70", timing_one),
                        ("real one-row crops as they come", timing_raw)):
        if crops:
            p50, p95 = _time(crops)
            print(f"find_rows ms, {name:32s} p50 {p50:.3f}  p95 {p95:.3f}  (n={len(crops)})")


if __name__ == "__main__":
    main()
