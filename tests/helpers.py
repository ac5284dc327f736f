"""Helpers shared by several test modules (fixtures are in conftest.py): so that no test module
imports another."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

from edge_ocr.daemon import Daemon, run_daemon

from . import scenes

PLATES = [("RK115AN", "eu"), ("PJC4903", "br"), ("7ABC123", "us")]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, video: Path, port: int, extra: str = "") -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"device_id: test-gate\n"
        f"camera: {{name: gate, type: file, uri: '{video}', fps: 10}}\n"
        f"roi: {{polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {port}, stats_interval_s: 1}}\n"
        f"outbox: {{path: '{tmp_path / 'outbox.sqlite'}'}}\n" + extra
    )
    return cfg


def play(config: Path, video: Path, fps: float = 10) -> Daemon:
    """The daemon ``run`` would start with ``config``, fed ``video`` frame by frame on the video's
    clock, then stopped as on SIGTERM (tracks flushed, MQTT ``offline``)."""
    now = [0.0]
    d = Daemon.open(str(config), threading.Event(), clock=lambda: now[0])
    assert d.pipeline is not None
    try:
        for frame in scenes.video_frames(video, fps):
            now[0] = frame.ts
            d.pipeline.process(frame)
        now[0] += 60.0
        d.pipeline.flush()
    finally:
        d.close()
    return d


class HttpDaemon:
    """A daemon running in a thread of the test, with its HTTP API's URL."""


    def __init__(self, url: str, thread: threading.Thread, stop: threading.Event, result: list[int]) -> None:
        self.url, self.thread, self.stop_event, self.result = url, thread, stop, result


def start_daemon(tmp_path: Path, extra_http: str = "") -> HttpDaemon:
    video = tmp_path / "cars.avi"
    scenes.render(video, [("RK115AN", "eu"), ("PJC4903", "br")], width=640, height=360, fps=10)
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "device_id: web-test\n"
        f"camera: {{name: gate, type: file, uri: '{video}', fps: 10, loop: true}}\n"
        "mqtt: {enabled: false}\n"
        f"outbox: {{path: '{tmp_path / 'outbox.sqlite'}'}}\n"
        f"http: {{enabled: true, host: 127.0.0.1, port: {port}, max_body_mb: 4{extra_http}}}\n"
    )
    stop, result = threading.Event(), []
    t = threading.Thread(target=lambda: result.append(run_daemon(str(cfg), stop)), daemon=True)
    t.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return HttpDaemon(url, t, stop, result)
        except OSError:
            if not t.is_alive():
                raise AssertionError(f"daemon exited early with {result}") from None
            time.sleep(0.2)
    raise AssertionError("daemon did not serve /healthz within 30 s")


FRAME = scenes.still("RK115AN", "eu", 960, 540, seed=3)


def entity_id(platform: str, device: str, entity: str) -> str:
    """Home Assistant's entity id for a named entity of a named device."""
    return f"{platform}." + re.sub(r"[^a-z0-9]+", "_", f"{device} {entity}".lower()).strip("_")
