"""Per-car accuracy of the whole daemon on videos made from real car photos.

    python -m bench.video_eval --frames ../shared/data/plates-real-dev/frames/frames.csv
    python -m bench.video_eval --frames ... --regions own --json own.json --benchmarks BENCHMARKS.md
    python -m bench.video_eval --frames ... --cars 30 --jobs 1          # a quick look, ~2.5 min

Each photo of ``frames.csv`` becomes a car passing through a 1280x720 scene (bench/video_scene.py:
1 s empty, a 3 s pass, plate scales and motion blur cycled). The videos (in a temporary folder,
never in the repository) are played at camera pace through the real daemon (``python -m edge_ocr
run``) with the given config (default: the shipped config.yaml) adapted: camera = the video,
MQTT = a Mosquitto started here on a free port, outbox in the temporary folder, and
``formats.regions`` = the config's (``--regions shipped``) or each car's own (``--regions own``,
one daemon per region). A subscriber collects every plate event; each event is given to the car
in view at its frame's time. Per car: **right** (an event with its plate), **wrong** (no right
event, but one within half its characters of the plate), **missed** (neither); and the events:
**duplicate** (a second right event for the same car) and **extra** (any event whose text is not
the car's plate: misreads of the plate, signs, half plates). For comparison, the per-crop
accuracy of the same plates: the annotated box plus 8 % margin cut from the full photo, read
by the stage set's reader with the same regions' characters and format rules, as a still image.

Videos run ``--jobs`` at a time (2 by default: a whole run of the 210 dev photos takes about
8 minutes on 2 cores). Writes a JSON report (``--json``) and, with ``--benchmarks``, its block of
the "Real video" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import yaml

from bench.broker import LocalBroker, free_port
from bench.video_scene import Car, Pass, load_cars, plate_crop, render
from edge_ocr.config import load_config, override
from edge_ocr.read.reading import verdict
from edge_ocr.stages import Stages
from tools.evaluate import split_of

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Real video: one event per car"
TOLERANCE_S = 0.5  # an event's frame this close to a car's pass still belongs to it


# ----------------------------------------------------------------------------- scoring (pure)

def same_plate(a: str, b: str, region: str) -> bool:
    """US labels write the letter O as the digit 0 (one glyph on most states' plates)."""
    if region == "us":
        a, b = a.replace("O", "0"), b.replace("O", "0")
    return a == b


def near(text: str, truth: str) -> bool:
    """A misreading of ``truth`` rather than other text: within half its characters."""
    n, m = len(text), len(truth)
    d = list(range(m + 1))
    for i in range(1, n + 1):
        prev, d[0] = d[0], i
        for j in range(1, m + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (text[i - 1] != truth[j - 1]))
    return d[m] <= max(n, m) // 2


def assign(passes: list[Pass], events: list[tuple[float, str]]) -> tuple[list[list[str]], list[tuple[float, str]]]:
    """Each event (video time of its frame, text) to the car in view then (or within
    ``TOLERANCE_S``); returns the texts per car and the events no car was near."""
    per: list[list[str]] = [[] for _ in passes]
    stray = []
    for t, text in sorted(events):
        dist = [max(p.enter - t, t - p.leave, 0.0) for p in passes]
        i = int(np.argmin(dist)) if dist else -1
        if i < 0 or dist[i] > TOLERANCE_S:
            stray.append((t, text))
        else:
            per[i].append(text)
    return per, stray


def score(passes: list[Pass], per_car: list[list[str]], stray: int = 0) -> dict[str, Any]:
    """Per-car outcomes and event counts (see the module docstring)."""
    cars = []
    for p, texts in zip(passes, per_car, strict=True):
        right = sum(same_plate(t, p.car.text, p.car.region) for t in texts)
        extra = [t for t in texts if not same_plate(t, p.car.text, p.car.region)]
        outcome = "right" if right else "wrong" if any(near(t, p.car.text) for t in extra) else "missed"
        cars.append({**p.to_json(), "events": texts, "outcome": outcome, "duplicates": max(0, right - 1),
                     "extra": extra})
    return {"cars": cars, "summary": summarise(cars, stray)}


def summarise(cars: list[dict], stray: int = 0) -> dict[str, Any]:
    def block(cs: list[dict]) -> dict[str, Any]:
        n = len(cs)
        out = {k: sum(c["outcome"] == k for c in cs) for k in ("right", "wrong", "missed")}
        extra = [t for c in cs for t in c["extra"]]
        misread = sum(near(t, c["text"]) for c in cs for t in c["extra"])
        res = {"cars": n, **out, "right_pct": round(100 * out["right"] / max(n, 1), 1),
               "duplicate_events": sum(c["duplicates"] for c in cs), "extra_events": len(extra),
               "extra_misreads": misread, "extra_other": len(extra) - misread}
        if cs and "crop_ok" in cs[0]:
            res["crop_right"] = sum(c["crop_ok"] for c in cs)
            res["crop_pct"] = round(100 * res["crop_right"] / max(n, 1), 1)
            res["crop_right_video_not"] = sum(c["crop_ok"] and c["outcome"] != "right" for c in cs)
        return res

    regions = sorted({c["region"] for c in cars})
    return {"overall": {**block(cars), "stray_events": stray},
            **{r: block([c for c in cars if c["region"] == r]) for r in regions}}


# ----------------------------------------------------------------------------- per-crop reading

def crop_readings(cars: list[Car], photos: Path, cfg, regions_of: dict[str, list[str]]) -> list[tuple[str, bool]]:
    """(reading, right?) of each car's annotated crop, read as ``/api/ocr?crop=1`` reads it: by the
    reader of the stage set the config builds (``recognizer.retry_below`` re-reads, one thread)
    with the characters and rules of the car's regions; a reading counts when the daemon would
    accept it (``reading.verdict``), else it is ""."""
    stages: dict[tuple[str, ...], Stages] = {}
    out = []
    for car in cars:
        key = tuple(regions_of[car.region])
        if key not in stages:
            c = override(cfg, "video_eval", recognizer={"threads": 1}, formats={"regions": list(key)})
            shared = next(iter(stages.values()), None)  # one model for every region set
            stages[key] = (Stages.from_config(c, shared.recognizer, shared.cfg.recognizer) if shared
                           else Stages.from_config(c))
        photo = cv2.imread(str(photos / car.file), cv2.IMREAD_COLOR)
        if photo is None:
            raise FileNotFoundError(f"{photos / car.file}: cannot read the photo")
        p = stages[key].reader.read_crops([plate_crop(photo, car.box)])[0]
        text = p.text if verdict(p, cfg.recognizer.min_confidence) == "accept" else ""
        out.append((text, bool(text) and same_plate(text, car.text, car.region)))
    return out


# ----------------------------------------------------------------------------- running the daemon

class Subscriber:
    """Every plate event of every device, with the time it arrived."""

    def __init__(self, port: int) -> None:
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"video-eval-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("edge-ocr/+/plate", qos=1)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.events.append(json.loads(msg.payload))

    def of(self, device: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e.get("device") == device]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def daemon_config(base: dict, video: Path, device: str, port: int, workdir: Path, regions: list[str],
                  fps: float) -> Path:
    cfg = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    cfg["device_id"] = device
    cfg["log_level"] = "INFO"
    cfg["camera"] = {**cfg.get("camera", {}), "type": "file", "uri": str(video), "fps": fps, "loop": False}
    mq = cfg.setdefault("mqtt", {})
    mq.update({"enabled": True, "host": "127.0.0.1", "port": port, "username": None, "password": None,
               "password_file": None, "client_id": None, "topic_prefix": "edge-ocr"})
    mq["tls"] = {"enabled": False}
    mq["discovery"] = {"enabled": False}
    cfg["outbox"] = {**cfg.get("outbox", {}), "path": str(workdir / f"{device}.sqlite")}
    cfg["http"] = {"enabled": False}
    cfg.setdefault("formats", {})["regions"] = regions
    path = workdir / f"{device}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Daemons:
    """The daemons running now, so that an interrupted evaluation stops them all."""

    def __init__(self) -> None:
        self.procs: set[subprocess.Popen] = set()
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self, config: Path) -> subprocess.Popen:
        with self._lock:
            if self.stopping.is_set():
                raise RuntimeError("evaluation interrupted")
            proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "--config", str(config)], cwd=ROOT,
                                    stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            self.procs.add(proc)
            return proc

    def done(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self.procs.discard(proc)

    def stop_all(self) -> None:
        with self._lock:
            self.stopping.set()
            for proc in self.procs:
                proc.kill()


DAEMONS = Daemons()


def run_daemon(config: Path, timeout: float) -> dict[str, Any]:
    """Run the daemon until its video ends; the wall times at which the file opened and ended
    (from its log, stamped as the lines arrive) and its final stats."""
    proc = DAEMONS.start(config)
    info: dict[str, Any] = {"opened": None, "ended": None, "stats": {}, "tail": []}
    assert proc.stderr is not None
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        for line in proc.stderr:
            now = time.time()
            line = line.rstrip()
            info["tail"] = (info["tail"] + [line])[-20:]
            if info["opened"] is None and re.search(r": file opened$", line):
                info["opened"] = now
            elif re.search(r": file ended$", line):
                info["ended"] = now
            elif " stopped: " in line:
                info["stats"] = json.loads(line.split(" stopped: ", 1)[1])
        info["exit_code"] = proc.wait(30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        DAEMONS.done(proc)
    return info


def run_shard(k: int, cars: list[Car], first: int, regions: list[str], args, base: dict, port: int, workdir: Path,
              sub: Subscriber) -> tuple[list[Pass], list[tuple[float, str]], dict]:
    video, passes = render_shard(workdir, k, cars, first, args)
    duration = len(cars) * (args.pass_s + args.gap_s) + args.gap_s
    device = f"video-eval-{k}"
    info = run_daemon(daemon_config(base, video, device, port, workdir, regions, args.fps), duration * 3 + 120)
    if video.exists() and not args.keep:
        video.unlink()
    if info.get("exit_code") != 0 or info["opened"] is None or info["ended"] is None:
        raise RuntimeError(f"shard {k}: daemon failed (exit {info.get('exit_code')}):\n" + "\n".join(info["tail"]))
    # the source paces from a schedule that moves when a frame is late: map wall time to video
    # time by the file's measured span, not by the nominal frame rate
    frames = int(round(duration * args.fps))
    stretch = (frames / args.fps) / max(info["ended"] - info["opened"], 1e-3)
    time.sleep(0.5)  # the last acknowledgements reach the subscriber
    events = []
    for e in sub.of(device):
        wall = dt.datetime.fromisoformat(e["time_utc"]).timestamp()
        events.append(((wall - info["opened"]) * stretch, e["text"]))
    stats = {**info["stats"], "exit_code": info["exit_code"], "time_stretch": round(stretch, 4)}
    return passes, events, stats


def render_shard(workdir: Path, k: int, cars: list[Car], first: int, args) -> tuple[Path, list[Pass]]:
    """Video ``k`` of a run (cars ``first``... of the whole list) in ``workdir``, and its passes."""
    video = workdir / f"shard{k}.{'mp4' if args.codec == 'mp4v' else 'avi'}"
    passes = render(video, cars, args.frames.parent, args.fps, args.pass_s, args.gap_s, args.scales, args.blurs,
                    seed=k, fourcc=args.codec, first=first)
    return video, passes


def run_shard_offline(k: int, cars: list[Car], first: int, regions: list[str], args, base: dict
                      ) -> tuple[list[Pass], list[tuple[float, str]], dict]:
    """One video through the daemon's ``Pipeline`` in this process, every frame on the video's own
    clock: what the reading stages and the voter make of the cars when no frame is dropped
    (``--offline``; the default mode runs the real daemon at camera pace, frame drops included)."""
    from edge_ocr.config import parse_config
    from edge_ocr.daemon import Pipeline
    from edge_ocr.types import Frame

    with tempfile.TemporaryDirectory(prefix="edge-ocr-video-") as tmp:
        video, passes = render_shard(Path(tmp), k, cars, first, args)
        cfg = json.loads(json.dumps(base))
        cfg["mqtt"] = {"enabled": False}
        cfg["http"] = {"enabled": False}
        cfg.setdefault("formats", {})["regions"] = regions
        events: list[tuple[float, str]] = []
        wall0 = 1_800_000_000.0

        class Collect:
            def publish_event(self, ev) -> None:
                t = dt.datetime.fromisoformat(ev.time_utc).timestamp() - wall0
                events.append((t, ev.text))

        now = [0.0]
        pipe = Pipeline(Stages.from_config(parse_config(yaml.safe_dump(cfg))), Collect(), clock=lambda: now[0],
                        wall_clock=lambda: wall0 + now[0])
        cap = cv2.VideoCapture(str(video))
        i = 0
        ms: list[float] = []  # the pipeline's own time per frame (decoding not counted)
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                now[0] = i / args.fps
                t = time.perf_counter()
                pipe.process(Frame(now[0], wall0 + now[0], img, i))
                ms.append(round((time.perf_counter() - t) * 1000, 2))
                i += 1
        finally:
            cap.release()
        pipe.flush(now[0] + 10.0)
    return passes, events, {**pipe.counters, "frames_decoded": i, "ms_per_frame": ms}


def shards(cars: list[Car], mode: str, shipped: list[str], size: int) -> list[tuple[list[Car], list[str]]]:
    """Cars in videos of at most ``size`` cars: all together (shipped regions) or per region."""
    groups = [(cars, shipped)] if mode == "shipped" else [
        ([c for c in cars if c.region == r], [r]) for r in sorted({c.region for c in cars})]
    out = []
    for group, regions in groups:
        n = -(-len(group) // size)
        # the dev frames hold some plates twice (two photos of one car): in one video the second
        # pass would be, rightly, a repeat the daemon does not publish (voting.repeat_after_s),
        # so each repeat goes to a video of its own plates
        chunks: list[list[Car]] = []
        repeats: list[list[Car]] = []
        for chunk in np.array_split(np.arange(len(group)), n):
            cs: list[Car] = []
            for i in chunk:
                car = group[int(i)]
                if any(c.text == car.text for c in cs):
                    home = next((r for r in repeats if all(c.text != car.text for c in r)), None)
                    if home is None:
                        repeats.append(home := [])
                    home.append(car)
                else:
                    cs.append(car)
            chunks.append(cs)
        out += [(c, regions) for c in chunks + repeats if c]
    return out


def select(cars: list[Car], n: int | None, only: list[str] | None, split: str = "all") -> list[Car]:
    """``n`` cars spread evenly over the list (every region in proportion), of ``only`` regions,
    of one ``split`` by plate (``val``: the plates the learnt detector never trained on)."""
    if only:
        cars = [c for c in cars if c.region in only]
    if split != "all":
        cars = [c for c in cars if split_of(c.text, c.region) == split]
    if n and n < len(cars):
        cars = [cars[int(i)] for i in np.linspace(0, len(cars) - 1, n).round()]
    return cars


def evaluate(args) -> dict[str, Any]:
    cars = select(load_cars(args.frames), args.cars, args.only, args.split)
    if not cars:
        raise ValueError("no cars selected (--cars / --only)")
    cfg = load_config(str(args.config))
    base = yaml.safe_load(args.config.read_text()) or {}
    shipped = list(cfg.formats.regions)
    regions_of = {c.region: (shipped if args.regions == "shipped" else [c.region]) for c in cars}
    t0 = time.monotonic()
    crops = crop_readings(cars, args.frames.parent, cfg, regions_of)
    plan = shards(cars, args.regions, shipped, args.shard_cars)
    firsts = [int(f) for f in np.cumsum([0] + [len(c) for c, _ in plan])]  # each video's first car in the run
    if args.offline:
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
            futs = [pool.submit(run_shard_offline, k, group, firsts[k], regions, args, base)
                    for k, (group, regions) in enumerate(plan)]
            results = [f.result() for f in futs]
    else:
        results = run_daemons(args, plan, firsts, base)
    return finish(args, cars, crops, shipped, results, t0)


def run_daemons(args, plan: list[tuple[list[Car], list[str]]], firsts: list[int], base: dict) -> list:
    with tempfile.TemporaryDirectory(prefix="edge-ocr-video-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        broker = LocalBroker(workdir, port)
        broker.start()
        sub = Subscriber(port)
        try:
            pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
            try:
                futs = [pool.submit(run_shard, k, group, firsts[k], regions, args, base, port, workdir, sub)
                        for k, (group, regions) in enumerate(plan)]
                results = [f.result() for f in futs]
            except BaseException:
                DAEMONS.stop_all()  # no daemon outlives an interrupted or failed run
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            sub.stop()
            broker.stop()
    return results


def finish(args, cars: list[Car], crops: list[tuple[str, bool]], shipped: list[str], results: list,
           t0: float) -> dict[str, Any]:
    passes, per_car, stray, daemons = [], [], 0, []
    for p, events, stats in results:
        got, lost = assign(p, events)
        passes += p
        per_car += got
        stray += len(lost)
        daemons.append(stats)
    res = score(passes, per_car, stray)
    by_file = {c.file: (i, r) for i, (c, r) in enumerate(zip(cars, crops, strict=True))}
    for c in res["cars"]:
        c["crop_read"], c["crop_ok"] = by_file[c["file"]][1]
    res["cars"].sort(key=lambda c: by_file[c["file"]][0])  # the order of frames.csv, whatever the videos
    res["summary"] = summarise(res["cars"], stray)
    res["daemons"] = daemons
    res["run"] = {
        "command": "python -m bench.video_eval " + " ".join(sys.argv[1:]),
        "date": dt.date.today().isoformat(), "regions": args.regions, "shipped_regions": shipped,
        "config": str(args.config), "offline": bool(args.offline), "fps": args.fps, "pass_s": args.pass_s, "gap_s": args.gap_s,
        "scales": list(args.scales), "blur_px": list(args.blurs), "codec": args.codec, "jobs": args.jobs,
        "wall_s": round(time.monotonic() - t0, 1), "machine": machine(),
    }
    return res


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.machine()}; Python {platform.python_version()}"


# ----------------------------------------------------------------------------- report

def table(res: dict) -> str:
    rows = ["| cars | n | right | wrong | missed | per car | per crop | crop right, video not | duplicate events "
            "| extra events (misreads + other) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for k, s in res["summary"].items():
        rows.append(f"| {k} | {s['cars']} | {s['right']} | {s['wrong']} | {s['missed']} | {s['right_pct']} % "
                    f"| {s.get('crop_pct', '')} % | {s.get('crop_right_video_not', '')} | {s['duplicate_events']} "
                    f"| {s['extra_events']} ({s['extra_misreads']} + {s['extra_other']}) |")
    return "\n".join(rows)


def markdown_block(res: dict) -> str:
    run = res["run"]
    label = ("shipped `formats.regions` " + str(run["shipped_regions"]).replace("'", "")
             if run["regions"] == "shipped" else "`formats.regions` = each car's own region")
    if run.get("offline"):
        label += ", offline (every frame through the daemon's `Pipeline` in-process, none dropped)"
    drops = sum(d.get("dropped_frames", 0) for d in res["daemons"])
    frames = sum(d.get("frames", 0) for d in res["daemons"])
    other = sorted({t for c in res["cars"] for t in c["extra"] if not near(t, c["text"])})
    ms = [m for d in res["daemons"] for m in d.get("ms_per_frame", [])]
    cost = (f"; pipeline {np.percentile(ms, 50):.1f} ms per frame p50, {np.percentile(ms, 95):.1f} p95, "
            f"{len(ms)} frames, {run['jobs']} processes on {os.cpu_count()} cores" if ms else "")
    lines = [f"### {label}", "", f"`{run['command']}` on {run['date']} ({run['wall_s']} s, {run['jobs']} "
             f"daemons at a time; {frames} frames read, {drops} dropped, {res['summary']['overall']['stray_events']} "
             f"events outside any pass{cost}).", "", table(res), ""]
    if other:
        lines += ["Extra events that are not misreads of the car's plate: " + ", ".join(f"`{t}`" for t in other[:40])
                  + (" …" if len(other) > 40 else ""), ""]
    return "\n".join(lines)


def update_benchmarks(path: Path, res: dict) -> None:
    """Replace this mode's block in the "Real video" section (created if absent)."""
    mode = ("offline-" if res["run"].get("offline") else "") + res["run"]["regions"]
    begin, end = f"<!-- video-eval:{mode} -->", f"<!-- /video-eval:{mode} -->"
    md = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION not in md:
        run = res["run"]
        md = md.rstrip("\n") + "\n\n" + "\n".join([
            SECTION, "",
            "Each dev photo (`frames.csv`, one plate each) slides through a 1280×720 scene as a car "
            f"(`bench/video_scene.py`: {run['gap_s']:g} s empty, a {run['pass_s']:g} s pass, the plate "
            f"scaled {'/'.join(f'{s:g}' for s in run['scales'])} (at least 80 px wide, never enlarged past the "
            f"photo's own pixels), motion blur {'/'.join(str(b) for b in run['blur_px'])} px, "
            f"{run['codec']} at {run['fps']:g} fps), played at camera pace through `edge-ocr run` with the "
            "shipped config into a real Mosquitto. Per car: right, wrong (a misread), missed; duplicate and "
            "extra events (any text that is not the car's plate). *Per crop*: the annotated box + 8 % "
            "margin cut from the same photo, read as a still image with the same regions. Machine: "
            f"{run['machine']}.", "",
            "<!-- video-eval:shipped -->", "<!-- /video-eval:shipped -->", "",
            "<!-- video-eval:own -->", "<!-- /video-eval:own -->", ""])
    block = f"{begin}\n{markdown_block(res)}{end}"
    if begin in md and end in md:
        md = md[: md.index(begin)] + block + md[md.index(end) + len(end):]
    else:  # a new mode: at the end of the section
        nxt = md.find("\n## ", md.index(SECTION) + len(SECTION))
        nxt = len(md) if nxt < 0 else nxt + 1
        md = md[:nxt].rstrip("\n") + "\n\n" + block + "\n\n" + md[nxt:]
    path.write_text(md.rstrip("\n") + "\n")


def keep_section(old_md: str, new_md: str, heading: str = SECTION) -> str:
    """``new_md`` with the section of ``old_md`` under ``heading`` (default: "Real video") kept
    (``python -m bench`` rewrites BENCHMARKS.md but does not run this evaluation, nor
    bench/daemon_rss.py)."""
    if heading not in old_md or heading in new_md:
        return new_md
    rest = old_md[old_md.index(heading):]
    nxt = re.search(r"^## ", rest[len(heading):], re.MULTILINE)
    section = rest if nxt is None else rest[: len(heading) + nxt.start()]
    return new_md.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"


def floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(",") if x.strip())


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def add_photo_args(ap: argparse.ArgumentParser, own_regions: str) -> None:
    """--frames, --config and --regions, shared by the evaluations on the dev photos;
    ``own_regions`` says what ``--regions own`` means to the tool."""
    ap.add_argument("--frames", type=Path, default=ROOT.parent / "shared/data/plates-real-dev/frames/frames.csv",
                    help="frames.csv (file,x,y,w,h,text,region), photos relative to it")
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml", help="base config (default: the shipped one)")
    ap.add_argument("--regions", choices=["shipped", "own"], default="shipped",
                    help=f"formats.regions: the config's, or {own_regions}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_photo_args(ap, "each car's own region (one daemon per region)")
    ap.add_argument("--cars", type=int, default=None, help="only this many cars, spread over the list")
    ap.add_argument("--only", type=lambda s: s.split(","), default=None, help="only these regions, e.g. us,eu")
    ap.add_argument("--split", choices=["all", "train", "val"], default="all",
                    help="only the plates of this split by plate (tools/evaluate.py's); val: never trained on")
    ap.add_argument("--fps", type=float, default=10.0, help="video and camera frame rate")
    ap.add_argument("--pass-s", type=float, default=3.0, help="seconds from a car entering to leaving")
    ap.add_argument("--gap-s", type=float, default=1.0, help="empty seconds before each car")
    ap.add_argument("--scales", type=floats, default=(1.0, 0.75, 0.55), help="plate scales, cycled over cars")
    ap.add_argument("--blurs", type=lambda s: tuple(int(x) for x in s.split(",")), default=(0, 2, 4),
                    help="motion blur lengths, px, cycled over cars")
    ap.add_argument("--codec", choices=["mp4v", "MJPG"], default="mp4v")
    ap.add_argument("--jobs", type=int, default=2, help="daemons at a time")
    ap.add_argument("--offline", action="store_true",
                    help="drive the daemon's Pipeline in-process on the video's own clock (no broker, no frame "
                         "dropped): the reading and voting alone, as fast as the machine goes")
    ap.add_argument("--shard-cars", type=int, default=27, help="most cars per video")
    ap.add_argument("--keep", type=str, default=None, help="write videos and configs here and keep them")
    ap.add_argument("--json", type=Path, default=None, help="write the full report (every car) here")
    ap.add_argument("--benchmarks", type=Path, default=None, help="update this mode's block in this BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.shard_cars < 1 or args.fps <= 0 or args.pass_s <= 0 or args.gap_s < 0:
        ap.error("--jobs and --shard-cars must be >= 1, --fps and --pass-s > 0, --gap-s >= 0")
    # SIGTERM unwinds like Ctrl-C, so the daemons and the broker are stopped on the way out
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        res = evaluate(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"video_eval: error: {exc}", file=sys.stderr)
        return 1
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, ensure_ascii=False))
    if args.benchmarks:
        update_benchmarks(args.benchmarks, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
