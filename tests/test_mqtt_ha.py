"""Home Assistant's view of edge-ocr over a real Mosquitto: a test client does what HA's MQTT
integration does (subscribe to discovery, then to the topics the components name, render their
templates with Jinja2) after the publisher has been running, after an HA restart, and after a
clean stop."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_ocr.config import Config, ConfigError, HttpConfig, MqttConfig, OutboxConfig, parse_config
from edge_ocr.publish.mqtt_contract import STATS_SENSORS, device_name
from edge_ocr.publish.publish import MqttPublisher
from edge_ocr.stages import configuration_url, mqtt_publisher, publisher
from edge_ocr.types import KnownMatch

from .helpers import DEVICE, FAST, TOPICS, entity_id, event, render, wait_until

UID = f"edge_ocr_{DEVICE}"








class FakeHomeAssistant:
    """Home Assistant's MQTT integration as far as discovery and state go, on a real broker."""

    def __init__(self, broker: Any, prefix: str = "homeassistant") -> None:
        self.prefix = prefix
        self.log: list[tuple[str, bytes, bool]] = []  # every message, in arrival order
        self._lock = threading.Lock()
        self._acked = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._acked.set()
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        self.subscribe(f"{prefix}/device/+/config")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.log.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def subscribe(self, *topics: str) -> None:
        self._acked.clear()
        self.client.subscribe([(t, 1) for t in topics])
        assert self._acked.wait(5), "no SUBACK"

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.log if t == topic]

    def components(self, device: str = DEVICE) -> dict[str, dict[str, Any]]:
        """The newest discovery config's components (wait for one first)."""
        topic = f"{self.prefix}/device/{device}/config"
        wait_until(lambda: self.on(topic), what="discovery")
        return json.loads(self.on(topic)[-1][0])["cmps"]

    def set_up_entities(self) -> dict[str, dict[str, Any]]:
        """Subscribe to every topic the components name, as HA does once it made the entities."""
        cmps = self.components()
        keys = ("state_topic", "json_attributes_topic", "availability_topic", "image_topic")
        self.subscribe(*sorted({c[k] for c in cmps.values() for k in keys if k in c}))
        return cmps

    def state(self, comp: dict[str, Any]) -> str | None:
        """What the entity shows: its template over the newest message, None for unknown/unavailable."""
        availability = self.on(comp["availability_topic"])
        if not availability or availability[-1][0].decode() != comp["payload_available"]:
            return None
        messages = self.on(comp["state_topic"])
        if not messages:
            return None
        value = render(comp["value_template"], messages[-1][0])
        return None if value == "None" else value  # HA's MQTT sensor: "None" means unknown

    def birth(self) -> None:
        self.client.publish(f"{self.prefix}/status", "online", qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def ha() -> Iterator[Callable[[Any], FakeHomeAssistant]]:
    made: list[FakeHomeAssistant] = []

    def factory(broker: Any) -> FakeHomeAssistant:
        made.append(FakeHomeAssistant(broker))
        return made[-1]

    yield factory
    for h in made:
        h.close()


@pytest.fixture
def publishers() -> Iterator[Callable[..., MqttPublisher]]:
    made: list[MqttPublisher] = []

    def factory(port: int, tmp_path: Path, name: str = "o.sqlite", stats_fn: Any = None,
                **mqtt: Any) -> MqttPublisher:
        cfg = MqttConfig(host="127.0.0.1", port=port, keepalive_s=5, **FAST, **mqtt)
        pub = mqtt_publisher(cfg, OutboxConfig(path=str(tmp_path / name)), DEVICE, "1.2.3", stats_fn=stats_fn)
        made.append(pub)
        pub.start()
        wait_until(lambda: pub.connected, what="connect")
        return pub

    yield factory
    for p in made:
        p.stop(0.2)


def pipeline_stats() -> dict[str, Any]:
    return {"frames": 1200, "dropped_frames": 3, "readings": 40, "events": 2, "latency_p50_ms": 12.5,
            "latency_p95_ms": 30.1, "uptime_s": 61.0, "cpu_temp_c": 48.5}


# ----------------------------------------------------------------------------- after an HA restart


def test_ha_restart_finds_last_plate_stats_and_availability(mosquitto, tmp_path: Path, ha, publishers) -> None:
    pub = publishers(mosquitto.port, tmp_path, stats_fn=pipeline_stats)
    pub.publish_event(event(1, region=None))
    pub.publish_event(event(2, known=KnownMatch("our car", "AB0O2CD", "lookalike", 0)))
    wait_until(lambda: pub.stats()["acked"] == 2 and pub.stats()["queued"] == 0, what="acks")

    # Home Assistant (re)starts now: it missed every live message, only retained ones reach it.
    hass = ha(mosquitto)
    cmps = hass.set_up_entities()
    wait_until(lambda: hass.state(cmps[f"{UID}_frames"]) is not None, what="stats state")
    assert hass.state(cmps[f"{UID}_last_plate"]) == "AB002CD"
    assert hass.state(cmps[f"{UID}_last_confidence"]) == "93.1"
    assert hass.state(cmps[f"{UID}_last_region"]) == "eu"
    assert hass.state(cmps[f"{UID}_known_plate"]) == "our car"
    attrs = json.loads(render(cmps[f"{UID}_last_plate"]["json_attributes_template"], hass.on(TOPICS.last_plate)[-1][0]))
    assert attrs == {"event_id": "evt-2", "camera": "gate", "time_utc": "2026-11-25T20:13:02.000Z",
                     "confidence": 0.9312, "votes": 4, "region": "eu",
                     "known_plate": {"name": "our car", "plate": "AB0O2CD", "match": "lookalike", "distance": 0}}
    assert hass.state(cmps[f"{UID}_frames"]) == "1200"
    assert hass.state(cmps[f"{UID}_latency_p50_ms"]) == "12.5"
    started = hass.state(cmps[f"{UID}_started_at"])
    assert started is not None and datetime.fromisoformat(started).tzinfo is not None
    # The plate topic itself is not retained: an automation must not fire again for an old car.
    assert hass.on(TOPICS.plate) == []
    assert hass.on(TOPICS.last_plate)[-1][1] is True and hass.on(TOPICS.stats)[-1][1] is True

    pub.publish_event(event(3, region=None))  # a plate no format matched: region unknown, not "None"
    wait_until(lambda: len(hass.on(TOPICS.last_plate)) == 2, what="the next last plate")
    assert hass.state(cmps[f"{UID}_last_plate"]) == "AB003CD"
    assert hass.state(cmps[f"{UID}_last_region"]) is None
    assert hass.state(cmps[f"{UID}_known_plate"]) is None  # on no list: unknown, not the previous name


def test_ha_birth_resends_discovery_then_stats(mosquitto, tmp_path: Path, ha, publishers) -> None:
    calls: list[int] = []

    def stats_fn() -> dict[str, Any]:
        calls.append(1)
        return {**pipeline_stats(), "frames": len(calls)}

    publishers(mosquitto.port, tmp_path, stats_fn=stats_fn, stats_interval_s=3600)
    hass = ha(mosquitto)
    hass.set_up_entities()
    wait_until(lambda: hass.on(TOPICS.stats), what="retained stats")
    before = len(hass.log)
    hass.birth()
    wait_until(lambda: [t for t, _, _ in hass.log[before:] if t == TOPICS.stats], what="stats after the birth")
    live = [(t, r) for t, _, r in hass.log[before:]]
    # Discovery first (HA makes the entities), then stats for them, without waiting an interval.
    assert live.index((TOPICS.discovery, False)) < live.index((TOPICS.stats, False))
    assert json.loads(hass.on(TOPICS.stats)[-1][0])["frames"] >= 2  # a fresh one, not the retained copy


def test_clean_stop_sends_final_stats_then_offline(mosquitto, tmp_path: Path, ha, publishers) -> None:
    pub = publishers(mosquitto.port, tmp_path, stats_fn=pipeline_stats, stats_interval_s=3600)
    hass = ha(mosquitto)
    cmps = hass.set_up_entities()
    for i in range(3):
        pub.publish_event(event(i))
    assert pub.stop(5) is True
    wait_until(lambda: hass.on(TOPICS.status)[-1:] == [(b"offline", False)], what="offline")
    order = [t for t, _, _ in hass.log if t in (TOPICS.stats, TOPICS.status)]
    assert order[-2:] == [TOPICS.stats, TOPICS.status]
    final = json.loads(hass.on(TOPICS.stats)[-1][0])
    assert final["mqtt_acked"] == 3 and final["outbox_depth"] == 0
    assert hass.state(cmps[f"{UID}_last_plate"]) is None  # unavailable now, like every entity


def test_first_stats_have_no_zero_latency(mosquitto, tmp_path: Path, ha, publishers) -> None:
    from edge_ocr.daemon import LogSink, Pipeline
    from edge_ocr.stages import Stages

    pipeline = Pipeline(Stages.from_config(Config()), LogSink())
    assert pipeline.stats()["latency_p50_ms"] is None  # no frame read yet: unknown, not 0.0
    publishers(mosquitto.port, tmp_path, stats_fn=pipeline.stats)
    hass = ha(mosquitto)
    cmps = hass.set_up_entities()
    wait_until(lambda: hass.on(TOPICS.stats), what="stats")
    assert json.loads(hass.on(TOPICS.stats)[-1][0])["latency_p50_ms"] is None
    assert hass.state(cmps[f"{UID}_latency_p95_ms"]) is None
    assert hass.state(cmps[f"{UID}_frames"]) == "0"


# ----------------------------------------------------------------------------- entities


def test_ha_restart_finds_the_last_crop_and_crops_off_clears_it(mosquitto, tmp_path: Path, ha, publishers) -> None:
    # Seen on Home Assistant 2025.4.4: the image entity read the live (not retained) crop topic
    # and was "unknown" after an HA restart while the Last plate sensor showed the plate.
    raw = publishers(mosquitto.port, tmp_path, include_crop="raw")
    raw.publish_event(event(1, crop=b"\xff\xd8first\xff\xd9"))
    raw.publish_event(event(2, crop=b"\xff\xd8second\xff\xd9"))
    wait_until(lambda: raw.stats()["acked"] == 4 and raw.stats()["queued"] == 0, what="acks")

    hass = ha(mosquitto)  # starts after the cars: only retained messages reach it
    image = hass.set_up_entities()[f"{UID}_crop"]
    wait_until(lambda: hass.on(image["image_topic"]), what="the retained crop")
    assert hass.on(image["image_topic"]) == [(b"\xff\xd8second\xff\xd9", True)]
    assert hass.on(TOPICS.crop) == []  # the live topic stays unretained, like the plate topic
    assert raw.stats()["published"] == 4  # the copies are not counted
    raw.stop(2)

    # Crops switched off: the retained image is deleted, not left on the broker.
    publishers(mosquitto.port, tmp_path, include_crop="off")
    wait_until(lambda: hass.on(TOPICS.last_crop)[-1:] == [(b"", False)], what="the crop cleared")
    late = ha(mosquitto)
    late.subscribe(TOPICS.last_crop, TOPICS.status)  # one SUBSCRIBE: retained messages in this order
    wait_until(lambda: late.on(TOPICS.status), what="retained status")
    assert late.on(TOPICS.last_crop) == []


def test_crop_raw_then_off_removes_the_image_entity(mosquitto, tmp_path: Path, ha, publishers) -> None:
    raw = publishers(mosquitto.port, tmp_path, include_crop="raw")
    raw.publish_event(event(1, crop=b"\xff\xd8jpeg\xff\xd9"))
    hass = ha(mosquitto)
    image = hass.set_up_entities()[f"{UID}_crop"]
    assert image["p"] == "image" and image["image_topic"] == TOPICS.last_crop
    raw.stop(2)

    publishers(mosquitto.port, tmp_path, include_crop="off")
    wait_until(lambda: len(hass.on(TOPICS.discovery)) >= 2, what="the new discovery")
    # A config with only the platform is how device discovery tells HA to remove a component.
    assert hass.components()[f"{UID}_crop"] == {"p": "image"}
    late = ha(mosquitto)  # and it stays removed for an HA that starts later: the stub is retained
    assert late.components()[f"{UID}_crop"] == {"p": "image"}


def test_counters_units_state_classes_and_started_at(mosquitto, tmp_path: Path, ha, publishers) -> None:
    publishers(mosquitto.port, tmp_path, stats_fn=pipeline_stats)
    cmps = ha(mosquitto).components()
    for key in ("frames", "dropped_frames", "readings", "events", "outbox_dropped"):
        comp = cmps[f"{UID}_{key}"]
        assert comp["state_class"] == "total_increasing" and comp["unit_of_measurement"], key
    started = cmps[f"{UID}_started_at"]
    assert started["device_class"] == "timestamp" and "state_class" not in started
    assert cmps[f"{UID}_outbox_depth"]["state_class"] == "measurement"
    assert {k.removeprefix(f"{UID}_") for k, c in cmps.items() if c.get("state_topic") == TOPICS.stats} == {
        s.key for s in STATS_SENSORS
    }


@pytest.mark.parametrize(
    ("device_id", "name", "expected"),
    [
        ("edge-ocr", None, "sensor.edge_ocr_last_plate"),  # the default id: no "edge_ocr_edge_ocr"
        ("edge-ocr-north", None, "sensor.edge_ocr_north_last_plate"),
        ("gate1", None, "sensor.edge_ocr_gate1_last_plate"),
        ("gate1", "Front gate", "sensor.front_gate_last_plate"),
    ],
)
def test_default_device_names(device_id: str, name: str | None, expected: str) -> None:
    extra = f"  discovery: {{device_name: '{name}'}}\n" if name else ""
    cfg = parse_config(f"device_id: {device_id}\nmqtt:\n  host: localhost\n{extra}")
    shown = cfg.mqtt.discovery.device_name or device_name(cfg.device_id)
    assert entity_id("sensor", shown, "Last plate") == expected


def test_configuration_url_when_http_is_on(mosquitto, tmp_path: Path, ha) -> None:
    assert configuration_url(HttpConfig()) is None  # http off: nothing to link to
    assert configuration_url(HttpConfig(enabled=True)) == "http://127.0.0.1:8080/"
    assert configuration_url(HttpConfig(enabled=True, host="0.0.0.0", port=9000, token="t")) == (
        f"http://{socket.gethostname()}:9000/")
    assert configuration_url(HttpConfig(enabled=True, port=0)) is None  # port unknown until bound
    assert configuration_url(HttpConfig(enabled=True), "https://gate.example/") == "https://gate.example/"
    with pytest.raises(ConfigError, match="mqtt.discovery.configuration_url"):
        parse_config("mqtt: {discovery: {configuration_url: 'gate.local'}}\n")

    cfg = parse_config(
        f"device_id: {DEVICE}\nmqtt: {{host: 127.0.0.1, port: {mosquitto.port}, keepalive_s: 5, "
        f"reconnect_min_s: {FAST['reconnect_min_s']}, reconnect_max_s: {FAST['reconnect_max_s']}}}\n"
        f"outbox: {{path: '{tmp_path / 'o.sqlite'}'}}\nhttp: {{enabled: true, port: 8099}}\n"
    )
    pub = publisher(cfg, "1.2.3")
    pub.start()
    try:
        hass = ha(mosquitto)
        wait_until(lambda: hass.on(TOPICS.discovery), what="discovery")
        dev = json.loads(hass.on(TOPICS.discovery)[-1][0])["dev"]
        assert dev["configuration_url"] == "http://127.0.0.1:8099/" and dev["name"] == "edge-ocr gate1"
    finally:
        pub.stop(1)
