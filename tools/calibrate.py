"""Fit the recogniser's confidence temperature and print how often a confidence is right.

    python -m tools.calibrate ../shared/data/plates-real-dev/crops/labels.csv
    python -m tools.calibrate LABELS.csv --write        # store the fitted temperature in both models

The temperature is fitted on one half of the validation plates (split by a hash of the plate,
``half_of``) and the reliability is reported on the other half, so the figures are not measured
on what was fitted. Each crop is read once (no re-reads), greedy, the decoder restricted to its
own region's characters, as ``tools/evaluate.py`` does by default. The greedy text does not
depend on the temperature; only the confidence does. ``--write`` stores the temperature as
``edge_ocr.temperature`` in the model's metadata (``models/README.md``); the runtime divides the
logits by it before the softmax, so every entry point reports the calibrated confidence.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_ocr.capture.grey import to_grey
from edge_ocr.config import RecognizerConfig
from edge_ocr.read.ctc import greedy_decode, softmax
from edge_ocr.read.formats import FormatRules
from edge_ocr.read.recognizer import Recognizer
from edge_ocr.read.tworow import find_rows
from edge_ocr.stages import load_recognizer
from tools.evaluate import normalise, row_split

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"fp32": ROOT / "models/plate_crnn_fp32.onnx", "int8": ROOT / "models/plate_crnn_int8.onnx"}
BINS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001)
GRID = np.round(np.arange(0.5, 4.001, 0.05), 2)


def half_of(row: dict) -> str:
    """``fit`` or ``test``: half of the plates each, by a hash of region and text (another salt
    than ``evaluate.split_of``, so the halves cut across its thirds evenly)."""
    key = "calibration:" + (row.get("region") or "").lower() + ":" + "".join(
        ch for ch in row["text"].upper() if ch.isalnum())
    return "fit" if int(hashlib.sha1(key.encode()).hexdigest(), 16) % 2 == 0 else "test"


@dataclass
class Crop:
    source: str
    region: str
    half: str
    truth: str
    logits: np.ndarray  # (T, C), the network's raw output at batch 1
    mask: np.ndarray  # (C,) bool, the classes the crop's region allows (blank included)
    two_row: bool


def load(labels: Path, split: str, model: Path) -> tuple[list[Crop], Recognizer]:
    """Every crop of ``split`` with its raw logits from ``model`` (batch 1, as the daemon reads)."""
    with open(labels, encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if split == "all" or row_split(r) == split]
    rec = load_recognizer(RecognizerConfig(model=str(model), batch_size=1))
    everything = np.ones(len(rec.charset) + 1, bool)
    out = []
    for r in rows:
        img = cv2.imread(str(labels.parent / r["file"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        region = r.get("region") or ""
        mask = rec.class_mask(FormatRules([region]).charset()) if region else None
        out.append(Crop(r.get("source") or region or "unknown", region, half_of(r),
                        normalise(r["text"], region, rec.charset), rec.logits([img])[0],
                        everything if mask is None else mask > 0, find_rows(to_grey(img)) is not None))
    return out, rec


def read_all(crops: list[Crop], charset: str, temperature: float) -> tuple[list[str], np.ndarray]:
    """Texts and confidences at ``temperature`` (the region mask applied as the runtime does)."""
    texts, confs = [], []
    for c in crops:
        d = greedy_decode(softmax(np.where(c.mask, c.logits / np.float32(temperature), -np.inf)), charset)
        texts.append(d.text)
        confs.append(d.confidence)
    return texts, np.array(confs)


def correct(crops: list[Crop], texts: list[str], charset: str) -> np.ndarray:
    return np.array([normalise(t, c.region, charset) == c.truth for t, c in zip(texts, crops)])


def nll(confs: np.ndarray, ok: np.ndarray) -> float:
    """Mean binary log loss of 'the plate is read exactly' against its confidence."""
    p = np.clip(confs, 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(ok, np.log(p), np.log1p(-p))))


def fit_temperature(crops: list[Crop], charset: str) -> tuple[float, dict[float, float]]:
    """The grid temperature with the least log loss on ``crops``, and the loss at each."""
    ok = correct(crops, read_all(crops, charset, 1.0)[0], charset)
    curve = {float(t): nll(read_all(crops, charset, float(t))[1], ok) for t in GRID}
    return min(curve, key=curve.__getitem__), curve


def reliability(confs: np.ndarray, ok: np.ndarray) -> list[str]:
    """Accuracy per confidence bin and the expected calibration error, as table lines."""
    lines = ["| confidence | crops | share | mean confidence | exact |", "|---|---|---|---|---|"]
    ece = 0.0
    for lo, hi in itertools.pairwise(BINS):
        sel = (confs >= lo) & (confs < hi)
        if not sel.any():
            continue
        ece += sel.sum() * abs(confs[sel].mean() - ok[sel].mean())
        lines.append(f"| {lo:.2f}–{min(hi, 1.0):.2f} | {sel.sum()} | {100 * sel.mean():.1f} % | "
                     f"{confs[sel].mean():.3f} | {100 * ok[sel].mean():.1f} % |")
    lines.append(f"expected calibration error {100 * ece / max(len(confs), 1):.1f} points")
    return lines


def at_thresholds(confs: np.ndarray, ok: np.ndarray, thresholds=(0.6, 0.7, 0.9, 0.99)) -> str:
    """'>= t: x % exact covering y %' for each threshold."""
    parts = []
    for t in thresholds:
        sel = confs >= t
        parts.append(f">= {t}: {100 * ok[sel].mean() if sel.any() else float('nan'):.1f} % exact "
                     f"({int((sel & ~ok).sum())} wrong), {100 * sel.mean():.1f} % of crops")
    return "; ".join(parts)


def report(name: str, crops: list[Crop], charset: str, temperature: float) -> None:
    """The test half at temperature 1 and at ``temperature``: whole table, then per source and
    by what the runtime knows besides the confidence (two-row join, region format)."""
    test = [c for c in crops if c.half == "test"]
    for t in sorted({1.0, temperature}):
        texts, confs = read_all(test, charset, t)
        ok = correct(test, texts, charset)
        print(f"\n### {name}, temperature {t}, test half ({len(test)} crops, {100 * ok.mean():.1f} % exact, "
              f"log loss {nll(confs, ok):.3f})")
        print("\n".join(reliability(confs, ok)))
        print(f"all: {at_thresholds(confs, ok)}")
        groups: dict[str, np.ndarray] = {f"source {s}": np.array([c.source == s for c in test])
                                         for s in sorted({c.source for c in test})}
        groups["two-row joined"] = np.array([c.two_row for c in test])
        fits = np.array([bool(x) and FormatRules([c.region]).normalize(x) is not None for x, c in zip(texts, test)])
        groups["fits its region's format"] = fits
        groups["fits no format"] = ~fits
        for g, sel in groups.items():
            if sel.any():
                print(f"{g} (n={sel.sum()}, {100 * ok[sel].mean():.1f} % exact): {at_thresholds(confs[sel], ok[sel])}")


def same_coverage(crops: list[Crop], charset: str, temperature: float, thresholds=(0.6, 0.7, 0.9)) -> str:
    """The threshold on the calibrated scale that passes as many crops (all of them, both
    halves) as each old threshold did at temperature 1: what a config's numbers move to."""
    old = read_all(crops, charset, 1.0)[1]
    new = np.sort(read_all(crops, charset, temperature)[1])
    parts = []
    for t in thresholds:
        passed = int((old >= t).sum())
        parts.append(f"{t} -> {new[len(new) - passed] if passed else 1.0:.3f} ({passed} of {len(new)} crops pass)")
    return f"thresholds at temperature {temperature} passing the same crops as at 1.0: " + ", ".join(parts)


