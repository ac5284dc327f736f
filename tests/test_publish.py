"""The MQTT publisher against a real mosquitto: payloads, availability, outages, restarts, auth, TLS,
Home Assistant discovery."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from edge_ocr.publish.mqtt_contract import STATS_SENSORS, discovery_payload, event_payload, make_topics

from .helpers import DEVICE, TOPICS, free_port, make_event, mqtt_cfg, outbox_cfg, wait_until

Broker = Any  # tests/conftest.py's Broker; not imported, conftest is no module to import from
TlsFiles = Any
REPO = Path(__file__).resolve().parents[1]
# ----------------------------------------------------------------------------- payloads


def test_event_arrives_with_every_field(mosquitto: Broker, tmp_path: Path, subscribers, publishers) -> None:
    sub = subscribers(mosquitto, [TOPICS.plate + "/#", TOPICS.plate])
    pub = publishers(mqtt_cfg(mosquitto.port, include_crop="base64"), outbox_cfg(tmp_path), DEVICE, "1.2.3")
    wait_until(lambda: pub.connected, what="connect")
    crop = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"
    pub.publish_event(make_event(7, crop=crop))
    wait_until(lambda: sub.on(TOPICS.plate), what="event")

    msg = sub.on(TOPICS.plate)[0]
    assert msg.qos == 1 and not msg.retain
    got = json.loads(msg.payload)
    assert got == {
        "schema": 1,
        "event_id": "evt-0007",
        "device": DEVICE,
        "camera": "gate",
        "time_utc": "2026-11-25T20:13:29.123Z",
        "text": "AB0007",
        "confidence": pytest.approx(0.9123),
        "char_confidences": pytest.approx([0.99, 0.98, 0.97, 0.96, 0.95, 0.9123]),
        "votes": 3,
        "region": "eu",
        "known_plate": None,
        "frame_size": {"width": 1280, "height": 720},
        "box": {"x": 100, "y": 200, "w": 180, "h": 45},
        "model": "plate_crnn_int8",
        "model_version": "2026.11.1",
        "crop_jpeg_b64": base64.b64encode(crop).decode(),
    }
    assert sub.on(TOPICS.crop) == []  # base64 mode: nothing on the raw topic
    wait_until(lambda: pub.stats()["acked"] == 1 and pub.stats()["queued"] == 0, what="ack")
    assert pub.stats()["published"] == 1 and pub.stats()["dropped"] == 0


def test_crop_off_and_raw(mosquitto: Broker, tmp_path: Path, subscribers, publishers) -> None:
    sub = subscribers(mosquitto, [TOPICS.plate, TOPICS.crop])
    crop = b"\xff\xd8raw-jpeg\xff\xd9"
    off = publishers(mqtt_cfg(mosquitto.port), outbox_cfg(tmp_path, "a.sqlite"), DEVICE, "1")
    wait_until(lambda: off.connected)
    off.publish_event(make_event(1, crop=crop))
    wait_until(lambda: sub.on(TOPICS.plate), what="event without crop")
    first = sub.events(TOPICS.plate)[0]
    assert "crop_jpeg_b64" not in first and "crop_topic" not in first
    off.stop(2)

    raw = publishers(mqtt_cfg(mosquitto.port, include_crop="raw"), outbox_cfg(tmp_path, "b.sqlite"), DEVICE, "1")
    wait_until(lambda: raw.connected)
    raw.publish_event(make_event(2, crop=crop))
    wait_until(lambda: sub.on(TOPICS.crop), what="raw crop")
    assert sub.payloads(TOPICS.crop) == [crop]
    second = sub.events(TOPICS.plate)[1]
    assert second["event_id"] == "evt-0002" and second["crop_topic"] == TOPICS.crop
    assert "crop_jpeg_b64" not in second


def test_stats_published_with_callable_and_outbox_counters(
    mosquitto: Broker, tmp_path: Path, subscribers, publishers
) -> None:
    sub = subscribers(mosquitto, [TOPICS.stats])
    calls: list[int] = []

    def stats_fn() -> dict[str, Any]:
        calls.append(1)
        return {"frames": 120 * len(calls), "readings": 4, "cpu_temp_c": 51.5, "custom": "x"}

    publishers(mqtt_cfg(mosquitto.port, stats_interval_s=1), outbox_cfg(tmp_path), DEVICE, "1", stats_fn=stats_fn)
    wait_until(lambda: len(sub.on(TOPICS.stats)) >= 2, timeout=4, what="two stats messages")
    first, second = sub.events(TOPICS.stats)[:2]
    assert first["frames"] == 120 and second["frames"] == 240  # sent on connect, then periodically
    assert first["readings"] == 4 and first["cpu_temp_c"] == 51.5 and first["custom"] == "x"
    assert first["outbox_depth"] == 0 and first["outbox_dropped"] == 0
    assert {"mqtt_published", "mqtt_acked", "time_utc"} <= first.keys()
    assert first["latency_p95_ms"] is None  # announced to Home Assistant, not given: null, not missing
    assert {s.key for s in STATS_SENSORS} <= first.keys()


# ----------------------------------------------------------------------------- availability


def test_status_online_retained_then_offline_on_clean_stop(
    mosquitto: Broker, tmp_path: Path, subscribers, publishers
) -> None:
    pub = publishers(mqtt_cfg(mosquitto.port), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    late = subscribers(mosquitto, [TOPICS.status])  # subscribes after: sees the retained copy
    wait_until(lambda: late.on(TOPICS.status), what="retained online")
    first = late.on(TOPICS.status)[0]
    assert (first.payload, first.retain) == (b"online", True)

    assert pub.stop(2) is True
    wait_until(lambda: len(late.on(TOPICS.status)) == 2, what="offline")
    assert late.payloads(TOPICS.status) == [b"online", b"offline"]
    assert not pub.connected

    again = subscribers(mosquitto, [TOPICS.status])
    wait_until(lambda: again.on(TOPICS.status), what="retained offline")
    assert (again.on(TOPICS.status)[0].payload, again.on(TOPICS.status)[0].retain) == (b"offline", True)


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from edge_ocr.config import MqttConfig, OutboxConfig
    from edge_ocr.stages import mqtt_publisher
    from edge_ocr.types import PlateEvent

    pub = mqtt_publisher(
        MqttConfig(host="127.0.0.1", port={port}, keepalive_s=5, discovery={{"enabled": False}},
                   reconnect_min_s=0.1, reconnect_max_s=0.3),
        OutboxConfig(path={outbox!r}), {device!r}, "child",
    )
    pub.start()
    for i in range({n}):
        pub.publish_event(PlateEvent(
            event_id=f"evt-{{i:04d}}", text=f"AB{{i:04d}}", confidence=0.9, char_confidences=(0.9,),
            camera="gate", time_utc="2026-11-25T20:13:29.123Z", frame_size=(1280, 720),
            box=(1, 2, 3, 4), model="m", model_version="1"))
    assert pub.sync(10)
    if {wait_connected}:
        deadline = time.monotonic() + 10
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.02)
    print("ready", pub.connected, pub.stats()["queued"], flush=True)
    time.sleep(60)
    """
)


