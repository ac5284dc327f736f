"""The daemon's memory and speed on a 720p stream, before and after a commit, in one command:

    python -m bench.daemon_rss                       # 9ab2d5f against this checkout, ~4 min
    python -m bench.daemon_rss --before 9ab2d5f --seconds 40 --core 1 --out BENCHMARKS.md

Writes a 1280x720 25 fps video of cars passing (tools/make_demo_video.py) to a temp dir, starts a
Mosquitto on a free port, and runs the real ``edge-ocr run`` of each version (the old one from a
``git worktree`` of ``--before`` outside the repo, removed afterwards) pinned to one core with
``taskset``, with the shipped defaults except camera = the video file, MQTT = that broker, outbox
in the temp dir. Each version runs twice: at camera pace (``camera.fps`` 25, what a real camera
delivers; frames the pipeline cannot take are dropped) and as fast as the config allows
(``camera.fps`` 120, the schema's limit), which gives its throughput. VmRSS is sampled from
/proc/PID/status every 0.25 s from "ready" until exit; VmHWM is the kernel's peak for the whole
run, start-up included. Frames per second = frames the pipeline took (the final stats line)
divided by the time from "ready" to "source ended". Replaces the "Daemon memory" section of
``--out``; ``python -m bench`` keeps it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from bench.broker import LocalBroker, free_port
from bench.machine import LoadMeter, load_sentence, machine

SECTION = "## Daemon memory and speed, before and after"
PLATES = [("RK115AN", "eu"), ("PJC4903", "br"), ("7ABC123", "us"), ("MX4821K", "eu"),
          ("QRT2C55", "br"), ("8KDE250", "us"), ("BZ904LT", "eu"), ("HJK3107", "br")]


def make_video(path: Path, seconds: float, fps: int = 25) -> int:
    from tools import make_demo_video

    per_car = seconds / len(PLATES)
    return make_demo_video.render(path, PLATES, 1280, 720, fps, seconds_per_car=per_car - 0.5, gap_s=0.5)


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except (OSError, ValueError):
        pass  # the process has just exited
    return out


def run_daemon(code: Path, video: Path, tmp: Path, port: int, camera_fps: float, core: int) -> dict:
    """One ``edge-ocr run`` of the package under ``code`` until the video ends."""
    outbox = tmp / f"outbox-{os.getpid()}-{time.monotonic_ns()}.sqlite"
    cfg = tmp / "config.yaml"
    # keys both versions accept; the model is each version's own default (models/ beside its package)
    cfg.write_text(f"camera: {{type: file, uri: '{video}', fps: {camera_fps}, loop: false}}\n"
                   f"mqtt: {{host: 127.0.0.1, port: {port}}}\n"
                   f"outbox: {{path: '{outbox}'}}\n")
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "edge_ocr", "run", "--config", str(cfg)]
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marks: dict[str, float] = {}
    lines: list[str] = []

    def reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            now = time.monotonic()
            # bounded: only the final stats line and the first errors are needed
            if len(lines) < 2000 or "stopped: {" in line:
                lines.append(line.rstrip("\n"))
            if "ready:" in line and "ready" not in marks:
                marks["ready"] = now
            if "source ended" in line:
                marks["ended"] = now

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    rss: list[int] = []
    hwm = 0
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        s = status_kb(proc.pid)
        hwm = max(hwm, s.get("VmHWM", 0))
        if "ready" in marks and "VmRSS" in s:
            rss.append(s["VmRSS"])
        time.sleep(0.25)
    if proc.poll() is None:
        proc.terminate()
    proc.wait(30)
    th.join(10)
    stats: dict = {}
    for line in lines:
        if "stopped: {" in line:
            stats = json.loads(line.split("stopped: ", 1)[1])
    if not stats or "ready" not in marks or not rss:
        raise RuntimeError(f"daemon under {code} did not run (exit {proc.returncode}):\n" + "\n".join(lines[-20:]))
    busy = marks.get("ended", time.monotonic()) - marks["ready"]
    return {"camera_fps": camera_fps, "start_to_ready_s": round(marks["ready"] - t_start, 2),
            "run_s": round(busy, 1), "frames": stats.get("frames"), "dropped_frames": stats.get("dropped_frames"),
            "gated": stats.get("gated"), "events": stats.get("events"),
            "fps": round(stats.get("frames", 0) / busy, 1),
            "rss_peak_mb": round(max(rss) / 1024, 1), "rss_median_mb": round(statistics.median(rss) / 1024, 1),
            "vmhwm_mb": round(hwm / 1024, 1), "samples": len(rss), "exit_code": proc.returncode}


def machine_line() -> str:
    m = machine()
    return (f"{m['cpu']}, {m['cores']} cores ({m['arch']}), Python {m['python']}, onnxruntime {m['onnxruntime']}, "
            f"OpenCV {m['opencv']}")


def render(res: dict) -> str:
    lines = [SECTION, "",
             f"`python -m bench.daemon_rss` ({res['date']}): the real `edge-ocr run` on a generated "
             f"1280×720 {res['video_fps']} fps video ({res['video_s']:g} s, {len(PLATES)} cars with plates passing, "
             "MJPG), shipped defaults except camera = that file, MQTT = a local Mosquitto, outbox in a temp dir; "
             f"pinned to one core (`taskset -c {res['core']}`). RSS sampled from /proc every 0.25 s from "
             "\"ready\" to exit; VmHWM is the kernel's peak including start-up. fps = frames the pipeline took / "
             "time from ready to the end of the video. At camera.fps 120 the capture thread decodes up to 120 "
             "frames/s on the same pinned core and the slot drops what the pipeline cannot take, so that fps is "
             "the pipeline's throughput less the decoding of dropped frames. Goal for RSS (issue 17): ≤ 100 MB.", "",
             f"Machine: {res['machine']}." + (f" {load_sentence(res['load'])}" if "load" in res else ""), "",
             "| version | camera.fps | peak RSS MB | median RSS MB | VmHWM MB | fps processed | frames | dropped "
             "| events | start→ready s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, runs in res["versions"].items():
        for r in runs:
            lines.append(f"| {label} | {r['camera_fps']:g} | {r['rss_peak_mb']} | {r['rss_median_mb']} | "
                         f"{r['vmhwm_mb']} | {r['fps']} | {r['frames']} | {r['dropped_frames']} | {r['events']} | "
                         f"{r['start_to_ready_s']} |")
    first = [runs[0] for runs in res["versions"].values() if runs]
    if len(first) == 2:
        b, a = first[0]["rss_peak_mb"], first[1]["rss_peak_mb"]
        lines += ["", f"Peak RSS at camera.fps {first[0]['camera_fps']:g}: {b} → {a} MB ({100 * (a - b) / b:+.0f} %); "
                  f"the ≤ 100 MB goal is {'met' if a <= 100 else 'not met'}."]
    lines += ["", f"Command: `{res['command'].strip()}` (see its docstring for the options)", ""]
    return "\n".join(lines)


def update(path: Path, res: dict) -> None:
    put_section(path, SECTION, render(res))


def put_section(path: Path, section: str, block: str) -> None:
    """Replace ``section`` of ``path`` with ``block`` (or append it), leaving the others alone."""
    md = path.read_text() if path.exists() else "# Benchmarks\n"
    if section in md:
        start = md.index(section)
        nxt = md.find("\n## ", start + len(section))
        md = md[:start] + block + ("" if nxt < 0 else "\n" + md[nxt + 1:])
    else:
        md = md.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(md.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="9ab2d5f", help="commit measured as 'before' (default 9ab2d5f)")
    ap.add_argument("--seconds", type=float, default=40, help="video length, s (default 40)")
    ap.add_argument("--core", type=int, default=1, help="CPU the daemon is pinned to (default 1)")
    ap.add_argument("--pace", default="25,120", help="camera.fps values to run (default 25,120)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    if not shutil.which("taskset"):
        raise SystemExit("taskset not found (util-linux)")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    before = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    paces = [float(x) for x in args.pace.split(",") if x.strip()]
    res: dict = {"date": time.strftime("%Y-%m-%d"), "video_fps": 25, "video_s": args.seconds, "core": args.core,
                 "command": "python -m bench.daemon_rss " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "versions": {}}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        video = tmp / "stream720.avi"
        print(f"video: {make_video(video, args.seconds)} frames", flush=True)
        broker = LocalBroker(tmp, free_port())
        broker.start()
        meter = LoadMeter()
        old = Path(tempfile.gettempdir()) / f"before-{before}-{os.getpid()}"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for label, code in ((f"before {before}", old), (f"after {head}", ROOT)):
                res["versions"][label] = []
                for pace in paces:
                    r = run_daemon(code, video, tmp, broker.port, pace, args.core)
                    print(label, json.dumps(r), flush=True)
                    res["versions"][label].append(r)
        finally:
            broker.stop()
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    res["machine"] = machine_line()
    res["load"] = meter.stop()
    update(args.out, res)
    args.out.with_name("BENCHMARKS-daemon.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    print(render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
