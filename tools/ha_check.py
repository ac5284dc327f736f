"""Check edge-ocr's entities on a real Home Assistant: run by a person, not by the test suite.

    python -m tools.ha_check --ha http://homeassistant.local:8123 --token "$HA_TOKEN" \\
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

``--daemon CONFIG`` also runs the daemon of this clone with that config (best a looping video:
``camera: {type: file, uri: samples/demo.mp4, loop: true}``) and checks its life cycle: the docs'
example automation (docs/mqtt.md, its action swapped for a logbook entry) is added to HA; the
daemon runs with ``include_crop: raw`` for ``--cars-s`` seconds; SIGTERM must turn every entity
unavailable and a new start available again; with ``--restart`` HA is restarted while the daemon
runs; then the daemon restarts with ``include_crop: off`` and the image entity must be gone;
finally the automation must have run once per plate event on the broker, never for an
availability change. The automation is deleted and the daemon stopped at the end.

HA in a plain venv (``hass -c DIR``) exits with code 100 on ``homeassistant.restart`` and expects
a supervisor to start it again: run it as ``while hass -c DIR; [ $? -eq 100 ]; do :; done``.

Prints one line per check and exits 1 if any failed, 2 if HA or the broker cannot be reached.
Needs only the standard library, paho-mqtt and PyYAML (edge-ocr's own dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_ocr.config import MqttConfig, OutboxConfig, load_config
from edge_ocr.decide.known_plates import KnownPlates
from edge_ocr.publish.mqtt_contract import device_name, discovery_payload, make_topics, utc_iso
from edge_ocr.types import PlateEvent

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "mqtt.md"

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


def entity_ids(cfg: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """cmps key -> (entity id HA gives it, whether it is a removal stub)."""
    dev = cfg["dev"]["name"]
    # A removal stub carries no name: take it from the code's config with every component on.
    every = discovery_payload(make_topics("t", "d", "homeassistant"), "d", "", 1, include_crop="raw")["cmps"]
    out = {}
    for key, comp in cfg["cmps"].items():
        if set(comp) == {"p"}:
            name = every.get("edge_ocr_d" + key.removeprefix(cfg["dev"]["ids"][0]), {}).get("name", key)
            out[key] = (entity_id(comp["p"], dev, name), True)
        else:
            out[key] = (entity_id(comp["p"], dev, comp["name"]), False)
    return out


def is_timestamp(state: str | None) -> bool:
    try:
        return state is not None and datetime.fromisoformat(state).tzinfo is not None
    except ValueError:
        return False


def check_entities(ha: Ha, cfg: dict[str, Any], kept: dict[str, bytes], base: str, online: bool,
                   report: Report) -> str | None:
    """One round of entity checks against the broker's retained messages; returns the last plate
    HA shows."""
    last = json.loads(kept[f"{base}/last_plate"]) if kept.get(f"{base}/last_plate") else None
    stats = json.loads(kept[f"{base}/stats"]) if kept.get(f"{base}/stats") else {}
    shown = None
    for key, (eid, stub) in entity_ids(cfg).items():
        comp = cfg["cmps"][key]
        if stub:
            report.check(ha.state(eid) is None, f"{eid} removed (its component is switched off)")
            continue
        state = ha.state(eid)
        if state is None:
            report.check(False, f"{eid} exists")
            continue
        if not online:
            report.check(state == "unavailable", f"{eid} is unavailable while the device is offline ({state})")
            continue
        topic = comp.get("state_topic") or comp.get("image_topic", "")
        if key.endswith("_last_plate"):
            shown = state
            if last is not None:
                report.check(state == last["text"], f"{eid} = last_plate on the broker ({state})")
        elif key.endswith("_last_confidence") and last is not None:
            want = str(round(last["confidence"] * 100, 1))
            report.check(state == want, f"{eid} = the last plate's confidence in % ({state}, broker {want})")
        elif key.endswith("_last_region") and last is not None:
            want = last["region"] or "unknown"
            report.check(state == want, f"{eid} = the last plate's region ({state}, broker {want})")
        elif comp["p"] == "event" and last is not None:
            # HA restores an event entity's last state (its time) itself, across its restarts.
            report.check(is_timestamp(state), f"{eid} shows the time of the last plate event ({state})")
        elif comp["p"] == "image" and last is not None and last.get("crop_topic"):
            # The last car came with a crop: HA must show it, after an HA restart too.
            report.check(is_timestamp(state), f"{eid} shows the last crop ({state})")
        elif topic.endswith("/stats") and stats:
            value = stats.get(key.removeprefix(cfg["dev"]["ids"][0] + "_"))
            if value is None:
                report.check(state == "unknown", f"{eid} is unknown (null in the stats) ({state})")
            elif key.endswith("_started_at"):
                report.check(is_timestamp(state), f"{eid} is a timestamp ({state})")
            else:
                report.check(state not in ("unknown", "unavailable"), f"{eid} has a value ({state})")
    return shown


def wait_for(pred: Any, timeout: float, step: float = 0.2) -> float | None:
    """Seconds until ``pred()`` was true, None when it stayed false for ``timeout`` s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def restart_ha(ha: Ha, report: Report) -> bool:
    print("     restarting Home Assistant", flush=True)
    ha.call("POST", "/api/services/homeassistant/restart", {})
    time.sleep(10)

    def up() -> bool:
        try:
            return ha.call("GET", "/api/config", timeout=5)[0] == 200
        except OSError:
            return False

    if wait_for(up, 300, 3) is None:
        report.check(False, "Home Assistant back within 300 s (a plain `hass` exits 100 on restart and "
                            "needs a loop or supervisor to start again)")
        return False
    time.sleep(15)  # MQTT connects, discovery and retained states arrive
    return True


