"""Helpers shared by several test modules (fixtures are in conftest.py): so that no test module
imports another."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_ocr.config import CameraConfig, MqttConfig, OutboxConfig
from edge_ocr.daemon import Daemon, run_daemon
from edge_ocr.publish.mqtt_contract import make_topics
from edge_ocr.types import KnownMatch, PlateEvent

from . import scenes

MOSQUITTO = "/usr/sbin/mosquitto"
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


# ----------------------------------------------------------------------------- MQTT publisher tests

DEVICE = "gate1"
FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.3}


def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def make_event(i: int, crop: bytes | None = None) -> PlateEvent:
    return PlateEvent(
        event_id=f"evt-{i:04d}",
        text=f"AB{i:04d}",
        confidence=0.9123,
        char_confidences=(0.99, 0.98, 0.97, 0.96, 0.95, 0.9123),
        camera="gate",
        time_utc="2026-11-25T20:13:29.123Z",
        frame_size=(1280, 720),
        box=(100, 200, 180, 45),
        model="plate_crnn_int8",
        model_version="2026.11.1",
        votes=3,
        region="eu",
        crop_jpeg=crop,
    )


def camera_source(cls: Any, *args: Any, **kw: Any) -> Any:
    """``cls(*args, **kw)`` (a frame source) with the ``camera`` section's defaults (config.py, the
    one place they are written) for the camera keys the test leaves out."""
    cam = CameraConfig(uri="-")
    names = list(inspect.signature(cls).parameters)[len(args):]
    fill = {k: getattr(cam, k) for k in names if k in CameraConfig.model_fields and k not in kw}
    return cls(*args, **fill, **kw)


def mqtt_cfg(port: int, **kw: Any) -> MqttConfig:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": port, "keepalive_s": 5, **FAST}
    base.update(kw)
    return MqttConfig(**base)


def outbox_cfg(tmp_path: Path, name: str = "outbox.sqlite", **kw: Any) -> OutboxConfig:
    return OutboxConfig(path=str(tmp_path / name), **kw)


class Subscriber:
    """A test-side paho client that records every message it receives."""

    def __init__(
        self,
        broker: Any,
        topics: list[str],
        *,
        client_id: str = "",
        persistent: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent, protocol=paho.MQTTv311
        )
        self.client.reconnect_delay_set(0.1, 0.3)  # type: ignore[arg-type]
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        assert self._subscribed.wait(5), "subscriber did not get SUBACK"

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def on(self, topic: str) -> list[paho.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [bytes(m.payload) for m in self.on(topic)]

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads(topic)]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


TOPICS = make_topics("edge-ocr", DEVICE, "homeassistant")


# ----------------------------------------------------------------------------- systemd

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "edge-ocr.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Unit file -> {section: {key: [values in order]}}; comments dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# ----------------------------------------------------------------------------- the daemon, end to end

def subscribe(port: int) -> tuple[paho.Client, list[tuple[str, bytes]]]:
    got: list[tuple[str, bytes]] = []
    c = paho.Client(CallbackAPIVersion.VERSION2)
    c.on_message = lambda _c, _u, m: got.append((m.topic, m.payload))
    c.connect("127.0.0.1", port)
    c.subscribe("edge-ocr/#", qos=1)
    c.loop_start()
    time.sleep(0.3)
    return c, got


def run_and_collect(tmp_path: Path, video: Path, port: int, extra: str = "") -> list[tuple[str, bytes]]:
    """Play ``video`` through the daemon (``extra`` config lines added); everything a subscriber
    saw, up to ``offline``."""
    client, got = subscribe(port)
    try:
        play(write_config(tmp_path, video, port, extra), video)
        deadline = time.time() + 5
        while time.time() < deadline and not any(t.endswith("/status") and p == b"offline" for t, p in got):
            time.sleep(0.1)
    finally:
        client.loop_stop()
        client.disconnect()
    return got


# ----------------------------------------------------------------------------- Home Assistant

def event(i: int, region: str | None = "eu", crop: bytes | None = None, known: KnownMatch | None = None) -> PlateEvent:
    return PlateEvent(event_id=f"evt-{i}", text=f"AB{i:03d}CD", confidence=0.9312, char_confidences=(0.93,) * 7,
                      camera="gate", time_utc=f"2026-11-25T20:13:{i:02d}.000Z", frame_size=(1280, 720),
                      box=(1, 2, 3, 4), model="plate_crnn", model_version="1.2.0", votes=4, region=region,
                      crop_jpeg=crop, known=known)


_jinja = jinja2.Environment(autoescape=False)


_jinja.filters["to_json"] = json.dumps  # Home Assistant's own filter; Jinja2 has only tojson


def render(template: str, payload: bytes) -> str:
    return _jinja.from_string(template).render(value_json=json.loads(payload))


# ----------------------------------------------------------------------------- installer

INSTALL = Path(__file__).resolve().parents[1] / "tools" / "install.sh"


def verify(unit_text: str, tmp_path: Path, name: str = "edge-ocr.service",
           load: str | None = None) -> tuple[int, list[str]]:
    """Run ``systemd-analyze verify`` on a copy (file ``name``) whose ExecStart exists, loading
    ``load`` (an instance of a template) or the file itself; (exit code, lines about the unit)."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze not found: install the Debian package 'systemd' (apt-get install systemd)")
    # verify insists that ExecStart's program exists; the virtualenv is not installed here
    copy = tmp_path / name
    copy.write_text(unit_text.replace("ExecStart=/opt/edge-ocr/venv/bin/edge-ocr", "ExecStart=/bin/true"))
    proc = subprocess.run([exe, "verify", str(tmp_path / (load or name))], check=False, capture_output=True,
                          text=True, timeout=60)
    # verify exits 0 even for unknown keys or unparsable values; it only prints a warning naming
    # the file and line, so those lines are the real verdict
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if name in ln or (load and load in ln)]
    return proc.returncode, lines


def run_install(tmp_path: Path, *args: str, ok: bool = True,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """tools/install.sh with every location under tmp_path and no apt, venv or systemctl."""
    cmd = [
        "bash",
        str(INSTALL),
        "--prefix",
        str(tmp_path / "opt"),
        "--etc",
        str(tmp_path / "etc"),
        "--unit-dir",
        str(tmp_path / "unit"),
        "--state-dir",
        str(tmp_path / "state" / "edge-ocr"),
        "--no-systemctl",
        "--no-apt",
        "--no-venv",
        *args,
    ]
    # --no-venv checks the config with $PYTHON running the package from the checkout
    env = {**os.environ, "PYTHON": sys.executable, **(extra_env or {})}
    # stdin is not a terminal: the installer must not ask for the region
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc
