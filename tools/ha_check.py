"""Check edge-ocr's entities on a real Home Assistant: run by a person, not by the test suite.

    python tools/ha_check.py --ha http://homeassistant.local:8123 --token "$HA_TOKEN" \\
        --broker 192.168.1.10 --device-id gate1 [--username u --password p] [--restart]

``--token`` is a long-lived access token (HA profile page, Security). The script reads edge-ocr's
retained discovery config from the broker, works out the entity ids Home Assistant gives the
components (device name + entity name, as at creation; a renamed entity is reported as missing),
and checks through HA's REST API:

- the HA version is 2024.12 or newer (device-based discovery);
- every component is an entity, and the removed ones (``{"p": ...}`` stubs) are not;
- with the device online: the last plate equals the retained ``last_plate`` on the broker, the
  stats sensors are not unknown, ``started_at`` is a timestamp;
- with ``--restart``: HA is restarted (``homeassistant.restart``), and once it is back the same
  checks pass again, the last plate included.

Prints one line per check and exits 1 if any failed, 2 if HA or the broker cannot be reached.
Needs only the standard library and paho-mqtt (already a dependency).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
from edge_ocr.mqtt_contract import discovery_payload, make_topics

MIN_HA = (2024, 12)


class Ha:
    """The few REST calls used here."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def state(self, entity_id: str) -> str | None:
        """The entity's state, or None when HA has no such entity."""
        status, body = self.call("GET", f"/api/states/{entity_id}")
        return body["state"] if status == 200 and body else None


def retained(args: argparse.Namespace, topics: list[str], wait_s: float = 3.0) -> dict[str, bytes]:
    """The retained message of each topic (those without one are left out)."""
    got: dict[str, bytes] = {}
    subscribed = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if args.username:
        c.username_pw_set(args.username, args.password)
    c.on_message = lambda _c, _u, m: got.setdefault(m.topic, bytes(m.payload)) if m.retain else None
    c.on_subscribe = lambda *_: subscribed.set()
    c.connect(args.broker, args.port, keepalive=10)
    c.loop_start()
    c.subscribe([(t, 1) for t in topics])
    subscribed.wait(5)
    time.sleep(wait_s)  # retained messages arrive right after the SUBACK
    c.loop_stop()
    c.disconnect()
    return got


def entity_id(platform: str, device: str, name: str) -> str:
    return f"{platform}." + re.sub(r"[^a-z0-9]+", "_", f"{device} {name}".lower()).strip("_")


class Report:
    def __init__(self) -> None:
        self.failed = 0

    def check(self, ok: bool, what: str) -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        self.failed += not ok
        return ok


def check_entities(ha: Ha, cfg: dict[str, Any], last: bytes | None, online: bool, report: Report) -> str | None:
    """One round of entity checks; returns the last plate HA shows."""
    dev = cfg["dev"]["name"]
    # A removal stub carries no name: take it from the code's config with every component on.
    every = discovery_payload(make_topics("t", "d"), "d", "", include_crop="raw")["cmps"]
    shown = None
    for key, comp in cfg["cmps"].items():
        if set(comp) == {"p"}:
            name = every.get("edge_ocr_d" + key.removeprefix(cfg["dev"]["ids"][0]), {}).get("name", key)
            eid = entity_id(comp["p"], dev, name)
            report.check(ha.state(eid) is None, f"{eid} removed (its component is switched off)")
            continue
        eid = entity_id(comp["p"], dev, comp["name"])
        state = ha.state(eid)
        if not report.check(state is not None, f"{eid} exists"):
            continue
        if not online:
            report.check(state == "unavailable", f"{eid} is unavailable while the device is offline ({state})")
            continue
        if key.endswith("_last_plate"):
            shown = state
            if last is not None:
                report.check(state == json.loads(last)["text"], f"{eid} = last_plate on the broker ({state})")
        elif comp.get("state_topic", "").endswith("/stats") and key.endswith(("_frames", "_readings")):
            report.check(state not in ("unknown", "unavailable"), f"{eid} has a value ({state})")
        elif key.endswith("_started_at"):
            try:
                ok = datetime.fromisoformat(state).tzinfo is not None
            except ValueError:
                ok = False
            report.check(ok, f"{eid} is a timestamp ({state})")
    return shown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ha", required=True, help="Home Assistant URL, e.g. http://homeassistant.local:8123")
    ap.add_argument("--token", required=True, help="long-lived access token")
    ap.add_argument("--broker", required=True, help="MQTT broker host")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--device-id", default="edge-ocr")
    ap.add_argument("--topic-prefix", default="edge-ocr")
    ap.add_argument("--discovery-prefix", default="homeassistant")
    ap.add_argument("--restart", action="store_true", help="restart Home Assistant and check again")
    args = ap.parse_args(argv)
    ha = Ha(args.ha, args.token)
    report = Report()
    try:
        status, conf = ha.call("GET", "/api/config")
    except OSError as exc:
        print(f"cannot reach Home Assistant at {args.ha}: {exc}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"Home Assistant answered {status} to /api/config (token?)", file=sys.stderr)
        return 2
    version = tuple(int(x) for x in re.findall(r"\d+", conf["version"])[:2])
    report.check(version >= MIN_HA, f"Home Assistant {conf['version']} >= {MIN_HA[0]}.{MIN_HA[1]}")

    base = f"{args.topic_prefix}/{args.device_id}"
    disc_topic = f"{args.discovery_prefix}/device/{args.device_id}/config"
    try:
        kept = retained(args, [disc_topic, f"{base}/status", f"{base}/last_plate"])
    except OSError as exc:
        print(f"cannot reach the broker {args.broker}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if not report.check(disc_topic in kept, f"retained discovery config on {disc_topic}"):
        return 1
    cfg = json.loads(kept[disc_topic])
    online = kept.get(f"{base}/status") == b"online"
    print(f"     device {cfg['dev']['name']!r} is {'online' if online else 'offline'}")
    before = check_entities(ha, cfg, kept.get(f"{base}/last_plate"), online, report)

    if args.restart:
        print("     restarting Home Assistant", flush=True)
        ha.call("POST", "/api/services/homeassistant/restart", {})
        time.sleep(10)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if ha.call("GET", "/api/config", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(3)
        else:
            report.check(False, "Home Assistant back within 300 s")
            return 1
        time.sleep(15)  # MQTT connects, discovery and retained states arrive
        after = check_entities(ha, cfg, kept.get(f"{base}/last_plate"), online, report)
        if online and before is not None:
            report.check(after == before, f"last plate survives the restart ({before} -> {after})")
    print(f"{report.failed} check(s) failed" if report.failed else "all checks passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
