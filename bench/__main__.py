"""One command for the numbers in BENCHMARKS.md:  python -m bench [--crops LABELS.csv]

Measures the recogniser (latency p50/p95/p99 at 1 thread and all cores, batch 1 and 8, FP32 and
INT8, load time, size), accuracy with tools/evaluate.py on a synthetic test set (and on a labelled
crop folder when given), and the pipeline (frames/s on generated 1280x720 and 640x480 videos with
motion gating on and off, peak RSS). Writes BENCHMARKS.md and BENCHMARKS.json next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from edge_ocr.config import parse_config  # noqa: E402
from edge_ocr.daemon import LogSink, Pipeline  # noqa: E402
from edge_ocr.recognizer import Recognizer  # noqa: E402
from edge_ocr.types import Frame  # noqa: E402

MODELS = {"fp32": ROOT / "models/plate_crnn_fp32.onnx", "int8": ROOT / "models/plate_crnn_int8.onnx"}


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version(),
            "onnxruntime": ort.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def pct(xs: list[float]) -> dict:
    a = np.array(xs)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "p99": round(float(np.percentile(a, 99)), 3)}


def bench_recognizer(crops: list[np.ndarray], n: int) -> list[dict]:
    rows = []
    for name, path in MODELS.items():
        for threads in (1, os.cpu_count() or 1):
            t = time.perf_counter()
            rec = Recognizer(path, threads=threads, batch_size=8)
            load_ms = (time.perf_counter() - t) * 1000
            for batch in (1, 8):
                rec.recognize(crops[:batch])
                lat = []
                for i in range(n):
                    group = [crops[(i * batch + k) % len(crops)] for k in range(batch)]
                    t = time.perf_counter()
                    rec.recognize(group)
                    lat.append((time.perf_counter() - t) * 1000 / batch)
                rows.append({"model": name, "threads": threads, "batch": batch, "ms_per_crop": pct(lat),
                             "load_ms": round(load_ms, 1), "size_mb": round(path.stat().st_size / 1e6, 2)})
    return rows


def bench_pipeline(size: tuple[int, int], motion: bool, seconds: int = 6) -> dict:
    import make_demo_video

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.avi"
        make_demo_video.render(path, [("RK115AN", "eu"), ("PJC4903", "br")], size[0], size[1], 10,
                               seconds_per_car=seconds / 2, gap_s=0.5)
        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
    cfg = parse_config(f"motion: {{enabled: {str(motion).lower()}}}\nmqtt: {{enabled: false}}\n"
                       "roi: {polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}\n")
    rec = Recognizer(MODELS["int8"], threads=1)
    pipe = Pipeline(cfg, rec, LogSink())
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        pipe.process(Frame(ts=i / 10, wall=time.time(), image=f, index=i))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"size": f"{size[0]}x{size[1]}", "motion_gating": motion, "frames": len(frames),
            "fps": round(len(frames) / wall, 1), "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
            "events": pipe.counters["events"], "gated": pipe.counters["gated"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=Path, default=None, help="labels.csv of real crops to evaluate on")
    ap.add_argument("-n", type=int, default=200, help="timed runs per latency cell")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    import evaluate
    import synth_plates

    with tempfile.TemporaryDirectory() as tmp:
        synth_dir = Path(tmp) / "synth"
        synth_dir.mkdir()
        import csv

        with open(synth_dir / "labels.csv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(["file", "text", "region"])
            crops = []
            for i in range(300):
                img, label, region = synth_plates.sample(99, i)
                cv2.imwrite(str(synth_dir / f"{i}.png"), img)
                wr.writerow([f"{i}.png", label, region])
                crops.append(img)
        res = {"machine": machine(), "recognizer": bench_recognizer(crops, args.n), "accuracy": {}}
        for name, path in MODELS.items():
            res["accuracy"][f"synthetic/{name}"] = evaluate.evaluate(str(path), synth_dir / "labels.csv",
                                                                     latency_n=1)["regions"]
            if args.crops:
                res["accuracy"][f"{args.crops}/{name}"] = evaluate.evaluate(str(path), args.crops,
                                                                            latency_n=1)["regions"]
    res["pipeline"] = [bench_pipeline(s, m) for s in ((1280, 720), (640, 480)) for m in (True, False)]
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    m = res["machine"]
    lines = ["# Benchmarks", "", f"Run: `python -m bench{' --crops ' + str(args.crops) if args.crops else ''}`"
             f" on {time.strftime('%Y-%m-%d')}.", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['arch']}; Python {m['python']}, onnxruntime "
             f"{m['onnxruntime']}, numpy {m['numpy']}, OpenCV {m['opencv']}.", "",
             "## Recogniser (ms per crop)", "", "| model | threads | batch | p50 | p95 | p99 | load ms | MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["recognizer"]:
        q = r["ms_per_crop"]
        lines.append(f"| {r['model']} | {r['threads']} | {r['batch']} | {q['p50']} | {q['p95']} | {q['p99']} | "
                     f"{r['load_ms']} | {r['size_mb']} |")
    lines += ["", "## Accuracy (exact-plate / CER)", "", "| set / model | region | n | exact | CER |", "|---|---|---|---|---|"]
    for k, regs in res["accuracy"].items():
        for reg, v in regs.items():
            lines.append(f"| {k} | {reg} | {v['n']} | {100 * v['exact']:.1f} % | {100 * v['cer']:.2f} % |")
    lines += ["", "## Pipeline (INT8, 1 recogniser thread, frames fed as fast as processed)", "",
              "| video | motion gating | frames | fps | CPU % of one core | events |", "|---|---|---|---|---|---|"]
    for p in res["pipeline"]:
        lines.append(f"| {p['size']} | {p['motion_gating']} | {p['frames']} | {p['fps']} | "
                     f"{p['cpu_percent_of_one_core']} | {p['events']} |")
    lines += ["", f"Peak RSS of the benchmark process: {res['peak_rss_mb']} MB.", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