class Watcher:
    """Every plate event and status change on the broker while the life cycle runs."""

    def __init__(self, args: argparse.Namespace, base: str) -> None:
        self.plates: list[str] = []
        self.status: list[str] = []
        self._base = base
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if args.username:
            self.client.username_pw_set(args.username, args.password)
        self.client.on_message = self._on_message
        self.client.connect(args.broker, args.port, keepalive=10)
        self.client.loop_start()
        self.client.subscribe([(f"{base}/plate", 1), (f"{base}/status", 1)])

    def _on_message(self, _c: Any, _u: Any, m: paho.MQTTMessage) -> None:
        if m.topic.endswith("/plate") and not m.retain:
            self.plates.append(json.loads(m.payload)["text"])
        elif m.topic.endswith("/status"):
            self.status.append(m.payload.decode())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def docs_automation(event_entity: str, tag: str) -> dict[str, Any]:
    """The example automation of docs/mqtt.md for ``event_entity``, its action a logbook entry
    named ``tag`` (with the docs' message template) so that its runs can be counted."""
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"Example automation.*?```yaml\n(.*?)```", text, re.DOTALL)
    if block is None:
        raise SystemExit(f"no example automation (```yaml block) in {DOCS}")
    auto = yaml.safe_load(block.group(1))
    for trig in auto["triggers"]:
        trig["entity_id"] = event_entity
    message = auto["actions"][0]["data"]["message"]
    auto["actions"] = [{"action": "logbook.log", "data": {"name": f"{tag} run", "message": message}}]
    auto.update(alias=tag, mode="queued")
    return auto


class Daemon:
    """The daemon of this clone, run with copies of one config that differ in include_crop."""

    def __init__(self, config: Path, work: Path) -> None:
        self.doc = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, include_crop: str) -> None:
        doc = json.loads(json.dumps(self.doc))
        doc.setdefault("mqtt", {})["include_crop"] = include_crop
        path = self.work / f"config-{include_crop}.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        self.runs += 1
        self.log = self.work / f"daemon-{self.runs}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge_ocr.cli", "run", "--config", str(path)],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        print(f"     daemon started (include_crop: {include_crop}), log {self.log}", flush=True)

    def stop(self) -> float:
        """SIGTERM and wait; returns the monotonic time of the signal."""
        sent = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        return sent


