"""Where a `Recognizer.recognize` call spends its time, batch 1, one thread:

    taskset -c 1 python -m bench.recognize_parts --crops ../shared/data/plates-real-dev/crops/labels.csv
    python -m bench.recognize_parts --crops LABELS.csv --dump /tmp/before.json   # readings + model pixels
    python -m bench.recognize_parts --crops LABELS.csv --compare /tmp/before.json  # 0 differences?

Times each step of the call on every crop (all dev crops and synthetic test crops, seed 99):
grey conversion, the two-row test (``tworow.find_rows``) and join, resize, CLAHE, normalisation
and padding, the network alone (``session.run`` on the prepared input), softmax and decoding,
and the whole call; prints the median of each per crop and the whole call against the network.
``--dump`` writes each crop's model pixels (a hash) and reading; ``--compare`` reads such a file
and counts crops whose pixels, text or confidence differ: a speed change must make none.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from edge_ocr.capture.grey import to_grey
from edge_ocr.config import RecognizerConfig
from edge_ocr.read.ctc import greedy_decode, softmax
from edge_ocr.read.formats import FormatRules
from edge_ocr.read.portable import clahe
from edge_ocr.read.preprocess import model_pixels, pixels_batch, resize_keep_aspect
from edge_ocr.read.recognizer import DEFAULT_MODEL, Recognizer
from edge_ocr.read.tworow import find_rows, join_rows
from edge_ocr.stages import load_recognizer

# BENCHMARKS.md's section of this script's runs, kept when ``python -m bench`` rewrites the file
SECTION = "## Recogniser sizes and where the call's time goes (bench/recognize_parts.py)"
STEPS = ("grey", "two-row test", "join", "resize", "clahe", "normalise+pad", "network", "softmax+decode")


def load_crops(labels: Path | None, synthetic: int) -> list[tuple[str, np.ndarray]]:
    """(name, BGR crop): every dev crop of ``labels`` and ``synthetic`` rendered test crops."""
    out = []
    if labels is not None:
        with open(labels, encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                img = cv2.imread(str(labels.parent / r["file"]), cv2.IMREAD_COLOR)
                if img is not None:
                    out.append((r["file"], img))
    if synthetic:
        from tools import synth_mix

        out += [(f"synthetic-99-{i}", synth_mix.sample(99, i)[0]) for i in range(synthetic)]
    return out


def _clock(fn, *args):
    t = time.perf_counter()
    res = fn(*args)
    return res, (time.perf_counter() - t) * 1000


def time_steps(rec: Recognizer, crop: np.ndarray) -> dict[str, float]:
    """ms of each step of one crop's read, done the way ``recognize`` does them."""
    spec = rec.info.spec
    ms: dict[str, float] = {}
    grey, ms["grey"] = _clock(to_grey, crop)
    rows, ms["two-row test"] = _clock(find_rows, grey)
    line, ms["join"] = _clock(join_rows, grey, rows) if rows is not None else (grey, 0.0)
    small, ms["resize"] = _clock(resize_keep_aspect, line, spec.height, spec.width)
    px, ms["clahe"] = _clock(clahe, small, spec.clahe_clip, spec.clahe_tile)
    x, ms["normalise+pad"] = _clock(pixels_batch, [px], spec, rec.trim)
    logits, ms["network"] = _clock(lambda: rec.model.session.run(None, {rec.model.input_name: x})[0])
    _, ms["softmax+decode"] = _clock(lambda: greedy_decode(softmax(logits[0] / rec.info.temperature), rec.charset))
    _, ms["whole recognize"] = _clock(rec.recognize, [crop])
    return ms


def fingerprint(rec: Recognizer, crops: list[tuple[str, np.ndarray]]) -> dict[str, list]:
    """name -> [sha1 of the model pixels, then text, confidence and character confidences read
    once with no restriction and read as a still image is (the four regions' characters,
    re-read below 0.6)] for every crop."""
    allowed = FormatRules(["us", "eu", "br", "cn"]).charset()
    out = {}
    for name, c in crops:
        px = model_pixels(c, rec.info.spec)
        one = rec.recognize([c])[0]
        still = rec.recognize([c], retry_below=0.6, allowed=allowed)[0]
        out[name] = [hashlib.sha1(px.tobytes() + str(px.shape).encode()).hexdigest(),
                     *(x for r in (one, still) for x in (r.text, r.confidence, list(r.char_confidences)))]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=Path, default=None, help="labels.csv of real crops (all of them are used)")
    ap.add_argument("--synthetic", type=int, default=300, help="synthetic test crops (seed 99)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--rounds", type=int, default=1, help="times each crop is timed")
    ap.add_argument("--dump", type=Path, help="write each crop's model pixels hash and reading here")
    ap.add_argument("--compare", type=Path, help="count crops that differ from a --dump file")
    args = ap.parse_args()
    crops = load_crops(args.crops, args.synthetic)
    rec = load_recognizer(RecognizerConfig(model=str(args.model), batch_size=1))
    if args.dump or args.compare:
        now = fingerprint(rec, crops)
        if args.dump:
            args.dump.write_text(json.dumps(now))
        if args.compare:
            old = json.loads(args.compare.read_text())
            diff = [k for k in now if old.get(k) != now[k]]
            print(f"{len(now)} crops, {len(diff)} differ from {args.compare} (pixels, text or confidence)")
            for k in diff[:10]:
                print(f"  {k}: {old.get(k)} -> {now[k]}")
        return
    for _, c in crops[:20]:  # warm the caches and the session
        rec.recognize([c])
    ms: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for _, c in crops:
            for k, v in time_steps(rec, c).items():
                ms.setdefault(k, []).append(v)
    print(f"{args.model.name}, {len(crops)} crops x {args.rounds}, batch 1, 1 thread; ms per crop")
    print("| step | p50 | mean |\n|---|---|---|")
    for k in (*STEPS, "whole recognize"):
        print(f"| {k} | {np.median(ms[k]):.3f} | {np.mean(ms[k]):.3f} |")
    whole, net = np.median(ms["whole recognize"]), np.median(ms["network"])
    print(f"whole call / network (p50): {whole / net:.2f}x")


if __name__ == "__main__":
    main()
