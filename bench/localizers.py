"""The two plate localisers side by side: accuracy (``tools/eval_localizer.py``'s measures) and
time per 1280x720 frame on one core, written into BENCHMARKS.md's own section.

    python -m bench.localizers                    # dev data in ../shared/data, validation split
    python -m bench.localizers --no-video         # without the per-car video runs (~6 min)

Times: the real dev frames that are 1280x720, each localiser's ``find`` (search + cutting the
crops), one onnxruntime thread, after a warm-up; the detector network alone is timed too. The
load average during the run is written beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
from bench.daemon_rss import put_section
from edge_ocr.config import LocalizerConfig, load_config
from edge_ocr.find.detector import LearntLocalizer, prepare
from edge_ocr.serve.still import StillReader
from edge_ocr.stages import load_localizer, load_recognizer, plate_reader
from tools.detector_data import DATA, load_frames, load_openimages, load_scenes
from tools.eval_localizer import frames_report, openimages_report, scenes_report

SECTION = "## Plate localisers: learnt detector and classic search"


def time_frames(loc, frames: list[np.ndarray]) -> list[float]:
    for f in frames[:3]:
        loc.find(f)
    ms = []
    for f in frames:
        t0 = time.perf_counter()
        loc.find(f)
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def time_network(loc: LearntLocalizer, frames: list[np.ndarray]) -> list[float]:
    det = loc.detector
    ms = []
    for f in frames:
        x, _ = prepare(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), det.work_width)
        t0 = time.perf_counter()
        det.session.run(None, {det.input: x})
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def answered_with_a_plate(loc, scenes: list[np.ndarray]) -> int:
    """No-plate photos to which ``/api/ocr`` (the shipped config's still reader) answers with a plate."""
    cfg = load_config(str(ROOT / "config.yaml"))
    still = StillReader(plate_reader(cfg, load_recognizer(cfg.recognizer), loc), cfg.recognizer.min_confidence)
    return sum(bool(still.read(cv2.cvtColor(s, cv2.COLOR_GRAY2BGR))["text"]) for s in scenes)


def p50(xs: list[float]) -> float:
    return round(statistics.median(xs), 2) if xs else 0.0


def measure(data: Path) -> dict:
    real = data / "plates-real-dev" / "frames"
    hd = [cv2.imread(str(p)) for p in sorted(real.glob("*/*.jpg"))]
    hd = [f for f in hd if f is not None and f.shape[:2] == (720, 1280)]
    photos = load_frames(real, "val")
    oi = load_openimages(data / "plates-openimages-dev", "val")
    scenes = load_scenes(data / "scenes-neg", "val")
    res: dict = {"frames": len(photos), "oi": len(oi), "scenes": len(scenes), "hd": len(hd), "rows": []}
    load0 = os.getloadavg()[0]
    for kind in ("learnt", "classic"):
        cfg = LocalizerConfig(type=kind)
        loc = load_localizer(cfg)
        per, _ = frames_report(loc, photos, 5, 0.5)
        bins = openimages_report(loc, oi, 5, 0.5)
        hits, _ = scenes_report(loc, scenes)
        still_plates = answered_with_a_plate(loc, scenes)
        row = {"type": kind, "work_width": cfg.setting("work_width"), "min_score": cfg.setting("min_score"),
               "recall1": 100 * statistics.mean(per["all"]["hit1"]), "recall5": 100 * statistics.mean(per["all"]["hit"]),
               "oi": bins, "false_scenes": hits, "still_plates": still_plates,
               "find_ms": p50(time_frames(loc, hd))}
        if isinstance(loc, LearntLocalizer):
            row["net_ms"] = p50(time_network(loc, hd))
            row["model_kb"] = round(Path(cfg.model if Path(cfg.model).is_absolute() else ROOT / cfg.model).stat().st_size / 1e3)
        res["rows"].append(row)
    res["load"] = (round(load0, 2), round(os.getloadavg()[0], 2))
    return res


def video_runs(frames_csv: Path) -> list[dict]:
    """Per car on the validation cars' videos (``bench.video_eval --offline --split val``), each
    localiser with the shipped regions and with each car's own."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("learnt", "classic"):
            cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
            cfg["localizer"]["type"] = kind
            cfg["localizer"]["model"] = str(ROOT / cfg["localizer"]["model"])
            path = Path(tmp) / f"{kind}.yaml"
            path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
            for regions in ("shipped", "own"):
                out = Path(tmp) / f"{kind}-{regions}.json"
                subprocess.run([sys.executable, "-m", "bench.video_eval", "--offline", "--split", "val", "--frames",
                                str(frames_csv), "--config", str(path), "--regions", regions, "--json", str(out)],
                               cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                rows.append({"type": kind, "regions": regions} | json.loads(out.read_text())["summary"]["overall"])
    return rows


def render(res: dict) -> str:
    lines = [SECTION, "",
             f"Run: `python -m bench.localizers` on {time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores; load average {res['load'][0]} at the start, {res['load'][1]} at the end "
             "(other work was running on the machine where it is above 1).", "",
             f"Validation splits no one trained on: {res['frames']} dev frames (split by plate), {res['oi']} many-country "
             f"photos, {res['scenes']} no-plate scenes. Time: p50 of `find` on the {res['hd']} dev frames that are "
             "1280×720, one thread. `/api/ocr` answers a plate: the top-level text of the shipped config's still "
             "reader (a plate of an enabled region's format read at `recognizer.min_confidence`; when no box "
             "is found, the whole photo is read as a crop).", "",
             "| localiser | work width | min score | recall@1 | recall@5 | many-country ≥60 px @5 | 30–59 px | <30 px "
             "| no-plate scenes with a box | `/api/ocr` answers a plate | ms/frame (network) | model |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        oi = r["oi"]
        cell = [f"{100 * f / max(n, 1):.1f} % ({f}/{n})" for n, f in oi.values()]
        net = f" ({r['net_ms']})" if "net_ms" in r else ""
        model = f"{r['model_kb']} kB INT8" if "model_kb" in r else "none"
        lines.append(f"| {r['type']} | {r['work_width']} | {r['min_score']} | {r['recall1']:.1f} % | {r['recall5']:.1f} % "
                     f"| {cell[0]} | {cell[1]} | {cell[2]} | {r['false_scenes']}/{res['scenes']} "
                     f"| {r['still_plates']}/{res['scenes']} "
                     f"| {r['find_ms']}{net} | {model} |")
    if res.get("video"):
        lines += ["", "Per car (`python -m bench.video_eval --offline --split val`, the validation cars' passes, "
                  "every frame through the daemon's pipeline):", "",
                  "| localiser | regions | cars | right | wrong | missed | per car | per crop | duplicates | extra events "
                  "(misreads + other) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for v in res["video"]:
            lines.append(f"| {v['type']} | {v['regions']} | {v['cars']} | {v['right']} | {v['wrong']} | {v['missed']} "
                         f"| {v['right_pct']} % | {v['crop_pct']} % | {v['duplicate_events']} | {v['extra_events']} "
                         f"({v['extra_misreads']} + {v['extra_other']}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                    help="also per car on the validation cars' videos (about 6 minutes on 2 cores)")
    args = ap.parse_args(argv)
    if not (args.data / "plates-real-dev").is_dir():
        print(f"error: {args.data / 'plates-real-dev'} not found", file=sys.stderr)
        return 2
    res = measure(args.data)
    if args.video:
        res["video"] = video_runs(args.data / "plates-real-dev" / "frames" / "frames.csv")
    section = render(res)
    print(section)
    put_section(args.out, SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
