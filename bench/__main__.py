"""One command for the numbers in BENCHMARKS.md:

    python -m bench --crops ../shared/data/plates-real-dev/crops/labels.csv     # full run, ~10 min
    python -m bench --smoke --out /tmp/b/BENCHMARKS.md                          # seconds; what the test runs

Measures, on this machine, in one run:
- recogniser: latency p50/p95/p99 at 1 thread and all cores, batch 1 and 8, FP32 and INT8, load
  time, size;
- accuracy (tools/evaluate.py): a synthetic test set and the labelled crops given (``--split``,
  default ``val``: the third no model was trained on);
- side by side on the same crops: edge-ocr INT8/FP32, PP-OCRv4 rec (RapidOCR) and Tesseract where
  installed (see bench/peers.py), with ratios against edge-ocr INT8 and accuracy against
  confidence threshold;
- pipeline: frames/s on generated 1280x720 and 640x480 videos with motion gating on and off, CPU
  % of one core, peak RSS; the daemon's start-to-ready time and its drop counts at camera pace;
- MQTT: cost per event on the pipeline thread, sustained QoS 1 events/s, outbox replay rate;
- a Pi estimate from multiply-adds.
Writes BENCHMARKS.md, BENCHMARKS.json and bench-*.png next to it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
from bench.daemon_rss import SECTION as DAEMON_SECTION
from bench.localizers import SECTION as LOCALIZER_SECTION
from bench.machine import machine
from bench.many_cameras import SECTION as CAMERAS_SECTION
from bench.mqtt_bench import bench_mqtt
from bench.peers import (
    edge_ocr_engine,
    rapidocr_engine,
    run_engine,
    tesseract_engine,
    threshold_curve,
)
from bench.plots import write_plots
from bench.recognize_parts import SECTION as PARTS_SECTION
from bench.still_eval import SECTION as STILL_SECTION
from bench.video_eval import SECTION as VIDEO_SECTION
from bench.video_eval import keep_section
from edge_ocr.config import RecognizerConfig, parse_config
from edge_ocr.daemon import LogSink, Pipeline
from edge_ocr.stages import Stages, load_recognizer
from edge_ocr.types import Frame

MODELS = {"fp32": ROOT / "models/plate_crnn_fp32.onnx", "int8": ROOT / "models/plate_crnn_int8.onnx"}


def pct(xs: list[float]) -> dict:
    a = np.array(xs)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "p99": round(float(np.percentile(a, 99)), 3)}


def bench_recognizer(crops: list[np.ndarray], n: int) -> list[dict]:
    rows = []
    for name, path in MODELS.items():
        for threads in sorted({1, os.cpu_count() or 1}):
            t = time.perf_counter()
            rec = load_recognizer(RecognizerConfig(model=str(path), threads=threads, batch_size=8))
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


def bench_widths(n: int) -> list[dict]:
    """ms per crop by input width (batch 1, 1 thread), the models' runs interleaved so machine
    load hits both alike: a 2:1 US plate runs at 64 px, a Chinese plate ~128, an EU plate ~152."""
    sessions = {}
    for name, path in MODELS.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sessions[name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rows = []
    for width in (64, 96, 128, 160):
        x = np.random.default_rng(0).uniform(-1, 1, (1, 1, 32, width)).astype(np.float32)
        lat: dict[str, list[float]] = {k: [] for k in sessions}
        for i in range(n + 20):
            for name, sess in sessions.items():
                t = time.perf_counter()
                sess.run(None, {"image": x})
                if i >= 20:
                    lat[name].append((time.perf_counter() - t) * 1000)
        rows.append({"width": width, **{name: round(float(np.median(v)), 3) for name, v in lat.items()}})
    return rows


def _video(size: tuple[int, int], seconds: float, path: Path) -> None:
    from tools import make_demo_video

    make_demo_video.render(path, [("RK115AN", "eu"), ("PJC4903", "br")], size[0], size[1], 10,
                           seconds_per_car=seconds / 2, gap_s=0.5)


def bench_pipeline(size: tuple[int, int], motion: bool, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.avi"
        _video(size, seconds, path)
        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
    cfg = parse_config(f"motion: {{enabled: {str(motion).lower()}}}\nmqtt: {{enabled: false}}\n"
                       "roi: {polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}\n")
    pipe = Pipeline(Stages.from_config(cfg, load_recognizer(RecognizerConfig(model=str(MODELS["int8"])))), LogSink())
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i, f in enumerate(frames):
        pipe.process(Frame(ts=i / 10, wall=time.time(), image=f, index=i))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"size": f"{size[0]}x{size[1]}", "motion_gating": motion, "frames": len(frames),
            "fps": round(len(frames) / wall, 1), "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
            "events": pipe.counters["events"], "gated": pipe.counters["gated"]}


def bench_daemon(seconds: float, fps: float) -> dict:
    """``edge-ocr run`` as a process: time to READY=1 on $NOTIFY_SOCKET, then frames, drops and
    events from its final stats line after ``seconds`` at camera pace."""
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "v.avi"
        _video((1280, 720), 6, video)
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(f"camera: {{type: file, uri: '{video}', fps: {fps}, loop: true}}\nmqtt: {{enabled: false}}\n"
                       "roi: {polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}\n")
        sock_path = Path(tmp) / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        sock.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PYTHONPATH": str(ROOT)}
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "--config", str(cfg)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ready = None
        try:
            while ready is None:
                if b"READY=1" in sock.recv(4096):
                    ready = time.monotonic() - t0
            time.sleep(seconds)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            sock.close()
    stats = {}
    for line in err.splitlines():
        if "stopped: {" in line:
            stats = json.loads(line.split("stopped: ", 1)[1])
    return {"start_to_ready_s": round(ready, 2), "seconds": seconds, "camera_fps": fps,
            "frames": stats.get("frames"), "dropped_frames": stats.get("dropped_frames"),
            "skipped_frames": stats.get("skipped_frames"), "events": stats.get("events"),
            "latency_p50_ms": stats.get("latency_p50_ms"), "exit_code": proc.returncode}


def load_crops(labels: Path, split: str, limit: int) -> tuple[list, list, list]:
    from tools import evaluate

    with open(labels, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if split != "all":
        rows = [r for r in rows if evaluate.row_split(r) == split]
    imgs, truths, regions = [], [], []
    from tools.crnn import CHARSET

    for r in rows[:limit] if limit else rows:
        img = cv2.imread(str(labels.parent / r["file"]), cv2.IMREAD_COLOR)
        if img is not None:
            imgs.append(img)
            truths.append(evaluate.normalise(r["text"], r["region"], CHARSET))
            regions.append(r["region"])
    return imgs, truths, regions


def pi_estimate() -> dict:
    from tools.crnn import count_macs

    return {f"macs_at_width_{w}": count_macs(width=w) for w in (64, 96, 128, 160)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=Path, default=None, help="labels.csv of real crops to evaluate on")
    ap.add_argument("--split", choices=["val", "train", "all"], default="val",
                    help="which crops of --crops (tools/evaluate.py split_of); val = never trained on")
    ap.add_argument("-n", type=int, default=200, help="timed runs per latency cell")
    ap.add_argument("--synthetic", type=int, default=300, help="synthetic test crops (seed 99)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings: proves the tool runs, measures nothing")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.synthetic = 3, 12
    from tools import evaluate, synth_mix
    from tools.crnn import CHARSET

    res: dict = {"machine": machine(), "command": " ".join(["python -m bench", *sys.argv[1:]]),
                 "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        synth_dir = Path(tmp) / "synth"
        synth_dir.mkdir()
        with open(synth_dir / "labels.csv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(["file", "text", "region"])
            synth = []
            for i in range(args.synthetic):
                img, label, region = synth_mix.sample(99, i)
                cv2.imwrite(str(synth_dir / f"{i}.png"), img)
                wr.writerow([f"{i}.png", label, region])
                synth.append(img)
        res["accuracy"] = {}
        for name, path in MODELS.items():
            res["accuracy"][f"synthetic/{name}"] = evaluate.evaluate(str(path), synth_dir / "labels.csv",
                                                                     latency_n=1)
            if args.crops:
                res["accuracy"][f"crops-{args.split}/{name}"] = evaluate.evaluate(str(path), args.crops, args.split,
                                                                                  latency_n=1)
        if args.crops:
            imgs, truths, regions = load_crops(args.crops, args.split, 10 if args.smoke else 0)
            crop_set = f"{args.crops} (split {args.split}, {len(imgs)} crops)"
        else:
            imgs, truths = synth, [evaluate.normalise(synth_mix.sample(99, i)[1], synth_mix.sample(99, i)[2],
                                                      CHARSET) for i in range(len(synth))]
            regions = [synth_mix.sample(99, i)[2] for i in range(len(synth))]
            crop_set = f"synthetic test set ({len(imgs)} crops, seed 99)"
    res["recognizer_crops"] = crop_set
    print(f"recogniser latency on {crop_set}", flush=True)
    res["recognizer"] = bench_recognizer(imgs, args.n)
    res["widths"] = bench_widths(args.n)

    from tools.crnn import CHARSET

    def norm(text: str, region: str) -> str:
        return evaluate.normalise(text, region, CHARSET)

    res["engines_crops"] = crop_set
    res["engines"] = []
    for make in (lambda: edge_ocr_engine(MODELS["int8"], "edge-ocr INT8"),
                 lambda: edge_ocr_engine(MODELS["fp32"], "edge-ocr FP32"),
                 lambda: edge_ocr_engine(MODELS["int8"], "edge-ocr INT8, still image (re-reads)",
                                         RecognizerConfig().retry_below),
                 rapidocr_engine, tesseract_engine):
        eng = make()
        print(f"engine {eng.name}", flush=True)
        if eng.read is None:
            res["engines"].append({"engine": eng.name, "missing": eng.missing})
            continue
        r = run_engine(eng, imgs, truths, regions, norm)
        r["threshold_curve"] = threshold_curve(r.pop("hits"))
        r["latency"] = pct(r["latency_ms"])
        res["engines"].append(r)

    print("pipeline", flush=True)
    sizes = [(640, 480)] if args.smoke else [(1280, 720), (640, 480)]
    res["pipeline"] = [bench_pipeline(s, m, 2 if args.smoke else 6) for s in sizes for m in (True, False)]
    res["daemon"] = bench_daemon(2 if args.smoke else 10, 15)
    print("mqtt", flush=True)
    res["mqtt"] = bench_mqtt(50, 20) if args.smoke else bench_mqtt(3000, 2000)
    res["pi"] = pi_estimate()
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    res["plots"] = write_plots(res, args.out.parent)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    # the "Real video" section comes from bench/video_eval.py, the daemon memory one from
    # bench/daemon_rss.py (minutes each, and the latter needs git), "Many cameras" from
    # bench/many_cameras.py, and whole photos, localisers and recogniser sizes from
    # bench/still_eval.py, bench/localizers.py and bench/recognize_parts.py: this run keeps them
    old = args.out.read_text() if args.out.exists() else ""
    md = render(res)
    for heading in (VIDEO_SECTION, DAEMON_SECTION, STILL_SECTION, CAMERAS_SECTION, LOCALIZER_SECTION, PARTS_SECTION):
        md = keep_section(old, md, heading)
    args.out.write_text(md)
    print(render(res))


def _int8_vs_fp32(res: dict) -> str:
    one = {r["model"]: r["ms_per_crop"]["p50"] for r in res["recognizer"] if r["threads"] == 1 and r["batch"] == 1}
    if "int8" not in one or "fp32" not in one:
        return ""
    ratio = one["fp32"] / one["int8"]
    how = f"{ratio:.2f}× as fast as" if ratio >= 1 else f"{1 / ratio:.2f}× slower than"
    return (f" Here INT8 is {how} FP32 (batch 1, 1 thread, p50); on x86 without VNNI the int8 convolutions "
            "gain little (models/MODEL_CARD.md). INT8 is the default for its size and for ARM64 with "
            "dot-product instructions.")


def render(res: dict) -> str:
    m = res["machine"]
    L = ["# Benchmarks", "", f"Run: `{res['command']}` on {res['date']}.", "",
         f"Machine: {m['cpu']}, {m['cores']} cores, {m['arch']} ({m['cpu_flags'] or 'no SIMD flags read'}); "
         f"Python {m['python']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}, OpenCV {m['opencv']}.", ""]
    base = next((e for e in res["engines"] if e["engine"] == "edge-ocr INT8" and "latency" in e), None)
    L += ["## Side by side: the engines a user would otherwise pick", "",
          f"Same crops for every engine: {res['engines_crops']}. Batch 1, one thread, each engine's text "
          "normalised like ours (`tools/evaluate.py`). Ratios are against edge-ocr INT8.", "",
          "| engine | exact | CER | US+EU exact | p50 ms | p95 ms | speed vs edge-ocr INT8 | exact vs edge-ocr INT8 |",
          "|---|---|---|---|---|---|---|---|"]
    for e in res["engines"]:
        if "missing" in e:
            L.append(f"| {e['engine']} | — | — | — | — | — | {e['missing']} | — |")
            continue
        o = e["regions"]["overall"]
        speed, exact = ("1×", "—") if e is base else ("—", "—")
        if base and e is not base:
            ratio = e["latency"]["p50"] / base["latency"]["p50"]
            speed = f"{ratio:.1f}× slower" if ratio >= 1 else f"{1 / ratio:.1f}× faster"
            exact = f"{100 * (o['exact'] - base['regions']['overall']['exact']):+.1f} points"
        L.append(f"| {e['engine']} | {100 * o['exact']:.1f} % | {100 * o['cer']:.1f} % | "
                 f"{100 * e['us_eu_exact']:.1f} % | {e['latency']['p50']} | {e['latency']['p95']} | {speed} | {exact} |")
    L += ["", "By region (exact):", "", "| engine | us | eu | br | cn |", "|---|---|---|---|---|"]
    for e in res["engines"]:
        if "regions" in e:
            L.append(f"| {e['engine']} | " + " | ".join(
                f"{100 * e['regions'][r]['exact']:.1f} %" if r in e["regions"] else "—" for r in ("us", "eu", "br", "cn"))
                + " |")
    if base:
        L += ["", "edge-ocr INT8 by confidence threshold (published share / exact among published):", ""]
        L.append(" · ".join(f"{c['threshold']:.1f}: {100 * c['published']:.0f} % / "
                            f"{100 * c['exact_of_published']:.1f} %" for c in base["threshold_curve"][::2]
                            if c["exact_of_published"] is not None))
    L += ["", "Reading this: *exact* is the whole plate right after normalisation; *US+EU exact* is the "
          "figure the project brief quotes for PP-OCRv4 (≈ 61 % there). edge-ocr rows here read through "
          "the product's reader (the default config's formats: us, eu, br, cn), each crop "
          "alone (batch 1, cut to its own width), `tools/evaluate.py` below batches 32 crops at full "
          "width, so the two can differ by a crop or two. The first two edge-ocr rows read each crop once, "
          "as the live pipeline does before its frames vote; the *still image* row is what `POST /api/ocr` "
          "and `edge-ocr recognize` do: a crop read with confidence under 0.6 is read again from five "
          "re-cut copies (`recognizer.retry_below`), so its p95 is higher. Every edge-ocr row also reads a "
          "crop shaped like a two-row plate whose rows were not found a second time, cut at its middle, "
          "when the first reading is under 0.7 (issue 25; 7 % of these crops): their p95 includes that "
          "second call." + _int8_vs_fp32(res)]
    for p in res.get("plots", []):
        L += ["", f"![{p}]({p})"]
    L += ["", "## Recogniser (ms per crop)", "", f"Crops: {res['recognizer_crops']} (inputs are cut to each batch's widest "
          "crop, so the mix of plate shapes matters).", "",
          "| model | threads | batch | p50 | p95 | p99 | load ms | MB |", "|---|---|---|---|---|---|---|---|"]
    for r in res["recognizer"]:
        q = r["ms_per_crop"]
        L.append(f"| {r['model']} | {r['threads']} | {r['batch']} | {q['p50']} | {q['p95']} | {q['p99']} | "
                 f"{r['load_ms']} | {r['size_mb']} |")
    L += ["", "By input width (batch 1, 1 thread, p50 ms; the two models' runs interleaved):", "",
          "| width | " + " | ".join(MODELS) + " |", "|---|" + "---|" * len(MODELS)]
    for w in res.get("widths", []):
        L.append(f"| {w['width']} px | " + " | ".join(str(w[m]) for m in MODELS) + " |")
    L += ["", "## Accuracy (`tools/evaluate.py`: exact plate / CER)", "",
          "Each crop read by the product's reader (the stage set's `PlateReader`: the crop's own region's "
          "characters and format rules), as `/api/ocr?crop=1` reads it.", "",
          "| set / model | region | n | exact | CER | published at 0.6 | exact of published |", "|---|---|---|---|---|---|---|"]
    for k, ev in res["accuracy"].items():
        for reg, v in ev["regions"].items():
            extra = (f"{100 * ev['above_threshold_fraction']:.1f} % | {100 * ev['above_threshold_exact']:.1f} %"
                     if reg == "overall" else " | ")
            L.append(f"| {k} | {reg} | {v['n']} | {100 * v['exact']:.1f} % | {100 * v['cer']:.2f} % | {extra} |")
    L += ["", "## Pipeline (INT8, 1 recogniser thread, frames fed as fast as processed)", "",
          "| video | motion gating | frames | fps | CPU % of one core | events |", "|---|---|---|---|---|---|"]
    for p in res["pipeline"]:
        L.append(f"| {p['size']} | {p['motion_gating']} | {p['frames']} | {p['fps']} | "
                 f"{p['cpu_percent_of_one_core']} | {p['events']} |")
    d = res["daemon"]
    L += ["", f"Daemon (`edge-ocr run`, 1280×720 looping video at {d['camera_fps']} fps for {d['seconds']} s): "
          f"start to READY {d['start_to_ready_s']} s; {d['frames']} frames read, {d['dropped_frames']} dropped, "
          f"{d['skipped_frames']} skipped, {d['events']} events, pipeline p50 {d['latency_p50_ms']} ms/frame; "
          f"exit code {d['exit_code']}.", "", f"Peak RSS of the benchmark process: {res['peak_rss_mb']} MB.", ""]
    q = res["mqtt"]
    L += ["## MQTT (QoS 1, local Mosquitto, SQLite outbox)", ""]
    if "missing" in q:
        L.append(q["missing"])
    else:
        L += [f"- cost of `publish_event` on the pipeline thread: p50 {q['cost_ms_p50']} ms, p99 {q['cost_ms_p99']} ms",
              f"- sustained: {q['sustained_events_per_s']} events/s acknowledged ({q['events']} events)",
              f"- broker stopped, {q['outage_events']} events queued ({q['queued_during_outage']} in the outbox), "
              f"broker back: replayed in {q['replay_s']} s = {q['replay_events_per_s']} events/s"]
    pi = res["pi"]
    L += ["", "## Raspberry Pi estimate (not measured)", "",
          "Multiply-adds per crop (`tools/crnn.py: count_macs`): " + ", ".join(
              f"{k.rsplit('_', 1)[1]} px wide {v / 1e6:.1f} M" for k, v in pi.items()) + ".",
          "", "Basis: on this x86 core the FP32 model runs the full-width crop (77.6 M MACs) in the p50 above, "
          "≈ 25–30 GMAC/s, about half of AVX2 FMA peak. A Cortex-A72 (Pi 4, 1.8 GHz, 2×128-bit NEON FMA) peaks at "
          "≈ 14 GMAC/s FP32 and a Cortex-A76 (Pi 5, 2.4 GHz) at ≈ 19 GMAC/s; at the same ~50 % efficiency a "
          "full-width crop would take ≈ 11 ms (Pi 4) and ≈ 8 ms (Pi 5) in FP32, a 2:1 US crop (64 px) about "
          "40 % of that. The A76 has int8 dot-product instructions (SDOT): INT8 convolutions there should run "
          "≈ 2× faster than FP32 (≈ 5 ms full width); the A72 lacks them, so measure both files there "
          "(`tools/evaluate.py` prints p50) and pick the faster. The LSTM (≈ 12 M MACs, sequential over the columns) has int8 weights in the INT8 file (dynamic quantisation) and gains less.", ""]
    return "\n".join(L)


if __name__ == "__main__":
    main()
