"""Plate crops cut the way the daemon cuts them: the shipped detector run on labelled full frames.

The recogniser learnt from crops whose boxes a person drew; on a camera it reads what the learnt
detector cuts (a little looser or tighter, tilted, from a frame scaled down to the camera's
resolution). This writes, for every *train-split* frame of ``frames.csv`` (split by plate, as
``tools/evaluate.split_of``), the detector's crop of the labelled plate at a few frame scales,
and a ``labels.csv`` in the crops' format that also lists the given crop labels, so one
``tools/train.py --real`` file mixes both::

    python -m tools.detector_crops ../shared/data/plates-real-dev/frames/frames.csv \\
        runs/detcrops --also ../shared/data/plates-real-dev/crops/labels.csv

Validation frames are never written.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2

from edge_ocr.capture.quad import iou
from edge_ocr.config import Config
from edge_ocr.stages import load_localizer
from tools.evaluate import split_of

SCALES = (1.0, 0.6, 0.4)


def plate_crop(loc, image, gt: tuple[int, int, int, int]):
    """The crop of the candidate that overlaps the labelled box most (IoU ≥ 0.3), else None."""
    best, best_iou = None, 0.3
    for c in loc.find(image):
        o = iou(c.box, gt)
        if o >= best_iou:
            best, best_iou = c.crop, o
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frames", type=Path, help="frames.csv (file,x,y,w,h,text,region)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--also", type=Path, default=None, help="a crops labels.csv to list as well")
    args = ap.parse_args(argv)
    loc = load_localizer(Config().localizer)
    out_rows, missed = [], 0
    (args.out / "det").mkdir(parents=True, exist_ok=True)
    with open(args.frames, encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if split_of(r["text"], r["region"]) == "train"]
    for r in rows:
        image = cv2.imread(str(args.frames.parent / r["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{r['file']}: cannot read the frame")
        for s in SCALES:
            img = image if s == 1.0 else cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            gt = tuple(int(round(int(r[k]) * s)) for k in ("x", "y", "w", "h"))
            crop = plate_crop(loc, img, gt)
            if crop is None:
                missed += 1
                continue
            name = f"det/{Path(r['file']).stem}-{int(s * 100)}.png"
            cv2.imwrite(str(args.out / name), crop)
            out_rows.append({"file": name, "text": r["text"], "region": r["region"], "source": "detector-frames"})
    if args.also:
        with open(args.also, encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                r["file"] = str((args.also.parent / r["file"]).resolve())
                out_rows.append(r)
    with open(args.out / "labels.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "text", "region", "source"])
        w.writeheader()
        w.writerows(out_rows)
    made = sum(r["source"] == "detector-frames" for r in out_rows)
    print(f"{len(rows)} train frames x {len(SCALES)} scales: {made} detector crops, {missed} missed; "
          f"{len(out_rows)} rows in {args.out / 'labels.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
