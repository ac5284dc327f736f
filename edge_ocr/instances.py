"""Several daemons on one machine (``edge-ocr@<name>`` units, one per camera): what two of their
configs must not share.

Each instance has its own config, outbox, HTTP port, MQTT client id and topics. Two configs
that share one of these would fight over it: the broker disconnects one of two clients with the
same id every time the other connects, two devices with one id overwrite each other's retained
messages and Home Assistant entities, two processes write one SQLite outbox, the second HTTP
server cannot bind, and a camera device opens once. ``check-config`` given several files reports
each such key.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

from .config import Config

_WILDCARD = ("0.0.0.0", "::", "")


def _broker(cfg: Config) -> str:
    return f"{cfg.mqtt.host}:{cfg.mqtt.port}"


def _shared(a: Config, b: Config) -> list[tuple[str, str]]:
    """(key, what is shared) for every key ``a`` and ``b`` must not share."""
    out = []
    same_broker = a.mqtt.enabled and b.mqtt.enabled and _broker(a) == _broker(b)
    if same_broker and a.device_id == b.device_id:
        out.append(("device_id", f"{a.device_id!r}: the same topics {a.mqtt.topic_prefix}/{a.device_id}/..., "
                                 f"retained messages and Home Assistant device on {_broker(a)}"))
    client_a = a.mqtt.client_id or f"edge-ocr-{a.device_id}"
    if same_broker and client_a == (b.mqtt.client_id or f"edge-ocr-{b.device_id}"):
        out.append(("mqtt.client_id", f"{client_a!r} on {_broker(a)}: the broker drops one when the other connects"))
    if a.mqtt.enabled and b.mqtt.enabled and Path(a.outbox.path).resolve() == Path(b.outbox.path).resolve():
        out.append(("outbox.path", f"{a.outbox.path}: one SQLite outbox written by two daemons"))
    if a.http.enabled and b.http.enabled and a.http.port and a.http.port == b.http.port and (
            a.http.host == b.http.host or a.http.host in _WILDCARD or b.http.host in _WILDCARD):
        out.append(("http.port", f"{a.http.port}: the second daemon cannot listen"))
    if a.camera.type == b.camera.type == "usb" and a.camera.uri == b.camera.uri:
        out.append(("camera.uri", f"USB camera {a.camera.uri}: a camera opens in one process"))
    if a.camera.type == b.camera.type == "picamera2":
        out.append(("camera.type", "picamera2 in both: the camera module opens in one process"))
    return out


def collisions(configs: Sequence[tuple[str, Config]]) -> list[str]:
    """One line per key that two of ``configs`` ((file name, config) pairs) share but two
    instances on one machine must not: ``exit.yaml: device_id: also in entry.yaml ('gate'...)``."""
    lines = []
    for (name_a, a), (name_b, b) in combinations(configs, 2):
        lines += [f"{name_b}: {key}: also in {name_a} ({what})" for key, what in _shared(a, b)]
    return lines
