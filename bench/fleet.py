"""A fleet box behind a Mosquitto bridge: the uplink to the central broker goes down, plate
events keep coming, the uplink comes back; are they all at the centre, once each, in order?

    python -m bench.fleet --outage-s 120          # the 2-minute outage of docs/mqtt.md's fleet section

Two real Mosquitto brokers on loopback: the box's own (the daemon publishes there, through its
outbox, as installed) bridges ``edge-ocr/#`` out to the central one (``bridge_conf``: QoS 1,
``cleansession false``, so the box's broker queues what the centre has not acknowledged). A
collector at the centre (persistent session) records every plate event. The outage is the
central broker stopped (SIGTERM) and started again, as when the uplink or the central server
goes. tests/test_fleet.py runs the same with a short outage.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_ocr.config import MqttConfig, OutboxConfig
from edge_ocr.publish.mqtt_contract import utc_iso
from edge_ocr.stages import mqtt_publisher
from edge_ocr.types import PlateEvent

from .broker import LocalBroker, free_port


def bridge_conf(name: str, central_port: int, prefix: str = "edge-ocr") -> str:
    """The mosquitto.conf lines that bridge box ``name``'s local broker to the central one.

    ``out 1``: the box's events go up at QoS 1 and nothing comes down; ``cleansession false``:
    both ends keep the bridge's session, so what the centre has not acknowledged stays queued on
    the box (``max_queued_messages`` bounds it) and goes up, in order, when the link returns;
    ``restart_timeout 1 2``: retry after 1 to 2 s, jittered (a bench wants the link back at
    once; mosquitto's default ``5 30`` backs off to 30 s, and a single value turned out slower
    than its name says: 6 to 9 s between tries with mosquitto 2.0.11).
    """
    return (f"connection {name}-uplink\naddress 127.0.0.1:{central_port}\n"
            f"topic {prefix}/# out 1\ntopic homeassistant/device/# out 1\n"
            f"cleansession false\nremote_clientid bridge-{name}\nlocal_clientid bridge-{name}-local\n"
            "restart_timeout 1 2\ntry_private true\nnotifications false\n")


class Collector:
    """A persistent-session subscriber at the central broker: every plate event it receives."""

    def __init__(self, port: int) -> None:
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fleet-collector", clean_session=False,
                                  protocol=paho.MQTTv311)
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.on_message = self._on_message
        # subscribe on every connect: a no-op for a session the broker kept, needed if it did not
        self.client.on_connect = lambda c, *_: c.subscribe("+/+/plate", qos=1)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        with self._lock:
            self.events.append(json.loads(m.payload))

    def ids(self) -> list[str]:
        with self._lock:
            return [e["event_id"] for e in self.events]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Outage:
    """What one run found at the centre."""

    produced: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    outage_s: float = 0.0
    catch_up_s: float | None = None  # from the centre's restart to the last event arriving

    @property
    def lost(self) -> int:
        return len(set(self.produced) - set(self.received))

    @property
    def duplicated(self) -> int:
        return len(self.received) - len(set(self.received))

    @property
    def in_order(self) -> bool:
        seen = [i for i in dict.fromkeys(self.received) if i in set(self.produced)]
        return seen == [i for i in self.produced if i in set(seen)]


def plate_event(i: int) -> PlateEvent:
    return PlateEvent(event_id=f"fleet-{i:06d}", text=f"FLT{i:04d}", confidence=0.95, char_confidences=(0.95,) * 7,
                      camera="lane", time_utc=utc_iso(), frame_size=(1280, 720), box=(0, 0, 10, 5),
                      model="plate_crnn", model_version="fleet", votes=2, region=None)


def _wait(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_outage(workdir: Path, outage_s: float, rate_hz: float = 2.0, before: int = 5, after: int = 5,
               settle_s: float = 60.0) -> Outage:
    """One bridged box, one outage of ``outage_s`` with events every 1/``rate_hz`` s during it."""
    central_port, box_port = free_port(), free_port()
    (workdir / "central").mkdir(parents=True, exist_ok=True)
    (workdir / "box").mkdir(parents=True, exist_ok=True)
    central = LocalBroker(workdir / "central", central_port, persistence=True)
    box = LocalBroker(workdir / "box", box_port, persistence=True, extra=bridge_conf("box1", central_port))
    result = Outage(outage_s=outage_s)
    central.start()
    box.start()
    collector = Collector(central_port)
    pub = mqtt_publisher(MqttConfig(host="127.0.0.1", port=box_port, keepalive_s=5, discovery={"enabled": False},
                                    reconnect_min_s=0.1, reconnect_max_s=1.0),
                         OutboxConfig(path=str(workdir / "outbox.sqlite")), "box1", "fleet")
    pub.start()

    def produce(n: int, every_s: float) -> None:
        for _ in range(n):
            ev = plate_event(len(result.produced))
            pub.publish_event(ev)
            result.produced.append(ev.event_id)
            time.sleep(every_s)

    try:
        produce(before, 0.05)
        if not _wait(lambda: len(collector.ids()) >= before, 30):
            raise RuntimeError(f"the bridge carried {len(collector.ids())} of the first {before} events")
        central.stop()
        produce(max(1, int(outage_s * rate_hz)), 1 / rate_hz)
        central.start()
        restarted = time.monotonic()
        produce(after, 0.05)
        if _wait(lambda: set(result.produced) <= set(collector.ids()), settle_s):
            result.catch_up_s = round(time.monotonic() - restarted, 2)
        time.sleep(1.0)  # a late duplicate would arrive now
        result.received = collector.ids()
        if not _wait(lambda: pub.stats()["queued"] == 0, 10):
            raise RuntimeError("the box's broker did not acknowledge every event")
    finally:
        pub.stop(1.0)
        collector.close()
        box.stop()
        central.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outage-s", type=float, default=120.0)
    ap.add_argument("--rate-hz", type=float, default=2.0, help="plate events a second during the outage")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleet") as tmp:
        r = run_outage(Path(tmp), args.outage_s, args.rate_hz)
    print(f"outage {r.outage_s:.0f} s: {len(r.produced)} events produced, {len(r.received)} received at the centre; "
          f"lost {r.lost}, duplicated {r.duplicated}, order kept: {r.in_order}; all there {r.catch_up_s} s "
          "after the central broker came back")
    return 0 if r.lost == r.duplicated == 0 and r.in_order else 1


if __name__ == "__main__":
    raise SystemExit(main())