def spawn_child(
    tmp_path: Path, port: int, outbox: Path, n: int, wait_connected: bool
) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "child.py"
    script.write_text(
        CHILD.format(repo=str(REPO), port=port, outbox=str(outbox), device=DEVICE, n=n, wait_connected=wait_connected)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the child is ready (or dies)
    if not line.startswith("ready"):
        proc.kill()
        raise AssertionError(f"child failed: {line}{proc.stderr.read() if proc.stderr else ''}")
    return proc, line


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    for f in (proc.stdout, proc.stderr):
        if f:
            f.close()


def test_last_will_offline_when_process_dies(mosquitto: Broker, tmp_path: Path, subscribers) -> None:
    sub = subscribers(mosquitto, [TOPICS.status])
    proc, line = spawn_child(tmp_path, mosquitto.port, tmp_path / "child.sqlite", 0, wait_connected=True)
    try:
        assert line.split()[1] == "True"
        wait_until(lambda: b"online" in sub.payloads(TOPICS.status), what="online")
    finally:
        kill(proc)
    # No DISCONNECT was sent: the broker publishes the Last Will as soon as the socket drops.
    wait_until(lambda: sub.payloads(TOPICS.status)[-1:] == [b"offline"], what="last will")
    late = subscribers(mosquitto, [TOPICS.status])
    wait_until(lambda: late.on(TOPICS.status), what="retained will")
    assert late.on(TOPICS.status)[0].payload == b"offline" and late.on(TOPICS.status)[0].retain


# ----------------------------------------------------------------------------- outages and restarts


def test_events_during_broker_outage_arrive_in_order(make_broker, tmp_path: Path, subscribers, publishers) -> None:
    broker = make_broker(persistence=True)
    # A persistent session: the broker keeps the subscription and queues for it across its restart.
    sub = subscribers(broker, [TOPICS.plate], client_id="test-sub", persistent=True)
    pub = publishers(mqtt_cfg(broker.port), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    pub.publish_event(make_event(0))
    wait_until(lambda: len(sub.on(TOPICS.plate)) == 1, what="first event")

    broker.stop()
    wait_until(lambda: not pub.connected, what="disconnect")
    for i in range(1, 21):
        pub.publish_event(make_event(i))
    assert pub.sync(5)
    assert pub.stats()["queued"] == 20  # on disk, waiting
    time.sleep(0.3)  # a few reconnect attempts fail meanwhile
    assert not pub.connected and pub.stats()["queued"] == 20

    broker.start()
    wait_until(lambda: len(sub.on(TOPICS.plate)) >= 21, timeout=10, what="backlog")
    assert [e["event_id"] for e in sub.events(TOPICS.plate)] == [f"evt-{i:04d}" for i in range(21)]
    wait_until(lambda: pub.stats()["queued"] == 0, what="outbox drained")
    assert pub.stats()["acked"] == 21


def test_unacknowledged_at_connection_loss_are_resent_once(
    make_broker, tmp_path: Path, subscribers, publishers
) -> None:
    broker = make_broker(persistence=True)
    sub = subscribers(broker, [TOPICS.plate], client_id="test-sub", persistent=True)
    broker.stop()  # saves the subscriber's session, which the SIGKILLed broker below will not
    broker.start()
    pub = publishers(mqtt_cfg(broker.port), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    broker.pause()  # PUBLISH packets go out, no PUBACK comes back
    for i in range(10):
        pub.publish_event(make_event(i))
    wait_until(lambda: pub.stats()["inflight"] == 10, what="10 handed to paho, unacknowledged")
    broker.kill()
    wait_until(lambda: not pub.connected, what="disconnect")
    assert pub.stats()["queued"] == 10  # still on disk: no ack was ever seen

    broker.start()
    wait_until(lambda: len(sub.on(TOPICS.plate)) >= 10, timeout=10, what="resent events")
    assert [e["event_id"] for e in sub.events(TOPICS.plate)] == [f"evt-{i:04d}" for i in range(10)]
    wait_until(lambda: pub.stats()["queued"] == 0, what="acks after reconnect")
    # paho resent its own unacknowledged copies; the outbox did not hand them over a second time.
    assert pub.stats()["published"] == 10 and pub.stats()["acked"] == 10


def test_qos0_delivers_and_drains(mosquitto: Broker, tmp_path: Path, subscribers, publishers) -> None:
    sub = subscribers(mosquitto, [TOPICS.plate])
    pub = publishers(mqtt_cfg(mosquitto.port, qos=0), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    for i in range(20):
        pub.publish_event(make_event(i))
    wait_until(lambda: len(sub.on(TOPICS.plate)) >= 20, what="qos 0 events")
    assert all(m.qos == 0 for m in sub.on(TOPICS.plate))
    wait_until(lambda: pub.stats()["queued"] == 0, what="outbox drained on write")


def test_sigkill_while_broker_down_then_restart_delivers_all(
    make_broker, tmp_path: Path, subscribers, publishers
) -> None:
    broker = make_broker(persistence=True)
    sub = subscribers(broker, [TOPICS.plate], client_id="test-sub", persistent=True)
    broker.stop()
    outbox = tmp_path / "shared.sqlite"
    proc, line = spawn_child(tmp_path, broker.port, outbox, 15, wait_connected=False)
    assert line.split()[1:] == ["False", "15"]  # not connected, 15 on disk
    kill(proc)  # no chance to flush or say goodbye

    broker.start()
    pub = publishers(mqtt_cfg(broker.port), outbox_cfg(tmp_path, outbox.name), DEVICE, "1")
    wait_until(lambda: len(sub.on(TOPICS.plate)) >= 15, timeout=10, what="events of the killed process")
    assert [e["event_id"] for e in sub.events(TOPICS.plate)] == [f"evt-{i:04d}" for i in range(15)]
    wait_until(lambda: pub.stats()["queued"] == 0, what="outbox drained")


def test_restart_sends_leftovers_and_bound_drops_oldest(
    mosquitto: Broker, tmp_path: Path, subscribers, publishers, caplog: pytest.LogCaptureFixture
) -> None:
    sub = subscribers(mosquitto, [TOPICS.plate])
    ob = outbox_cfg(tmp_path, max_events=10)
    nowhere = free_port()  # nothing listens there
    first = publishers(mqtt_cfg(nowhere), ob, DEVICE, "1")
    for i in range(12):
        first.publish_event(make_event(i))
    assert first.sync(5)
    assert first.stats()["queued"] == 10 and first.stats()["dropped"] == 2
    assert any("outbox full" in r.getMessage() for r in caplog.records)
    t0 = time.monotonic()
    assert first.stop(1.0) is False  # nothing delivered; returns without waiting for a broker
    assert time.monotonic() - t0 < 1.5

    second = publishers(mqtt_cfg(mosquitto.port), ob, DEVICE, "1")
    wait_until(lambda: len(sub.on(TOPICS.plate)) >= 10, what="leftovers")
    assert [e["event_id"] for e in sub.events(TOPICS.plate)] == [f"evt-{i:04d}" for i in range(2, 12)]
    wait_until(lambda: second.stats()["queued"] == 0)
    assert second.stop(2) is True


def test_stop_flushes_backlog_before_offline(mosquitto: Broker, tmp_path: Path, subscribers, publishers) -> None:
    sub = subscribers(mosquitto, [TOPICS.plate, TOPICS.status])
    pub = publishers(mqtt_cfg(mosquitto.port), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    for i in range(50):
        pub.publish_event(make_event(i))
    assert pub.stop(5) is True  # returns once everything is acknowledged
    wait_until(lambda: sub.payloads(TOPICS.status)[-1:] == [b"offline"], what="offline")
    assert len(sub.on(TOPICS.plate)) == 50
    pub.publish_event(make_event(99))  # after stop: refused and counted, not an exception
    assert pub.stats()["dropped"] == 1


def test_flood_of_1000_events_all_delivered(mosquitto: Broker, tmp_path: Path, subscribers, publishers) -> None:
    sub = subscribers(mosquitto, [TOPICS.plate])
    pub = publishers(mqtt_cfg(mosquitto.port), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    for i in range(1000):
        assert pub.publish_event(make_event(i))  # True: on disk when it returns
    wait_until(lambda: len(sub.on(TOPICS.plate)) >= 1000, timeout=30, what="1000 events")
    ids = [e["event_id"] for e in sub.events(TOPICS.plate)]
    assert ids == [f"evt-{i:04d}" for i in range(1000)]
    wait_until(lambda: pub.stats()["queued"] == 0, what="all acked")
    assert pub.stats()["acked"] == 1000


# ----------------------------------------------------------------------------- security


def test_wrong_password_not_connected_then_right_one_delivers(
    mosquitto_auth: Broker,
    tmp_path: Path,
    subscribers,
    publishers,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="edge_ocr.publish.publish")
    ((user, password),) = mosquitto_auth.users.items()
    changes: list[bool] = []
    bad = publishers(
        mqtt_cfg(mosquitto_auth.port, username=user, password="wrong"),
        outbox_cfg(tmp_path),
        DEVICE,
        "1",
        on_connection_change=changes.append,
    )
    for i in range(3):
        bad.publish_event(make_event(i))
    wait_until(lambda: sum("refused" in r.getMessage() for r in caplog.records) >= 1, what="refusal logged")
    time.sleep(0.5)  # several more refused attempts at 0.1-0.3 s back-off
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1, "a repeated refusal is logged once"
    assert refusals[0].levelno == logging.WARNING and "Not authorized" in refusals[0].getMessage()
    assert not bad.connected and changes == []
    assert bad.stats()["queued"] == 3 and bad.stats()["published"] == 0
    assert bad.stop(0.5) is False

    sub = subscribers(mosquitto_auth, [TOPICS.plate], auth=(user, password))
    monkeypatch.setenv("EDGE_OCR_MQTT_PASSWORD", password)  # the password from the environment
    good = publishers(
        mqtt_cfg(mosquitto_auth.port, username=user),
        outbox_cfg(tmp_path),
        DEVICE,
        "1",
        on_connection_change=changes.append,
    )
    wait_until(lambda: len(sub.on(TOPICS.plate)) >= 3, what="queued events after auth")
    assert [e["event_id"] for e in sub.events(TOPICS.plate)] == ["evt-0000", "evt-0001", "evt-0002"]
    assert good.connected and changes == [True]


def test_tls_verified_connects_and_wrong_ca_fails(
    make_broker, tls_files: TlsFiles, tmp_path: Path, publishers, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(tls=tls_files)
    ok = publishers(
        mqtt_cfg(broker.port, tls={"enabled": True, "ca_file": str(tls_files.ca)}),
        outbox_cfg(tmp_path, "a.sqlite"),
        DEVICE,
        "1",
    )
    wait_until(lambda: ok.connected, what="TLS connect")
    ok.publish_event(make_event(1))
    wait_until(lambda: ok.stats()["acked"] == 1, what="ack over TLS")
    ok.stop(1)

    # A CA that did not sign the broker's certificate: the server's own certificate will do.
    wrong = publishers(
        mqtt_cfg(broker.port, tls={"enabled": True, "ca_file": str(tls_files.cert)}),
        outbox_cfg(tmp_path, "b.sqlite"),
        DEVICE,
        "1",
    )
    wait_until(lambda: any("TLS" in r.getMessage() for r in caplog.records), what="TLS failure logged")
    msg = next(r.getMessage() for r in caplog.records if "TLS" in r.getMessage())
    assert "certificate verify failed" in msg
    assert not wrong.connected


# ----------------------------------------------------------------------------- Home Assistant


def test_discovery_payload_retained_and_resent_on_ha_birth(
    mosquitto: Broker, tmp_path: Path, subscribers, publishers
) -> None:
    pub = publishers(mqtt_cfg(mosquitto.port), outbox_cfg(tmp_path), DEVICE, "9.9.9")
    wait_until(lambda: pub.connected)
    sub = subscribers(mosquitto, [TOPICS.discovery])
    wait_until(lambda: sub.on(TOPICS.discovery), what="discovery")
    assert TOPICS.discovery == f"homeassistant/device/{DEVICE}/config"
    msg = sub.on(TOPICS.discovery)[0]
    assert msg.retain
    cfg = json.loads(msg.payload)

    assert cfg["dev"]["ids"] == [f"edge_ocr_{DEVICE}"] and cfg["dev"]["sw"] == "9.9.9" and cfg["dev"]["name"]
    assert cfg["o"]["name"] == "edge-ocr" and cfg["o"]["sw"] == "9.9.9"
    # The crop image is off: sent as {"p": "image"} alone, Home Assistant's "remove this entity".
    assert cfg["cmps"].pop(f"edge_ocr_{DEVICE}_crop") == {"p": "image"}
    cmps = cfg["cmps"]
    uids = [c["unique_id"] for c in cmps.values()]
    assert len(uids) == len(set(uids)) and all(u.startswith(f"edge_ocr_{DEVICE}_") for u in uids)
    for comp in cmps.values():
        assert comp["p"] in {"sensor", "event", "image"}
        assert comp["availability_topic"] == TOPICS.status
        assert (comp["payload_available"], comp["payload_not_available"]) == ("online", "offline")

    last = cmps[f"edge_ocr_{DEVICE}_last_plate"]
    assert last["p"] == "sensor" and last["state_topic"] == TOPICS.last_plate
    assert last["value_template"] == "{{ value_json.text }}"
    reading = cmps[f"edge_ocr_{DEVICE}_reading"]
    assert reading["p"] == "event" and reading["state_topic"] == TOPICS.plate
    assert reading["event_types"] == ["plate"] and "'event_type': 'plate'" in reading["value_template"]
    stats = [c for c in cmps.values() if c.get("state_topic") == TOPICS.stats]
    assert {c["value_template"] for c in stats} == {"{{ value_json." + s.key + " }}" for s in STATS_SENSORS}
    assert all(c["entity_category"] == "diagnostic" and c["p"] == "sensor" for c in stats)
    assert cmps[f"edge_ocr_{DEVICE}_cpu_temp_c"]["device_class"] == "temperature"

    # Home Assistant restarts and announces itself: discovery comes again.
    sub.clear()
    sub.client.publish(TOPICS.ha_status, "online", qos=1)
    wait_until(lambda: sub.on(TOPICS.discovery), what="discovery re-sent")
    again = json.loads(sub.on(TOPICS.discovery)[0].payload)
    again["cmps"].pop(f"edge_ocr_{DEVICE}_crop")
    assert again == cfg
    sub.clear()
    sub.client.publish(TOPICS.ha_status, "offline", qos=1)
    time.sleep(0.3)
    assert sub.on(TOPICS.discovery) == []


def test_discovery_off_and_raw_crop_image_entity(mosquitto: Broker, tmp_path: Path, subscribers, publishers) -> None:
    pub = publishers(mqtt_cfg(mosquitto.port, discovery={"enabled": False}), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    sub = subscribers(mosquitto, ["homeassistant/#", TOPICS.status])
    wait_until(lambda: sub.on(TOPICS.status), what="status")
    sub.client.publish(TOPICS.ha_status, "online", qos=1)
    time.sleep(0.3)
    assert [m.topic for m in sub.messages if m.topic != TOPICS.status] == [TOPICS.ha_status]

    cfg = discovery_payload(TOPICS, DEVICE, "1", 1, include_crop="raw")
    image = cfg["cmps"][f"edge_ocr_{DEVICE}_crop"]
    assert image["p"] == "image" and image["image_topic"] == TOPICS.last_crop and image["content_type"] == "image/jpeg"
    assert discovery_payload(TOPICS, DEVICE, "1", 1, "off")["cmps"][f"edge_ocr_{DEVICE}_crop"] == {"p": "image"}


def test_topics_and_payload_helpers() -> None:
    t = make_topics("site/a", "cam-2", "ha")
    assert (t.plate, t.crop, t.status, t.stats) == (
        "site/a/cam-2/plate",
        "site/a/cam-2/plate/crop",
        "site/a/cam-2/status",
        "site/a/cam-2/stats",
    )
    assert (t.discovery, t.ha_status) == ("ha/device/cam-2/config", "ha/status")
    assert (t.last_plate, t.last_crop) == ("site/a/cam-2/last_plate", "site/a/cam-2/last_plate/crop")
    p = event_payload(make_event(1, crop=b"jpg"), "cam-2", "raw", t.crop)
    assert p["crop_topic"] == t.crop and p["device"] == "cam-2"
    assert "crop_topic" not in event_payload(make_event(1), "cam-2", "raw", t.crop)  # no crop, no pointer


def test_broker_restarting_at_random_moments_loses_nothing(make_broker, tmp_path: Path, subscribers,
                                                           publishers) -> None:
    """Fuzz: bursts of events while the broker stops and starts at seeded-random moments."""
    rng = random.Random(int(os.environ.get("EDGE_OCR_FUZZ_SEED", "7")))
    rounds = int(os.environ.get("EDGE_OCR_FUZZ_ROUNDS", "6"))
    broker = make_broker(persistence=True)
    sub = subscribers(broker, [TOPICS.plate], client_id="fuzz-sub", persistent=True)
    pub = publishers(mqtt_cfg(broker.port), outbox_cfg(tmp_path), DEVICE, "1")
    wait_until(lambda: pub.connected)
    produced = 0
    for _ in range(rounds):
        for _ in range(rng.randint(1, 40)):
            pub.publish_event(make_event(produced))
            produced += 1
            if rng.random() < 0.05:
                time.sleep(rng.uniform(0, 0.02))
        time.sleep(rng.uniform(0, 0.1))  # the broker goes away mid-delivery, or after it
        broker.stop()
        for _ in range(rng.randint(0, 30)):
            pub.publish_event(make_event(produced))
            produced += 1
        time.sleep(rng.uniform(0.05, 0.4))
        broker.start()
    wait_until(lambda: pub.stats()["acked"] >= produced, timeout=30, what="every event acknowledged")
    wait_until(lambda: len({e["event_id"] for e in sub.events(TOPICS.plate)}) >= produced, timeout=15,
               what="every event at the subscriber")
    got = [e["event_id"] for e in sub.events(TOPICS.plate)]
    assert set(got) == {f"evt-{i:04d}" for i in range(produced)}
    assert pub.stats()["queued"] == 0 and pub.stats()["dropped"] == 0
    assert pub.stats()["acked"] == produced  # counted once each, resends included