def life_cycle(args: argparse.Namespace, ha: Ha, report: Report) -> None:
    cfg = load_config(args.daemon)
    device_id, prefix = cfg.device_id, cfg.mqtt.topic_prefix
    base = f"{prefix}/{device_id}"
    topics = make_topics(prefix, device_id, cfg.mqtt.discovery.prefix)
    disc = discovery_payload(topics, device_id, "", cfg.mqtt.qos, include_crop="raw",
                             name=cfg.mqtt.discovery.device_name or device_name(device_id))
    ids = entity_ids(disc)
    uid = disc["dev"]["ids"][0]
    image_eid, event_eid = ids[f"{uid}_crop"][0], ids[f"{uid}_reading"][0]
    others = [eid for key, (eid, _) in ids.items() if key != f"{uid}_crop"]

    tag = f"edge-ocr check {uuid.uuid4().hex[:8]}"
    auto_id = tag.replace(" ", "_").replace("-", "_")
    started = datetime.now().astimezone()
    status, _ = ha.call("POST", f"/api/config/automation/config/{auto_id}", docs_automation(event_eid, tag))
    report.check(status == 200, f"docs' example automation added for {event_eid} ({status})")
    # Adding it reloads the automations; the first car may pass a second after the daemon starts.
    auto_eid = entity_id("automation", "", tag)
    report.check(wait_for(lambda: ha.state(auto_eid) == "on", 30) is not None, f"{auto_eid} is on")
    watcher = Watcher(args, base)
    daemon = Daemon(Path(args.daemon), Path(tempfile.mkdtemp(prefix="ha_check-")))

    def states(eids: list[str]) -> list[str | None]:
        return [ha.state(e) for e in eids]

    def round_of_checks(online: bool) -> None:
        kept = retained(args, [topics.discovery, topics.status, topics.last_plate, topics.last_crop, topics.stats])
        check_entities(ha, json.loads(kept[topics.discovery]), kept, base, online, report)

    try:
        daemon.start("raw")
        report.check(wait_for(lambda: watcher.status[-1:] == ["online"], 60) is not None, "daemon online")
        time.sleep(args.cars_s)
        print(f"     plates so far: {watcher.plates}", flush=True)
        round_of_checks(online=True)

        sent = daemon.stop()
        took = wait_for(lambda: set(states(others + [image_eid])) == {"unavailable"}, 10)
        took = None if took is None else time.monotonic() - sent
        report.check(took is not None, f"every entity unavailable after SIGTERM (within {took or 10:.1f} s of the signal)")
        round_of_checks(online=False)

        daemon.start("raw")
        took = wait_for(lambda: "unavailable" not in states(others + [image_eid]), 30)
        report.check(took is not None, f"every entity available again after a new start (within {took or 30:.1f} s)")
        time.sleep(args.cars_s)
        round_of_checks(online=True)
        if args.restart and restart_ha(ha, report):
            round_of_checks(online=True)

        daemon.stop()
        daemon.start("off")
        took = wait_for(lambda: ha.state(image_eid) is None, 30)
        report.check(took is not None, f"{image_eid} removed after include_crop raw -> off (within {took or 30:.1f} s)")
        kept = retained(args, [topics.last_crop, topics.status])
        report.check(topics.last_crop not in kept, f"retained {topics.last_crop} deleted")
        time.sleep(args.cars_s)
        round_of_checks(online=True)
        daemon.stop()
        time.sleep(3)  # the automation's last runs land in the logbook

        status, book = ha.call("GET", f"/api/logbook/{started.isoformat()}")
        book = book or []
        # The logbook holds HA's own "triggered by ..." entry of each run and the run's action.
        fired = [e for e in book if e.get("name") == tag and e.get("entity_id") == auto_eid]
        runs = [e.get("message", "") for e in book if e.get("name") == f"{tag} run"]
        print(f"     {len(watcher.plates)} plate event(s) on the broker, {len(watcher.status)} status message(s) "
              f"{watcher.status}; the automation triggered {len(fired)} time(s), its action ran {len(runs)} time(s)",
              flush=True)
        n = len(watcher.plates)
        report.check(status == 200 and len(fired) == len(runs) == n > 0,
                     f"the docs' automation ran once per plate event, not on availability changes "
                     f"({len(fired)} triggers, {len(runs)} runs, {n} events)")
        texts = [m.split()[1] for m in runs if m.startswith("Plate ")]
        report.check(sorted(texts) == sorted(watcher.plates), f"with each plate's text ({texts})")
    finally:
        daemon.stop()
        watcher.close()
        ha.call("DELETE", f"/api/config/automation/config/{auto_id}")


# (plate read, whether the gate opens): the known plate, a near miss of it, a plate on no list
GATE_PLATES = (("PJB7392", True), ("PJB739Z", True), ("PJB792", True), ("7ABC123", False))


def gate_event(text: str, known: KnownPlates) -> PlateEvent:
    return PlateEvent(event_id=uuid.uuid4().hex, text=text, confidence=0.95, char_confidences=(0.95,) * len(text),
                      camera="gate", time_utc=utc_iso(), frame_size=(1280, 720), box=(0, 0, 10, 5),
                      model="plate_crnn", model_version="check", votes=2, region=None, known=known.match(text))


