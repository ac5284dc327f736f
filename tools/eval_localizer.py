"""Evaluate the plate localiser on full frames with one labelled plate each.

Reads ``frames.csv`` (file,x,y,w,h,text,region; the box in original pixels) and reports, overall
and per region: recall at IoU >= --iou for the best candidate among the top k, recall of the top
candidate alone, mean and median candidates per frame, and the mean time per frame.

    python -m tools.eval_localizer --frames ../shared/data/plates-real-dev/frames

The data is read where it lies; nothing is copied.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2

from edge_ocr.capture.quad import iou
from edge_ocr.config import LocalizerConfig
from edge_ocr.find.localize import Localizer

DEFAULT_FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "plates-real-dev" / "frames"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=Path, default=DEFAULT_FRAMES, help="folder holding frames.csv")
    ap.add_argument("--iou", type=float, default=0.5, help="IoU that counts as found")
    ap.add_argument("--k", type=int, default=LocalizerConfig().max_candidates, help="candidates kept per frame")
    ap.add_argument("--min-score", type=float, default=LocalizerConfig().min_score)
    ap.add_argument("--work-width", type=int, default=960, help="localiser working width, px")
    ap.add_argument("--misses", action="store_true", help="list the frames whose plate was not found")
    args = ap.parse_args(argv)

    csv_path = args.frames / "frames.csv"
    if not csv_path.is_file():
        print(f"error: {csv_path} not found", file=sys.stderr)
        return 2
    loc = Localizer(max_candidates=args.k, min_score=args.min_score, work_width=args.work_width)
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    misses = []
    for row in rows:
        img = cv2.imread(str(args.frames / row["file"]))
        if img is None:
            print(f"warning: cannot read {row['file']}", file=sys.stderr)
            continue
        gt = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
        t0 = time.perf_counter()
        cands = loc.find(img)
        dt = time.perf_counter() - t0
        ious = [iou(c.box, gt) for c in cands]
        hit = any(v >= args.iou for v in ious)
        hit1 = bool(ious) and ious[0] >= args.iou
        for key in ("all", row["region"]):
            per[key]["hit"].append(float(hit))
            per[key]["hit1"].append(float(hit1))
            per[key]["n"].append(float(len(cands)))
            per[key]["ms"].append(dt * 1000)
        if not hit:
            misses.append(f"{row['file']} gt={gt} best_iou={max(ious, default=0):.2f} cands={[c.box for c in cands]}")

    print(f"localiser: top-{args.k}, min_score {args.min_score}, work width {args.work_width}, IoU >= {args.iou}")
    print(
        f"{'region':8} {'frames':>6} {'recall@k':>9} {'recall@1':>9} {'cand mean':>9} {'cand med':>8} {'ms/frame':>8}"
    )
    for key in ["all"] + sorted(k for k in per if k != "all"):
        d = per[key]
        print(
            f"{key:8} {len(d['hit']):6d} {100 * statistics.mean(d['hit']):8.1f}% {100 * statistics.mean(d['hit1']):8.1f}% "
            f"{statistics.mean(d['n']):9.2f} {statistics.median(d['n']):8.1f} {statistics.mean(d['ms']):8.1f}"
        )
    if args.misses:
        print("\nmissed:")
        for m in misses:
            print("  " + m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
