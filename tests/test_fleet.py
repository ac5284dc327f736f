"""A fleet box bridged to a central broker (bench/fleet.py, two real Mosquittos on loopback):
the central broker goes away, plate events keep coming, it comes back, and every event is at the
centre once, in order. The 2-minute outage of docs/mqtt.md is `python -m bench.fleet`; this one
is shorter."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.fleet import Outage, plate_event, run_outage
from edge_ocr.config import MqttConfig, OutboxConfig
from edge_ocr.stages import mqtt_publisher

from .helpers import MOSQUITTO


def test_bridge_outage_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    r = run_outage(tmp_path, outage_s=6.0, rate_hz=2.0)
    assert len(r.produced) == 5 + 12 + 5
    assert r.received == r.produced  # every event once, in the order the box produced it
    assert (r.lost, r.duplicated, r.in_order) == (0, 0, True)
    assert r.catch_up_s is not None


def test_outage_figures_count_what_went_wrong() -> None:
    r = Outage(produced=["a", "b", "c", "d"], received=["a", "c", "b", "c"])
    assert (r.lost, r.duplicated, r.in_order) == (1, 1, False)
    assert Outage(produced=["a", "b"], received=["a", "b"]).in_order


def docs_acl() -> str:
    """The ACL file of docs/mqtt.md's fleet section."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "mqtt.md").read_text(encoding="utf-8")
    block = re.search(r"```\n# mosquitto\.conf at the centre\n(.*?)```", text, re.DOTALL)
    assert block, "docs/mqtt.md: no central mosquitto.conf block"
    return block.group(1).split("# /etc/mosquitto/acl", 1)[1].split("\n", 1)[1]


def test_the_docs_acl_confines_each_device_to_its_own_topics(make_broker, tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text(docs_acl(), encoding="utf-8")
    broker = make_broker(users={"lane1": "pw1", "homeassistant": "pw-ha"}, extra=[f"acl_file {acl}"])
    got: list[tuple[str, bytes]] = []
    ha = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    ha.username_pw_set("homeassistant", "pw-ha")
    ha.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    ha.connect(broker.host, broker.port)
    ha.subscribe([("edge-ocr/#", 1), ("homeassistant/device/#", 1)])
    ha.loop_start()
    pubs = []
    try:
        for device in ("lane1", "lane2"):  # lane2 logs in as lane1: a device_id that is not its user name
            cfg = MqttConfig(host=broker.host, port=broker.port, username="lane1", password="pw1", keepalive_s=5,
                             max_refusals=2, reconnect_min_s=0.1, reconnect_max_s=0.5)
            pub = mqtt_publisher(cfg, OutboxConfig(path=str(tmp_path / f"{device}.sqlite")), device, "1")
            pubs.append(pub)
            pub.start()
            ev = plate_event(len(pubs))
            pub.publish_event(ev)
            # lane1's event is acknowledged; lane2's refused (MQTT 5: "Not authorized") and dead-lettered
            done = "acked" if device == "lane1" else "dead_lettered"
            deadline = time.monotonic() + 10
            while pub.stats()[done] < 1:
                assert time.monotonic() < deadline, f"{device}: not {done}: {pub.stats()}"
                time.sleep(0.05)
        time.sleep(1.0)
        topics = {t for t, _ in got}
        assert {"edge-ocr/lane1/plate", "edge-ocr/lane1/status", "homeassistant/device/lane1/config"} <= topics
        assert not [t for t in topics if "lane2" in t], topics  # refused by the ACL
    finally:
        for pub in pubs:
            pub.stop(0.5)
        ha.loop_stop()
        ha.disconnect()
