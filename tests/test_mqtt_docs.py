"""docs/mqtt.md's examples are generated from the code that builds the messages; this test fails
when they drift. ``EDGE_OCR_WRITE_DOCS=1 pytest tests/test_mqtt_docs.py`` rewrites them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from edge_ocr.config import Config
from edge_ocr.daemon import LogSink, Pipeline
from edge_ocr.publish.announce import Announcer
from edge_ocr.publish.mqtt_contract import device_name, discovery_payload, event_payload, make_topics, utc_iso
from edge_ocr.stages import Stages, load_recognizer
from edge_ocr.types import PlateEvent

from .helpers import entity_id

DOC = Path(__file__).resolve().parents[1] / "docs" / "mqtt.md"
BLOCK = re.compile(r"(<!-- generated:(\w+) -->\n)(.*?)(<!-- end:\2 -->)", re.DOTALL)
DEVICE = "gate1"
TOPICS = make_topics("edge-ocr", DEVICE, "homeassistant")
WHEN = 1795637609.123  # 2026-11-25T20:13:29.123Z


def fenced(lang: str, body: str) -> str:
    return f"```{lang}\n{body}\n```\n"


def example_event() -> dict[str, Any]:
    """An event as the daemon builds it (Pipeline._emit), with the shipped model's own name and version."""
    info = load_recognizer(Config().recognizer).info
    event = PlateEvent(
        event_id="3f2b9c1e8d4a4b7e9a510c6d2e7f4a10",  # uuid4().hex
        text="AB123CD",
        confidence=0.9312,
        char_confidences=(0.99, 0.98, 0.97, 0.9312, 0.99, 0.98, 0.97),
        camera="gate",
        time_utc=utc_iso(WHEN),
        frame_size=(1280, 720),
        box=(412, 388, 176, 42),
        model=info.name,
        model_version=info.version,
        votes=4,
        region="eu",
    )
    return event_payload(event, DEVICE)


def example_stats() -> dict[str, Any]:
    """Stats as the daemon sends them: the pipeline's keys, the daemon's, the publisher's."""
    cfg = Config()
    pipeline_keys = set(Pipeline(Stages.from_config(cfg), LogSink()).stats())
    daemon = {"frames": 36012, "gated": 30120, "candidates": 8410, "readings": 211, "rejected": 9, "events": 52,
              "bad_frames": 0, "latency_p50_ms": 38.2, "latency_p95_ms": 71.9, "dropped_frames": 14,
              "skipped_frames": 0, "uptime_s": 3601.0, "cpu_temp_c": 52.1}
    assert pipeline_keys <= daemon.keys(), f"add the pipeline's new keys to the example: {pipeline_keys - daemon.keys()}"
    mqtt = Config().mqtt
    announcer = Announcer(TOPICS, DEVICE, "0.1.0", qos=mqtt.qos, include_crop=mqtt.include_crop,
                          discovery=mqtt.discovery.enabled, stats_fn=lambda: daemon,
                          delivery_stats=lambda: {"queued": 0, "dropped": 0, "published": 52, "acked": 52})
    announcer.started_at = utc_iso(WHEN - 3601)
    data = json.loads(announcer.stats().payload)
    data["time_utc"] = utc_iso(WHEN)
    return data


def entities_table() -> str:
    cfg = discovery_payload(TOPICS, DEVICE, "0.1.0", 1, include_crop="raw")
    dev = cfg["dev"]["name"]
    assert dev == device_name(DEVICE)
    rows = ["| Component (`cmps` key) | Entity id it gets | Platform | Topic | Value | Unit, classes |",
            "|---|---|---|---|---|---|"]
    for key, c in cfg["cmps"].items():
        topic = c.get("state_topic") or c.get("image_topic")
        value = c.get("value_template", c.get("content_type", ""))
        value = "`" + value.replace("|", "\\|") + "`" if len(value) < 60 else "event_type `plate` + the event's fields"
        extra = ", ".join(x for x in (c.get("unit_of_measurement"), c.get("device_class"), c.get("state_class"),
                                      c.get("entity_category")) if x)
        rows.append(f"| `{key}` | `{entity_id(c['p'], dev, c['name'])}` | {c['p']} | `{topic}` | {value} | {extra} |")
    return "\n".join(rows) + "\n"


def generated() -> dict[str, str]:
    return {
        "event": fenced("json", json.dumps(example_event(), indent=2, ensure_ascii=False)),
        "stats": fenced("json", json.dumps(example_stats(), indent=2, ensure_ascii=False)),
        "entities": entities_table(),
    }


def test_docs_examples_are_what_the_code_sends() -> None:
    want = generated()
    text = DOC.read_text(encoding="utf-8")
    if os.environ.get("EDGE_OCR_WRITE_DOCS") == "1":
        text = BLOCK.sub(lambda m: m.group(1) + want[m.group(2)] + m.group(4), text)
        DOC.write_text(text, encoding="utf-8")
    have = {m.group(2): m.group(3) for m in BLOCK.finditer(text)}
    assert have.keys() == want.keys(), f"docs/mqtt.md has generated blocks {sorted(have)}, expected {sorted(want)}"
    for name, body in want.items():
        assert have[name] == body, (
            f"docs/mqtt.md block '{name}' differs from what the code sends; "
            "rewrite it with EDGE_OCR_WRITE_DOCS=1 pytest tests/test_mqtt_docs.py"
        )
