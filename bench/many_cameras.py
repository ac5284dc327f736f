"""Several daemons on one machine, each reading its own RTSP camera: what a box can carry.

    python -m bench.many_cameras --counts 2 4 --seconds 60 --benchmarks BENCHMARKS.md

For each count N: an RTSP server on loopback (bench/rtsp_server.py, GStreamer, the system
Python) serves N H.264 streams of the demo video (960x540, 10 fps, looping: a car every 4 s),
N daemons (``edge-ocr run``, one config each, as N ``edge-ocr@`` instances would run) read them
and publish to a local Mosquitto. After a warm-up, each daemon's frame and drop counters (from
its MQTT stats), CPU time (/proc) and RSS are measured over ``--seconds``. Writes the "Many
cameras" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import cv2
import yaml
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from .broker import LocalBroker, free_port
from .daemon_rss import put_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Many cameras: instances on one machine"
FPS = 10
TICK = os.sysconf("SC_CLK_TCK")


def write_frames(out: Path, video: Path = ROOT / "samples" / "demo.mp4") -> int:
    """The video's frames as f0000.jpg, f0001.jpg, ... (what the RTSP server loops)."""
    out.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(video))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.imwrite(str(out / f"f{n:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        n += 1
    cap.release()
    return n


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Stats:
    """Each device's newest stats message, with the time it came."""

    def __init__(self, port: int) -> None:
        self.latest: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("edge-ocr/+/stats")
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, m: paho.MQTTMessage) -> None:
        with self._lock:
            self.latest[m.topic.split("/")[1]] = (time.monotonic(), json.loads(m.payload))

    def get(self, device: str) -> tuple[float, dict] | None:
        with self._lock:
            return self.latest.get(device)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(n: int, seconds: float, warm_s: float, work: Path, frames: Path) -> dict:
    """N daemons on N streams; per-instance figures and the server's CPU."""
    mq, rtsp = free_port(), free_port()
    (work / "broker").mkdir(parents=True, exist_ok=True)
    broker = LocalBroker(work / "broker", mq)
    broker.start()
    server = subprocess.Popen(["/usr/bin/python3", str(ROOT / "bench" / "rtsp_server.py"), "--port", str(rtsp),
                               "--frames", str(frames), "--fps", str(FPS), "--count", str(n)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats = Stats(mq)
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        wait_port(rtsp)
        # TCP: a reader that falls behind shows as dropped frames, not as UDP packets lost
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp"}
        for i in range(n):
            cfg = {"device_id": f"cam{i}", "camera": {"name": f"cam{i}", "type": "rtsp", "fps": FPS,
                                                      "uri": f"rtsp://127.0.0.1:{rtsp}/cam{i}"},
                   "roi": {"polygons": [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]},
                   "mqtt": {"host": "127.0.0.1", "port": mq, "stats_interval_s": 2},
                   "outbox": {"path": str(work / f"cam{i}.sqlite")}}
            path = work / f"cam{i}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            with open(work / f"cam{i}.log", "wb") as log:
                daemons.append(subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "--config", str(path)],
                                                env=env, stdout=log, stderr=subprocess.STDOUT))
        time.sleep(warm_s)
        first = [stats.get(f"cam{i}") for i in range(n)]
        cpu0 = [cpu_s(d.pid) for d in daemons] + [cpu_s(server.pid)]
        t0, peak = time.monotonic(), [0.0] * n
        while time.monotonic() - t0 < seconds:
            peak = [max(p, rss_mb(d.pid)) for p, d in zip(peak, daemons)]
            time.sleep(1.0)
        cpu1 = [cpu_s(d.pid) for d in daemons] + [cpu_s(server.pid)]
        wall = time.monotonic() - t0
        time.sleep(2.5)  # one more stats message
        rows = []
        for i in range(n):
            a, b = first[i], stats.get(f"cam{i}")
            if a is None or b is None or a[0] == b[0]:
                raise RuntimeError(f"cam{i}: no stats (see {work / f'cam{i}.log'})")
            dt = b[0] - a[0]
            frames, dropped = (b[1][k] - a[1][k] for k in ("frames", "dropped_frames"))
            rows.append({"instance": f"cam{i}", "fps": round(frames / dt, 2), "dropped": dropped,
                         "dropped_share": round(dropped / max(frames + dropped, 1), 4),
                         "cpu_pct": round(100 * (cpu1[i] - cpu0[i]) / wall, 1), "rss_peak_mb": round(peak[i], 1),
                         "events": b[1]["events"], "latency_p50_ms": b[1]["latency_p50_ms"]})
        return {"instances": n, "rows": rows, "server_cpu_pct": round(100 * (cpu1[-1] - cpu0[-1]) / wall, 1),
                "seconds": round(wall, 1)}
    finally:
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        for d in daemons:
            try:
                d.wait(20)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        server.terminate()
        server.wait(10)
        stats.close()
        broker.stop()


def render(results: list[dict], seconds: float, warm_s: float, load: tuple[float, float, float]) -> str:
    lines = [SECTION, "",
             f"`python -m bench.many_cameras --counts {' '.join(str(r['instances']) for r in results)} --seconds "
             f"{seconds:g}` ({date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"load average {load[0]:.2f} at the start). Each instance is one `edge-ocr run` reading its own "
             f"RTSP stream (H.264, 960x540, {FPS} fps, the demo video looping: a car every 4 s) from a "
             "GStreamer RTSP server on loopback (`bench/rtsp_server.py`, which encodes the streams live; its CPU "
             f"is listed apart), publishing to a local Mosquitto; measured over {seconds:g} s after a "
             f"{warm_s:g} s warm-up. fps: frames read per second (the camera sends {FPS}); dropped: frames the "
             "reader overwrote before the pipeline took them (a slow pipeline skips to the newest frame); "
             "CPU: % of one core; latency: the pipeline's per-frame time; events: plates published since the "
             "start (the demo's 3 plates come back every 12 s, within `voting.repeat_after_s`, so each is "
             "published once).", "",
             "| instances | instance | fps | dropped frames | CPU % | RSS peak, MB | latency p50, ms | events |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            lines.append(f"| {r['instances']} | {row['instance']} | {row['fps']} | {row['dropped']} "
                         f"({100 * row['dropped_share']:.1f} %) | {row['cpu_pct']} | {row['rss_peak_mb']} | "
                         f"{row['latency_p50_ms']} | {row['events']} |")
        lines.append(f"| {r['instances']} | RTSP server ({r['instances']} encoders) | | | {r['server_cpu_pct']} | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warm-s", type=float, default=20.0)
    ap.add_argument("--benchmarks", type=Path, help="write the section into this BENCHMARKS.md")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cams") as tmp:
        frames = Path(tmp) / "frames"
        print(f"{write_frames(frames)} frames", flush=True)
        results = []
        for n in args.counts:
            results.append(run(n, args.seconds, args.warm_s, Path(tmp) / f"n{n}", frames))
            print(json.dumps(results[-1]), flush=True)
    block = render(results, args.seconds, args.warm_s, load)
    print(block)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.benchmarks:
        put_section(args.benchmarks, SECTION, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
