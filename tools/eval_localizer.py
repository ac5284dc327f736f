"""Evaluate the plate localisers side by side: the learnt detector and the classic OpenCV search.

    python -m tools.eval_localizer                      # both, validation split, dev data in ../shared/data
    python -m tools.eval_localizer --type classic --split all --misses

For each localiser (as ``stages.load_localizer`` builds it from a ``localizer`` config section):

- dev frames (``plates-real-dev/frames/frames.csv``, one labelled plate each; ``--split val`` is
  the split by plate that the detector never trained on): recall@1 and recall@k at IoU >= --iou,
  overall and per region, candidates per frame, ms per frame;
- many-country car photos (``plates-openimages-dev``, validation split by file): recall@k of the
  plates at least 60 px wide, 30-59 px and smaller;
- no-plate scenes (``scenes-neg``, validation split by file): the share of photos with any
  candidate, and ms per photo.

Times are one thread, the process alone on a core (the machine's load average is printed). The
data is read where it lies; nothing is copied.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from edge_ocr.capture.quad import bounding_box, iou
from edge_ocr.config import LocalizerConfig
from edge_ocr.stages import load_localizer
from tools.detector_data import DATA, Photo, load_frames, load_openimages, load_scenes


def _gt_box(q) -> tuple[int, int, int, int]:
    return bounding_box(q, 1 << 20, 1 << 20)


def frames_report(loc, photos: list[Photo], k: int, thr: float) -> tuple[dict, list[str]]:
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    misses = []
    for ph in photos:
        region = ph.region
        gt = _gt_box(ph.quads[0])
        t0 = time.perf_counter()
        cands = loc.find(ph.image)[:k]
        dt = time.perf_counter() - t0
        ious = [iou(c.box, gt) for c in cands]
        for key in ("all", region):
            per[key]["hit"].append(float(any(v >= thr for v in ious)))
            per[key]["hit1"].append(float(bool(ious) and ious[0] >= thr))
            per[key]["n"].append(float(len(cands)))
            per[key]["ms"].append(dt * 1000)
        if not any(v >= thr for v in ious):
            misses.append(f"{region} gt={gt} best_iou={max(ious, default=0):.2f} cands={[c.box for c in cands]}")
    return per, misses


def openimages_report(loc, photos: list[Photo], k: int, thr: float) -> dict[str, tuple[int, int]]:
    bins = {">=60 px": [0, 0], "30-59 px": [0, 0], "<30 px": [0, 0]}
    for ph in photos:
        boxes = [c.box for c in loc.find(ph.image)[:k]]
        for q in ph.quads:
            gt = _gt_box(q)
            key = ">=60 px" if gt[2] >= 60 else "30-59 px" if gt[2] >= 30 else "<30 px"
            bins[key][0] += 1
            bins[key][1] += any(iou(b, gt) >= thr for b in boxes)
    return {k: (v[0], v[1]) for k, v in bins.items()}


def scenes_report(loc, scenes) -> tuple[int, float]:
    hits, ms = 0, []
    for img in scenes:
        t0 = time.perf_counter()
        hits += bool(loc.find(img))
        ms.append((time.perf_counter() - t0) * 1000)
    return hits, statistics.median(ms) if ms else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding plates-real-dev, plates-openimages-dev, scenes-neg")
    ap.add_argument("--type", choices=["learnt", "classic", "both"], default="both")
    ap.add_argument("--split", choices=["val", "train", "all"], default="val")
    ap.add_argument("--iou", type=float, default=0.5, help="IoU that counts as found")
    ap.add_argument("--k", type=int, default=5, help="candidates kept per frame")
    ap.add_argument("--min-score", type=float, default=None, help="default: the localiser type's")
    ap.add_argument("--work-width", type=int, default=None, help="default: the localiser type's")
    ap.add_argument("--model", default=None, help="learnt: ONNX file (default: the config's)")
    ap.add_argument("--misses", action="store_true", help="list the frames whose plate was not found")
    args = ap.parse_args(argv)

    frames_dir = args.data / "plates-real-dev" / "frames"
    if not (frames_dir / "frames.csv").is_file():
        print(f"error: {frames_dir / 'frames.csv'} not found", file=sys.stderr)
        return 2
    splits = ["train", "val"] if args.split == "all" else [args.split]
    photos = [p for s in splits for p in load_frames(frames_dir, s)]
    oi = [p for s in splits for p in load_openimages(args.data / "plates-openimages-dev", s)]
    scenes = [img for s in splits for img in load_scenes(args.data / "scenes-neg", s)]
    print(f"{len(photos)} frames, {len(oi)} many-country photos, {len(scenes)} no-plate scenes ({args.split} split); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for kind in (["learnt", "classic"] if args.type == "both" else [args.type]):
        extra = {"model": args.model} if args.model and kind == "learnt" else {}
        cfg = LocalizerConfig(type=kind, min_score=args.min_score, work_width=args.work_width,
                              max_candidates=args.k, **extra)
        loc = load_localizer(cfg)
        per, misses = frames_report(loc, photos, args.k, args.iou)
        print(f"\n{kind}: top-{args.k}, min_score {cfg.setting('min_score')}, work width {cfg.setting('work_width')}, "
              f"IoU >= {args.iou}")
        print(f"{'region':8} {'frames':>6} {'recall@k':>9} {'recall@1':>9} {'cand mean':>9} {'ms/frame':>8}")
        for key in ["all"] + sorted(k for k in per if k != "all"):
            d = per[key]
            print(f"{key:8} {len(d['hit']):6d} {100 * statistics.mean(d['hit']):8.1f}% "
                  f"{100 * statistics.mean(d['hit1']):8.1f}% {statistics.mean(d['n']):9.2f} "
                  f"{statistics.median(d['ms']):8.1f}")
        bins = openimages_report(loc, oi, args.k, args.iou)
        print("many-country photos, recall@k: " + ", ".join(
            f"{k} {100 * f / max(n, 1):.1f} % ({f}/{n})" for k, (n, f) in bins.items()))
        hits, ms = scenes_report(loc, scenes)
        print(f"no-plate scenes with a candidate: {hits}/{len(scenes)} ({100 * hits / max(len(scenes), 1):.1f} %), "
              f"{ms:.1f} ms/photo p50")
        if args.misses:
            print("missed:\n  " + "\n  ".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
