"""Soak run: the daemon on a looping video for a long time while the broker comes and goes.

    python -m bench.soak --minutes 30 --out SOAK.md

Starts a real Mosquitto (with persistence, so a subscriber's session survives its restarts), a
subscriber with a persistent QoS 1 session, and ``edge-ocr run`` as a process on a generated
looping video with MQTT on. The broker is stopped and started at random (seeded) moments. Every
``--sample-s`` the daemon's RSS, open file descriptors and threads are read from /proc. At the
end the broker stays up for a final flush, the daemon gets SIGTERM, and the report compares the
events it produced (its final stats line) with the distinct events the subscriber received.
Not a test: it takes as long as you ask. Exit status 1 if produced != delivered.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from bench.broker import LocalBroker, free_port


def proc_sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=ROOT / "SOAK.md")
    args = ap.parse_args()
    import paho.mqtt.client as mqtt

    from tools import make_demo_video

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="edge-ocr-soak-"))
    video = tmp / "loop.avi"
    make_demo_video.render(video, [("RK115AN", "eu"), ("PJC4903", "br"), ("7ABC123", "us")], 960, 540, 10)
    broker = LocalBroker(tmp, free_port(), persistence=True)
    broker.start()
    seen: set[str] = set()
    received = 0
    lock = threading.Lock()

    def on_message(_c, _u, msg) -> None:
        nonlocal received
        with lock:
            received += 1
            seen.add(json.loads(msg.payload)["event_id"])

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-sub", clean_session=False)
    sub.reconnect_delay_set(0.2, 2)
    sub.on_message = on_message
    sub.on_connect = lambda c, *_: c.subscribe("edge-ocr/soak/plate", qos=1)
    sub.connect("127.0.0.1", broker.port, keepalive=10)
    sub.loop_start()
    cfg = tmp / "config.yaml"
    # a short repeat window: the looping video brings the same three cars back every ~12 s
    cfg.write_text(f"device_id: soak\ncamera: {{name: soak, type: file, uri: '{video}', fps: {args.fps}, loop: true}}\n"
                   "roi: {polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}\nvoting: {repeat_after_s: 2}\n"
                   f"mqtt: {{host: 127.0.0.1, port: {broker.port}, stats_interval_s: 30}}\n"
                   f"outbox: {{path: '{tmp / 'outbox.sqlite'}'}}\n")
    daemon = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "--config", str(cfg)],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                              stderr=open(tmp / "daemon.log", "w"))  # noqa: SIM115 - the child holds it
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    samples, outages = [], 0
    next_toggle = t0 + rng.uniform(20, 90)
    next_sample = t0 + 5
    print(f"soak: {args.minutes} min, workdir {tmp}", flush=True)
    while time.monotonic() < end - 45:  # the last 45 s the broker stays up so everything drains
        now = time.monotonic()
        if now >= next_sample:
            s = proc_sample(daemon.pid)
            s["t_s"] = round(now - t0)
            samples.append(s)
            next_sample += args.sample_s
            print(f"t={s['t_s']}s rss={s['rss_mb']}MB fds={s['fds']} threads={s['threads']} "
                  f"received={received} broker={'up' if broker.proc else 'down'}", flush=True)
        if now >= next_toggle:
            if broker.proc:
                broker.stop()
                outages += 1
                next_toggle = now + rng.uniform(2, 20)
            else:
                broker.start()
                next_toggle = now + rng.uniform(20, 90)
        if daemon.poll() is not None:
            print("daemon exited early", file=sys.stderr)
            break
        time.sleep(0.2)
    if not broker.proc:
        broker.start()
    while time.monotonic() < end:
        time.sleep(1)
    samples.append({**proc_sample(daemon.pid), "t_s": round(time.monotonic() - t0)})
    daemon.send_signal(signal.SIGTERM)
    rc = daemon.wait(60)
    time.sleep(3)
    sub.loop_stop()
    sub.disconnect()
    broker.stop()
    produced = None
    for line in (tmp / "daemon.log").read_text().splitlines():
        if "stopped: {" in line:
            produced = json.loads(line.split("stopped: ", 1)[1]).get("events")
    warm = [s for s in samples if s["t_s"] >= 60] or samples
    res = {"minutes": args.minutes, "seed": args.seed, "broker_outages": outages, "daemon_exit": rc,
           "produced": produced, "delivered_distinct": len(seen), "delivered_messages": received,
           "rss_mb_first_after_warmup": warm[0]["rss_mb"], "rss_mb_end": samples[-1]["rss_mb"],
           "rss_mb_max": max(s["rss_mb"] for s in samples), "fds_start_end": [warm[0]["fds"], samples[-1]["fds"]],
           "threads_start_end": [warm[0]["threads"], samples[-1]["threads"]], "samples": samples}
    ok = produced is not None and produced == len(seen)
    lines = ["# Soak run", "", f"`python -m bench.soak --minutes {args.minutes:g}` on {time.strftime('%Y-%m-%d')} "
             f"(seed {args.seed}): the daemon on a looping 960×540 video at {args.fps:g} fps, MQTT QoS 1 to a local "
             f"Mosquitto stopped and restarted {outages} times at random.", "",
             f"- events produced (daemon's final stats): **{produced}**; distinct events delivered to the "
             f"subscriber: **{len(seen)}** ({received} messages incl. QoS 1 redeliveries) — "
             + ("equal" if ok else "NOT EQUAL"),
             f"- RSS after warm-up (60 s) {res['rss_mb_first_after_warmup']} MB, at the end {res['rss_mb_end']} MB, "
             f"max {res['rss_mb_max']} MB",
             f"- open file descriptors {res['fds_start_end'][0]} → {res['fds_start_end'][1]}; threads "
             f"{res['threads_start_end'][0]} → {res['threads_start_end'][1]}",
             f"- daemon exit status {rc}", "", "| t (s) | RSS MB | fds | threads |", "|---|---|---|---|"]
    step = max(1, len(samples) // 20)
    lines += [f"| {s['t_s']} | {s['rss_mb']} | {s['fds']} | {s['threads']} |" for s in samples[::step]]
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    print("\n".join(lines[:8]))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
