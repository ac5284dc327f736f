"""The engines a user might pick instead, run on the same crops as edge-ocr, one at a time.

- edge-ocr INT8 and FP32 through the product's reader (``stages.Stages``, the shipped config's
  format rules and region-aware decoding, as ``POST /api/ocr?crop=1`` reads a crop), 1 thread,
  batch 1
- PP-OCRv4 rec through RapidOCR (``pip install --no-deps rapidocr-onnxruntime && pip install
  pyclipper shapely six tqdm``; its wheel carries the models, so it runs offline), 1 thread,
  recognition only (no detection, no angle classifier): the fairest crop-for-crop comparison
- Tesseract 5 (``apt-get install tesseract-ocr``), ``--psm 7`` (one text line) and an A-Z 0-9
  whitelist, called as a process per crop the way pytesseract does

An engine that is not installed is reported as such with its install line, never left out.
Every engine's text goes through the same label normalisation as ours (``tools/evaluate.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_ocr.read.textdist import edit_distance

ROOT = Path(__file__).resolve().parents[1]
WHITELIST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass
class Engine:
    name: str
    read: Callable[[np.ndarray], tuple[str, float]] | None
    missing: str = ""  # why it cannot run here, with the install line


def edge_ocr_engine(model: Path, name: str, retry_below: float = 0.0) -> Engine:
    """The reader that ships (``stages.Stages.from_config``: the default config's formats, with
    ``model`` at 1 thread, batch 1), each crop read as one plate (``read_crops``), as
    ``tools/evaluate.py`` reads. ``retry_below`` 0: one read per crop, as the live pipeline; 0.6:
    unsure crops re-read from re-cut copies, as a still image (``recognizer.retry_below``)."""
    from edge_ocr.config import Config, override
    from edge_ocr.stages import Stages

    cfg = override(Config(), "bench.peers", recognizer={"model": str(model), "threads": 1, "batch_size": 1,
                                                        "retry_below": retry_below})
    reader = Stages.from_config(cfg).reader

    def read(img: np.ndarray) -> tuple[str, float]:
        p = reader.read_crops([img])[0]
        return p.text, p.confidence

    return Engine(name, read)


def rapidocr_engine() -> Engine:
    name = "PP-OCRv4 rec (RapidOCR)"
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return Engine(name, None, "not installed: pip install --no-deps rapidocr-onnxruntime && "
                                  "pip install pyclipper shapely six tqdm")
    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def read(img: np.ndarray) -> tuple[str, float]:
        res, _ = engine(img, use_det=False, use_cls=False, use_rec=True)
        if not res:
            return "", 0.0
        return str(res[0][0]), float(res[0][1])

    return Engine(name, read)


def tesseract_engine() -> Engine:
    name = "Tesseract 5 (--psm 7, A-Z0-9)"
    exe = shutil.which("tesseract")
    if not exe:
        return Engine(name, None, "not installed: apt-get install tesseract-ocr")

    def read(img: np.ndarray) -> tuple[str, float]:
        png = cv2.imencode(".png", img)[1].tobytes()
        out = subprocess.run([exe, "stdin", "stdout", "--psm", "7", "-c", f"tessedit_char_whitelist={WHITELIST}",
                              "tsv"], input=png, capture_output=True, timeout=30, check=False).stdout.decode("utf-8", "replace")
        words, confs = [], []
        for line in out.splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) == 12 and cols[11].strip() and float(cols[10]) >= 0:
                words.append(cols[11].strip())
                confs.append(float(cols[10]) / 100.0)
        return "".join(words), (min(confs) if confs else 0.0)

    return Engine(name, read)


def run_engine(engine: Engine, crops: list[np.ndarray], truths: list[str], regions: list[str],
               normalise: Callable[[str, str], str]) -> dict:
    """Exact match and CER by region, latency per crop, and (text ok, confidence) per crop."""
    per: dict[str, list[int]] = {}
    lat, hits = [], []
    engine.read(crops[0])  # warm-up: first-call allocations are not the steady state
    for img, truth, region in zip(crops, truths, regions):
        t = time.perf_counter()
        text, conf = engine.read(img)
        lat.append((time.perf_counter() - t) * 1000)
        text = normalise(text, region)
        d = edit_distance(text, truth)
        ok = text == truth
        for key in (region, "overall"):
            a = per.setdefault(key, [0, 0, 0, 0])
            a[0] += 1
            a[1] += ok
            a[2] += d
            a[3] += len(truth)
        hits.append((ok, conf))
    regions_out = {k: {"n": v[0], "exact": round(v[1] / v[0], 4), "cer": round(v[2] / max(v[3], 1), 4)}
                   for k, v in sorted(per.items())}
    latin = [h for h, r in zip(hits, regions) if r in ("us", "eu")]
    return {"engine": engine.name, "regions": regions_out,
            "us_eu_exact": round(sum(ok for ok, _ in latin) / max(len(latin), 1), 4),
            "latency_ms": [round(x, 3) for x in lat], "hits": hits}


def threshold_curve(hits: list[tuple[bool, float]], steps: int = 20) -> list[dict]:
    """For each confidence threshold: the share of crops published and how many of those are exact."""
    out = []
    for k in range(steps):
        th = k / steps
        kept = [ok for ok, c in hits if c >= th]
        out.append({"threshold": round(th, 2), "published": round(len(kept) / max(len(hits), 1), 4),
                    "exact_of_published": round(sum(kept) / len(kept), 4) if kept else None})
    return out