def write_temperature(model: Path, temperature: float) -> None:
    import onnx

    m = onnx.load(str(model))
    props = {p.key: p.value for p in m.metadata_props}
    props["edge_ocr.temperature"] = f"{temperature:g}"
    onnx.helper.set_model_props(m, props)
    onnx.save(m, str(model))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--split", choices=["val", "train", "all"], default="val",
                    help="crops to use (tools/evaluate.py split_of); val = never trained on")
    ap.add_argument("--models", default="fp32,int8", help="comma list of fp32, int8 or ONNX paths")
    ap.add_argument("--write", action="store_true", help="store each fitted temperature in its model file")
    args = ap.parse_args()
    for name in args.models.split(","):
        path = MODELS.get(name, Path(name))
        crops, rec = load(args.labels, args.split, path)
        halves = {c.half for c in crops}
        if halves != {"fit", "test"}:
            sys.exit(f"{args.labels}: the {args.split} crops fill only {', '.join(sorted(halves)) or 'no'} half; "
                     "calibration needs plates on both sides")
        t, curve = fit_temperature([c for c in crops if c.half == "fit"], rec.charset)
        n_fit = sum(c.half == "fit" for c in crops)
        print(f"## {name} ({path.name}, stored temperature {rec.info.temperature}): fitted on {n_fit} crops "
              f"-> temperature {t} (log loss {curve[1.0]:.3f} at 1.0, {curve[t]:.3f} at {t})")
        report(name, crops, rec.charset, t)
        print(same_coverage(crops, rec.charset, t))
        if args.write:
            write_temperature(path, t)
            print(f"wrote edge_ocr.temperature = {t:g} into {path}")


if __name__ == "__main__":
    main()
