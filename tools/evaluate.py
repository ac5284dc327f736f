"""Accuracy and speed of a recogniser model on labelled crops.

    python -m tools.evaluate models/plate_crnn_int8.onnx ../shared/data/plates-real-dev/crops/labels.csv
    python -m tools.evaluate MODEL LABELS.csv --split val --json

LABELS.csv has columns file,text[,region] with files relative to the CSV. Both label and
reading are normalised the same way before comparing (uppercase, separators dropped, on US
plates letter O read as digit 0 — see models/MODEL_CARD.md). Reports exact-plate accuracy,
character error rate (edit distance / label length), both per region; accuracy and share of
readings at or above the publish threshold; the 20 commonest character confusions; median and
p95 latency per crop at batch 1 on 1 thread.
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from edge_ocr.config import Config, RecognizerConfig, override
from edge_ocr.read.reading import PlateReader
from edge_ocr.read.textdist import edit_path
from edge_ocr.stages import Stages
from edge_ocr.types import Reading

STILL_RETRY_BELOW = RecognizerConfig().retry_below  # what a still image gets by default


def normalise(text: str, region: str, charset: str) -> str:
    t = "".join(ch for ch in text.upper() if ch in charset)
    return t.replace("O", "0") if region == "us" else t


def split_of(text: str, region: str) -> str:
    """Same split as tools/train.py: one in three plates is validation, never trained on.

    Chosen by the plate (region + text), not the file: a source such as ``openalpr-td`` has the
    same car in several crops, and a split by file would put one car on both sides."""
    key = region.lower() + ":" + "".join(ch for ch in text.upper() if ch.isalnum())
    return "val" if int(hashlib.sha1(key.encode()).hexdigest(), 16) % 3 == 0 else "train"


def row_split(row: dict) -> str:
    return split_of(row["text"], row.get("region") or "")


def edit_ops(a: str, b: str) -> tuple[int, list[tuple[str, str]]]:
    """Levenshtein distance from label ``a`` to reading ``b`` and the substitutions on one
    optimal path (as (label char, read char); '' for insertions/deletions), last first."""
    dist, path = edit_path(a, b)
    ops = [(a[i] if i is not None else "", b[j] if j is not None else "") for i, j in reversed(path)
           if i is None or j is None or a[i] != b[j]]
    return dist, ops


_READERS: dict[tuple, Stages] = {}


def reader_for(model: str, region: str, regions: str, decoder: str, retry_below: float) -> PlateReader:
    """The product's reader (``stages.Stages``, as ``/api/ocr?crop=1`` and ``edge-ocr recognize``
    read a crop: format rules included) for crops labelled ``region``: ``regions`` ``label`` reads
    each crop with its own region's characters and formats (none for an unlabelled crop), ``all``
    with no restriction, a comma list with those regions. One model, loaded once."""
    if regions == "all" or (regions == "label" and not region):
        fmt: dict = {"enabled": False}
    else:
        fmt = {"regions": [region] if regions == "label" else [x.strip() for x in regions.split(",") if x.strip()]}
    cfg = override(Config(), "tools.evaluate", formats=fmt, recognizer={
        "model": str(model), "threads": 1, "decoder": decoder, "batch_size": 32, "retry_below": retry_below})
    shared = next((s for s in _READERS.values() if s.cfg.recognizer == cfg.recognizer), None)
    stages = Stages.from_config(cfg, shared.recognizer, shared.cfg.recognizer) if shared else Stages.from_config(cfg)
    _READERS[(str(model), region, regions, decoder, retry_below)] = stages
    return stages.reader


def small_view(img: np.ndarray, width: int, quality: int = 70) -> np.ndarray:
    """A crop as a camera that sees the plate ``width`` px wide cuts it from a video frame:
    shrunk to that width (aspect kept; a narrower crop stays as it is), JPEG-coded at ``quality``.
    ``tools/train.py --real-small`` shows real crops this way too."""
    h, w = img.shape[:2]
    if w > width:
        img = cv2.resize(img, (width, max(8, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def evaluate(model: str, labels: Path, split: str = "all", threshold: float = 0.6, latency_n: int = 200,
             decoder: str = "greedy", formats: str = "", retry_below: float = STILL_RETRY_BELOW,
             regions: str = "label", small_width: int = 0) -> dict:
    """Every crop is read by the product's reader (``reader_for``): what ships, format rules and
    all. ``formats="region"``: the beam decoder with the strict plate formats of the crop's own
    region, as a gate in that country would (``decoder: beam``, ``formats.regions: [xx]``); the
    same as ``decoder="beam"`` (the reader's beam always follows the formats).

    ``regions``: which characters the decoder may emit (region-aware decoding, as the daemon
    does with ``formats.regions``): ``label`` those of each crop's own region, ``all`` no
    restriction, or a comma list such as ``us,eu,br`` for every crop."""
    with open(labels, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if split != "all":
        rows = [r for r in rows if row_split(r) == split]
    imgs, kept = [], []
    unreadable = 0
    for r in rows:
        img = cv2.imread(str(labels.parent / r["file"]), cv2.IMREAD_COLOR)
        if img is None:
            unreadable += 1
            continue
        imgs.append(small_view(img, small_width) if small_width else img)
        kept.append(r)
    readers = {reg: reader_for(model, reg, regions, "beam" if formats == "region" else decoder, retry_below)
               for reg in sorted({r.get("region") or "" for r in kept})}
    readings: list[Reading | None] = [None] * len(kept)
    for reg, reader in readers.items():
        idx = [i for i, r in enumerate(kept) if (r.get("region") or "") == reg]
        for i, p in zip(idx, reader.read_crops([imgs[i] for i in idx]), strict=True):
            readings[i] = p.reading
    rec = next(iter(readers.values())).recognizer if readers else None
    charset = rec.charset if rec else ""
    per: dict[str, dict] = collections.defaultdict(lambda: {"n": 0, "exact": 0, "edits": 0, "chars": 0})
    conf = collections.Counter()
    above = above_ok = 0
    failures = []
    per_source: dict[str, dict] = collections.defaultdict(lambda: {"n": 0, "exact": 0, "edits": 0, "chars": 0})
    for r, rd in zip(kept, readings):
        region = r.get("region") or "all"
        truth = normalise(r["text"], region, charset)
        got = normalise(rd.text, region, charset)
        dist, ops = edit_ops(truth, got)
        for s in (per[region], per["overall"], per_source[r.get("source") or "unknown"]):
            s["n"] += 1
            s["exact"] += got == truth
            s["edits"] += dist
            s["chars"] += len(truth)
        conf.update(f"{a or '∅'}→{b or '∅'}" for a, b in ops)
        if rd.confidence >= threshold:
            above += 1
            above_ok += got == truth
        if got != truth:
            failures.append({"file": r["file"], "truth": truth, "read": got, "confidence": round(rd.confidence, 3)})
    # latency: batch 1, one thread, the way the daemon reads a single crop
    lat, lat_region = [], collections.defaultdict(list)
    # a fixed sample across all regions: plates of different aspect cost different widths (a
    # 2:1 US plate 64 columns, a Chinese one 128), so the overall median depends on the mix and
    # the per-region medians say what one installation will see
    order = np.random.default_rng(0).permutation(len(imgs))
    for i in np.resize(order, latency_n) if imgs else []:
        t = time.perf_counter()
        rec.recognize([imgs[int(i)]], retry_below=retry_below)  # type: ignore[union-attr]
        lat.append((time.perf_counter() - t) * 1000)
        lat_region[kept[int(i)]["region"]].append(lat[-1])
    res = {
        "model": model, "labels": str(labels), "split": split, "small_width": small_width,
        "decoder": "beam + region formats" if formats else decoder, "retry_below": retry_below,
        "unreadable": unreadable,
        "regions": {k: {"n": v["n"], "exact": round(v["exact"] / v["n"], 4),
                        "cer": round(v["edits"] / max(v["chars"], 1), 4)} for k, v in sorted(per.items())},
        "sources": {k: {"n": v["n"], "exact": round(v["exact"] / v["n"], 4),
                        "cer": round(v["edits"] / max(v["chars"], 1), 4)} for k, v in sorted(per_source.items())},
        "allowed_chars": regions,
        "threshold": threshold,
        "above_threshold_fraction": round(above / max(len(kept), 1), 4),
        "above_threshold_exact": round(above_ok / max(above, 1), 4),
        "confusions": conf.most_common(20),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if lat else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 3) if lat else None,
        "latency_ms_p50_by_region": {k: round(float(np.median(v)), 3) for k, v in sorted(lat_region.items())},
        "failures": failures,
    }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("labels", type=Path)
    ap.add_argument("--split", choices=["all", "train", "val"], default="all",
                    help="real dev crops: 'val' is the third never trained on")
    ap.add_argument("--threshold", type=float, default=0.6, help="publish threshold (recognizer.min_confidence)")
    ap.add_argument("--decoder", choices=["greedy", "beam"], default="greedy")
    ap.add_argument("--formats", choices=["", "region"], default="",
                    help="region: beam decoding with the strict formats of each crop's own region")
    ap.add_argument("--latency-n", type=int, default=200)
    ap.add_argument("--retry-below", type=float, default=STILL_RETRY_BELOW,
                    help="re-read crops less confident than this from 5 re-cut copies, as still images are "
                         "(recognizer.retry_below); 0 = one read per crop")
    ap.add_argument("--small-width", type=int, default=0,
                    help="read each crop shrunk to this width (px) and JPEG-coded, as a camera seeing the plate "
                         "small would cut it (0 = as it is)")
    ap.add_argument("--regions", default="label",
                    help="characters the decoder may emit: 'label' (each crop's own region, as a gate set to "
                         "its country), 'all' (no restriction) or a list such as us,eu,br")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--failures", type=int, default=0, help="print this many misread crops")
    args = ap.parse_args()
    res = evaluate(args.model, args.labels, args.split, args.threshold, args.latency_n, args.decoder, args.formats,
                   args.retry_below, args.regions, args.small_width)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
        return
    print(f"{res['model']} on {res['labels']} (split {res['split']}, {res['decoder']}, "
          f"retry below {res['retry_below']})")
    for reg, v in res["regions"].items():
        print(f"  {reg:8s} n={v['n']:5d}  exact={100 * v['exact']:6.2f} %  CER={100 * v['cer']:5.2f} %")
    for src, v in res["sources"].items():
        print(f"  {src:22s} n={v['n']:5d}  exact={100 * v['exact']:6.2f} %  CER={100 * v['cer']:5.2f} %")
    print(f"  confidence >= {res['threshold']}: {100 * res['above_threshold_fraction']:.1f} % of crops, "
          f"{100 * res['above_threshold_exact']:.2f} % of those exact")
    print(f"  latency (batch 1, 1 thread): p50 {res['latency_ms_p50']} ms, p95 {res['latency_ms_p95']} ms; p50 by region "
          + ", ".join(f"{k} {v} ms" for k, v in res["latency_ms_p50_by_region"].items()))
    print("  confusions (label→read): " + ", ".join(f"{k} ×{n}" for k, n in res["confusions"]))
    for f in res["failures"][: args.failures]:
        print(f"  miss {f['file']}: {f['truth']} read {f['read']} ({f['confidence']})")


if __name__ == "__main__":
    main()
