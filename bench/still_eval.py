"""Whole photos as ``POST /api/ocr`` reads them: is the best plate it returns the car's plate?

    python -m bench.still_eval --frames ../shared/data/plates-real-dev/frames/frames.csv
    python -m bench.still_eval --frames ... --regions own --json still.json

Each photo of ``frames.csv`` (one annotated plate) goes through ``still.StillReader`` exactly as
an upload does (localise, read every candidate with re-reads of unsure crops, rank), with the
shipped config's reader and ``formats.regions`` = the config's (``shipped``) or the photo's own
region (``own``). Reported per region: **best** (the answer's top plate is the plate), **any**
(some returned plate is), **crop** (the annotated box + 8 % margin cut from the same photo and
read by the same reader as a crop: what the recogniser can do without the localiser), and the
localiser's recall (a candidate box overlapping the annotated box by IoU >= 0.5, among all it
returns). The gap between *best* and *crop* is what the localiser's boxes and the ranking lose.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2

from bench.video_eval import add_photo_args, same_plate
from bench.video_scene import Car, load_cars, plate_crop
from edge_ocr.capture.quad import iou
from edge_ocr.config import load_config
from edge_ocr.serve.still import StillReader
from edge_ocr.stages import load_localizer, load_recognizer, plate_reader

SECTION = "## Whole photos, as `POST /api/ocr` reads them"  # in BENCHMARKS.md, kept by `python -m bench`


def evaluate(cars: list[Car], photos: Path, config: Path, mode: str) -> dict[str, Any]:
    cfg = load_config(str(config))
    rec = load_recognizer(cfg.recognizer)
    readers: dict[str, StillReader] = {}

    def reader_for(region: str) -> StillReader:
        key = "shipped" if mode == "shipped" else region
        if key not in readers:
            c = cfg if mode == "shipped" else cfg.model_copy(
                update={"formats": cfg.formats.model_copy(update={"regions": [region]})})
            readers[key] = StillReader(plate_reader(c, rec, load_localizer(c.localizer)),
                                       c.recognizer.min_confidence)
        return readers[key]

    rows = []
    t0 = time.monotonic()
    for car in cars:
        photo = cv2.imread(str(photos / car.file), cv2.IMREAD_COLOR)
        if photo is None:
            raise FileNotFoundError(f"{photos / car.file}: cannot read the photo")
        still = reader_for(car.region)
        answer = still.read(photo)
        crop = still.read(plate_crop(photo, car.box), crop=True)
        texts = [p["text"] for p in answer["plates"]]
        boxes = [tuple(p["box"]) for p in answer["plates"] if "box" in p]
        rows.append({
            "file": car.file, "text": car.text, "region": car.region, "best": answer["text"], "plates": texts,
            "best_ok": same_plate(answer["text"], car.text, car.region),
            "any_ok": any(same_plate(t, car.text, car.region) for t in texts),
            "crop": crop["text"], "crop_ok": same_plate(crop["text"], car.text, car.region),
            "found": any(iou(b, car.box) >= 0.5 for b in boxes), "ms": answer["ms"],
        })
    return {"rows": rows, "summary": summarise(rows), "mode": mode, "wall_s": round(time.monotonic() - t0, 1)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        n = max(len(rs), 1)
        return {"photos": len(rs), **{f"{k}_pct": round(100 * sum(r[f"{k}_ok"] for r in rs) / n, 1)
                                      for k in ("best", "any", "crop")},
                "found_pct": round(100 * sum(r["found"] for r in rs) / n, 1),
                "crop_right_best_not": sum(r["crop_ok"] and not r["best_ok"] for r in rs)}

    regions = sorted({r["region"] for r in rows})
    return {"overall": block(rows), **{g: block([r for r in rows if r["region"] == g]) for g in regions}}


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| photos | n | best plate right | any plate right | crop right | crop right, best not | plate box found |",
             "|---|---|---|---|---|---|---|"]
    for k, b in summary.items():
        lines.append(f"| {k} | {b['photos']} | {b['best_pct']} % | {b['any_pct']} % | {b['crop_pct']} % | "
                     f"{b['crop_right_best_not']} | {b['found_pct']} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_photo_args(ap, "each photo's own region")
    ap.add_argument("--json", type=Path, default=None, help="write every photo's result here")
    args = ap.parse_args(argv)
    if not args.frames.exists():
        print(f"{args.frames}: no such file (frames.csv of annotated photos)", file=sys.stderr)
        return 2
    res = evaluate(load_cars(args.frames), args.frames.parent, args.config, args.regions)
    print(table(res["summary"]))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
