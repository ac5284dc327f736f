"""Durable before counted: the daemon, SIGKILLed right after it logs an event, delivers that event
after a restart (a real daemon process, a real Mosquitto, a video the test writes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt

from . import scenes

ROOT = Path(__file__).resolve().parents[1]

DEVICE = "kill-test"


def write_config(tmp_path: Path, name: str, video: Path, port: int, loop: bool) -> Path:
    cfg = tmp_path / name
    cfg.write_text(
        f"device_id: {DEVICE}\n"
        f"camera: {{name: gate, type: file, uri: '{video}', fps: 10, loop: {str(loop).lower()}}}\n"
        f"roi: {{polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {port}, stats_interval_s: 60}}\n"
        f"outbox: {{path: '{tmp_path / 'outbox.sqlite'}'}}\n"
    )
    return cfg


def empty_video(path: Path) -> Path:
    bg = scenes.scene(960, 540, np.random.default_rng(5))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (960, 540))
    for _ in range(10):
        vw.write(bg)
    vw.release()
    return path


def daemon(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "-c", str(cfg)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_right_after_the_event_log_line_loses_nothing(tmp_path: Path, make_broker) -> None:
    video = tmp_path / "car.avi"
    scenes.render(video, [("RK115AN", "eu")], width=960, height=540, fps=10)
    # The broker is not up yet: nothing can be delivered before the kill, so the event can only
    # reach the subscriber from the outbox file.
    broker = make_broker(start=False)
    proc = daemon(write_config(tmp_path, "run1.yaml", video, broker.port, loop=True))
    logged = None
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if " edge_ocr.daemon: event " in line:
                os.kill(proc.pid, signal.SIGKILL)  # at once: no flush, no goodbye
                logged = line.split(" event ", 1)[1].split()[0]
                break
            assert time.monotonic() < deadline, "no event logged within 60 s"
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    assert logged == "RK115AN", logged
    assert proc.returncode == -signal.SIGKILL

    broker.start()
    got: list[tuple[str, bytes]] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    sub.connect(broker.host, broker.port)
    sub.subscribe(f"edge-ocr/{DEVICE}/#", qos=1)
    sub.loop_start()
    try:
        again = daemon(write_config(tmp_path, "run2.yaml", empty_video(tmp_path / "empty.avi"), broker.port,
                                    loop=False))
        _, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (f"edge-ocr/{DEVICE}/status", b"offline") not in got:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    plates = [json.loads(p) for t, p in got if t == f"edge-ocr/{DEVICE}/plate"]
    # The second run saw no plate: the one event here is the killed run's, from its outbox.
    assert [p["text"] for p in plates] == [logged]
    assert plates[0]["camera"] == "gate" and plates[0]["device"] == DEVICE
    assert "everything delivered" in err