def gate_blueprint(args: argparse.Namespace, ha: Ha, report: Report) -> None:
    """The gate blueprint (blueprints/automation/edge-ocr/gate.yaml, in HA as ``--blueprint-path``)
    on a device ``gate-check`` that this script plays with edge-ocr's own publisher: an automation
    made from it must open ``--gate`` for the known plate and its misreads, never for the unknown
    one, and only once for two known plates within the cooldown."""
    from edge_ocr.stages import mqtt_publisher

    known = KnownPlates([("our car", ["PJB7392"])], max_edits=1, lookalikes=True)
    mqtt = MqttConfig(host=args.broker, port=args.port, username=args.username, password=args.password,
                      reconnect_min_s=0.2, reconnect_max_s=2.0)
    pub = mqtt_publisher(mqtt, OutboxConfig(path=str(Path(tempfile.mkdtemp(prefix="ha_gate-")) / "outbox.sqlite")),
                         "gate-check", "check")
    reader = entity_id("event", device_name("gate-check"), "Plate reading")
    tag = f"edge-ocr gate check {uuid.uuid4().hex[:8]}"
    auto_id, auto_eid = tag.replace(" ", "_").replace("-", "_"), entity_id("automation", "", tag)
    started = datetime.now().astimezone()

    def automation(cooldown: int) -> bool:
        body = {"alias": tag, "use_blueprint": {"path": args.blueprint_path, "input": {
            "reader": reader, "gate": args.gate, "cooldown": cooldown}}}
        ok = ha.call("POST", f"/api/config/automation/config/{auto_id}", body)[0] == 200
        time.sleep(2)  # the automations reload
        return ok and wait_for(lambda: ha.state(auto_eid) == "on", 30) is not None

    def openings() -> int:
        book = ha.call("GET", f"/api/logbook/{started.isoformat()}")[1] or []
        # HA's "triggered by ..." entry: logged once per run that passed the conditions
        return len([e for e in book if e.get("entity_id") == auto_eid and e.get("name") == tag
                    and str(e.get("message", "")).startswith("triggered")])

    pub.start()
    try:
        report.check(wait_for(lambda: ha.state(reader) is not None, 60) is not None, f"{reader} exists")
        report.check(automation(0), f"automation from {args.blueprint_path} on {reader} -> {args.gate}, no cooldown")
        for text, _ in GATE_PLATES:
            pub.publish_event(gate_event(text, known))
            time.sleep(3)
        want = sum(opens for _, opens in GATE_PLATES)
        report.check(openings() == want, f"the gate opened once for each known plate and its misreads, never for "
                                         f"the unknown one ({openings()} openings, want {want})")
        report.check(automation(60), "the same automation with a 60 s cooldown")
        for _ in range(2):
            pub.publish_event(gate_event("PJB7392", known))
            time.sleep(3)
        report.check(openings() == want + 1, f"two known plates within the cooldown open the gate once "
                                             f"({openings() - want} openings)")
    finally:
        pub.stop(2.0)
        ha.call("DELETE", f"/api/config/automation/config/{auto_id}")


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
    ap.add_argument("--daemon", metavar="CONFIG", help="run the daemon with this config and check its life cycle")
    ap.add_argument("--cars-s", type=float, default=20.0, help="seconds to let cars pass in each daemon run")
    ap.add_argument("--gate", metavar="ENTITY", help="check the gate blueprint with this stand-in gate (a switch, "
                    "cover or button that opens nothing real): it is opened up to 4 times")
    ap.add_argument("--blueprint-path", default="edge-ocr/gate.yaml",
                    help="where HA has the blueprint, under blueprints/automation/ (default %(default)s)")
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

    if args.gate:
        gate_blueprint(args, ha, report)
        if not args.daemon:
            print(f"{report.failed} check(s) failed" if report.failed else "all checks passed")
            return 1 if report.failed else 0
    if args.daemon:
        life_cycle(args, ha, report)
        print(f"{report.failed} check(s) failed" if report.failed else "all checks passed")
        return 1 if report.failed else 0

    base = f"{args.topic_prefix}/{args.device_id}"
    disc_topic = f"{args.discovery_prefix}/device/{args.device_id}/config"
    topics = [disc_topic, f"{base}/status", f"{base}/last_plate", f"{base}/last_plate/crop", f"{base}/stats"]
    try:
        kept = retained(args, topics)
    except OSError as exc:
        print(f"cannot reach the broker {args.broker}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if not report.check(disc_topic in kept, f"retained discovery config on {disc_topic}"):
        return 1
    cfg = json.loads(kept[disc_topic])
    online = kept.get(f"{base}/status") == b"online"
    print(f"     device {cfg['dev']['name']!r} is {'online' if online else 'offline'}")
    before = check_entities(ha, cfg, kept, base, online, report)

    if args.restart:
        if not restart_ha(ha, report):
            return 1
        kept = retained(args, topics)
        after = check_entities(ha, cfg, kept, base, online, report)
        if online and before is not None:
            report.check(after == before, f"last plate survives the restart ({before} -> {after})")
    print(f"{report.failed} check(s) failed" if report.failed else "all checks passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
