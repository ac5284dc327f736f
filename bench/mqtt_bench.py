"""MQTT numbers with a real local Mosquitto: cost per event on the caller's thread, sustained
QoS 1 events/s, and how fast the outbox replays after the broker was away."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench.broker import LocalBroker, free_port, mosquitto_path
from edge_ocr.config import parse_config
from edge_ocr.publish.publish import MqttPublisher
from edge_ocr.stages import mqtt_publisher
from edge_ocr.types import PlateEvent


def _event(i: int) -> PlateEvent:
    return PlateEvent(event_id=f"bench-{i}", text="RK115AN", confidence=0.98, char_confidences=(0.99,) * 7,
                      camera="bench", time_utc="2026-11-25T00:00:00.000Z", frame_size=(1280, 720),
                      box=(10, 10, 100, 25), model="plate_crnn", model_version="bench", votes=3, region="eu")


def _wait_acked(pub: MqttPublisher, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while pub.stats()["acked"] < target and time.monotonic() < deadline:
        time.sleep(0.005)
    if pub.stats()["acked"] < target:
        raise RuntimeError(f"only {pub.stats()['acked']} of {target} events acknowledged in {timeout} s")
    return time.monotonic()


def bench_mqtt(n: int = 2000, outage_n: int = 1000) -> dict:
    if not mosquitto_path():
        return {"missing": "mosquitto not installed: apt-get install mosquitto"}
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalBroker(Path(tmp), free_port())
        broker.start()
        cfg = parse_config(f"mqtt: {{host: 127.0.0.1, port: {broker.port}, qos: 1, stats_interval_s: 3600, "
                           f"reconnect_min_s: 0.05, reconnect_max_s: 0.2, "
                           f"discovery: {{enabled: false}}}}\noutbox: {{path: '{tmp}/outbox.sqlite', "
                           f"max_events: 100000}}\n")
        pub = mqtt_publisher(cfg.mqtt, cfg.outbox, "bench", "bench")
        pub.start()
        deadline = time.monotonic() + 10
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        # 1. cost on the caller (the pipeline thread) and sustained delivery with acknowledgements
        cost = []
        t0 = time.monotonic()
        for i in range(n):
            t = time.perf_counter()
            pub.publish_event(_event(i))
            cost.append((time.perf_counter() - t) * 1000)
        t_done = _wait_acked(pub, n, 120)
        sustained = n / (t_done - t0)
        # 2. broker away: events go to the outbox; then measure the replay once it is back
        broker.stop()
        while pub.connected:
            time.sleep(0.01)
        for i in range(outage_n):
            pub.publish_event(_event(n + i))
        pub.sync(30)
        queued = pub.stats()["queued"]
        broker.start()
        while not pub.connected:
            time.sleep(0.005)
        t_conn = time.monotonic()
        t_replayed = _wait_acked(pub, n + outage_n, 120)
        pub.stop(timeout=5)
        broker.stop()
    c = np.array(cost)
    return {"events": n, "cost_ms_p50": round(float(np.percentile(c, 50)), 4),
            "cost_ms_p99": round(float(np.percentile(c, 99)), 4),
            "sustained_events_per_s": round(sustained, 1),
            "outage_events": outage_n, "queued_during_outage": queued,
            "replay_events_per_s": round(outage_n / max(t_replayed - t_conn, 1e-6), 1),
            "replay_s": round(t_replayed - t_conn, 3)}
