"""What edge-ocr puts on the wire: topics, the plate event JSON, the plate reading JSON, Home
Assistant discovery.

Pure functions of their arguments, and the only serialisers of their shapes: a plate event is
``event_payload`` on MQTT and ``/api/events``; a plate reading is ``plate_payload`` in
``/api/ocr``, ``edge-ocr recognize --json`` and ``edge-ocr tune``. The examples in docs/mqtt.md
(tests/test_mqtt_docs.py) and README.md (tests/test_contract.py) are generated from them. The
client that sends them is ``publish.MqttPublisher``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..types import Box, PlateEvent, Reading

ONLINE = "online"
OFFLINE = "offline"
SCHEMA_VERSION = 1  # of the plate event JSON; bumped on an incompatible change
_ORIGIN = "edge-ocr"


@dataclass(frozen=True)
class Topics:
    """Every topic of one device. Built in one place so the prefix is applied once."""

    plate: str
    crop: str
    last_plate: str  # retained copy of the newest plate event, for subscribers that arrive later
    last_crop: str  # retained copy of the newest raw crop: Home Assistant's image entity after a restart
    status: str
    stats: str
    discovery: str
    ha_status: str


def make_topics(prefix: str, device_id: str, discovery_prefix: str) -> Topics:
    """Topics for ``device_id`` under ``prefix`` (``<prefix>/<device_id>/...``)."""
    base = f"{prefix}/{device_id}"
    return Topics(
        plate=f"{base}/plate",
        crop=f"{base}/plate/crop",
        last_plate=f"{base}/last_plate",
        last_crop=f"{base}/last_plate/crop",
        status=f"{base}/status",
        stats=f"{base}/stats",
        discovery=f"{discovery_prefix}/device/{device_id}/config",
        ha_status=f"{discovery_prefix}/status",
    )


@dataclass(frozen=True)
class StatSensor:
    """A key of the stats message that Home Assistant shows as a diagnostic sensor."""

    key: str
    name: str
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = "measurement"


# The stats callable may return any keys; these are the ones discovery announces. Missing ones are
# sent as null, which Home Assistant shows as "unknown" instead of logging template errors.
# Counters restart at 0 with the daemon: total_increasing tells Home Assistant a drop is a reset.
STATS_SENSORS: tuple[StatSensor, ...] = (
    StatSensor("frames", "Frames", "frames", state_class="total_increasing"),
    StatSensor("dropped_frames", "Dropped frames", "frames", state_class="total_increasing"),
    StatSensor("readings", "Readings", "readings", state_class="total_increasing"),
    StatSensor("events", "Plates published", "plates", state_class="total_increasing"),
    StatSensor("latency_p50_ms", "Latency p50", "ms", "duration"),
    StatSensor("latency_p95_ms", "Latency p95", "ms", "duration"),
    StatSensor("started_at", "Started", device_class="timestamp", state_class=None),
    StatSensor("uptime_s", "Uptime", "s", "duration", "total_increasing"),
    StatSensor("cpu_temp_c", "CPU temperature", "°C", "temperature"),
    StatSensor("outbox_depth", "Outbox depth", "messages"),
    StatSensor("outbox_dropped", "Outbox dropped", "messages", state_class="total_increasing"),
    # the disk refuses writes: events waiting in memory, not yet produced (non-zero needs a person)
    StatSensor("outbox_held", "Events not stored", "messages"),
    StatSensor("dead_lettered", "Dead letters", "messages", state_class="total_increasing"),
)

# Home Assistant builds entity ids from the device name and the entity name; "edge-ocr <id>" for
# an id that already says edge-ocr would give sensor.edge_ocr_edge_ocr_last_plate.
_NAME_PREFIX = "edge-ocr"


def device_name(device_id: str) -> str:
    """The Home Assistant device name for ``device_id``: the id itself when it already starts
    with edge-ocr (the default ``edge-ocr`` -> ``sensor.edge_ocr_last_plate``), otherwise
    ``edge-ocr <id>`` (``gate1`` -> ``sensor.edge_ocr_gate1_last_plate``)."""
    if device_id.lower().replace("_", "-").startswith(_NAME_PREFIX):
        return device_id
    return f"{_NAME_PREFIX} {device_id}"


def utc_iso(ts: float | None = None) -> str:
    """A Unix time (now if None) as UTC ISO-8601 with milliseconds and a ``Z``: the one time
    format of events and stats."""
    t = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(event: PlateEvent, device_id: str, include_crop: str = "off", crop_topic: str = "") -> dict[str, Any]:
    """The JSON object published on ``<prefix>/<device>/plate`` for ``event``.

    ``include_crop``: ``off`` leaves the crop out, ``base64`` adds ``crop_jpeg_b64``, ``raw`` adds
    ``crop_topic`` (the JPEG itself goes there as a separate message, right after this one).
    """
    width, height = event.frame_size
    x, y, w, h = event.box
    payload: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "event_id": event.event_id,
        "device": device_id,
        "camera": event.camera,
        "time_utc": event.time_utc,
        "text": event.text,
        "confidence": round(float(event.confidence), 4),
        "char_confidences": [round(float(c), 4) for c in event.char_confidences],
        "votes": int(event.votes),
        "region": event.region,
        "known_plate": known_payload(event),
        "frame_size": {"width": int(width), "height": int(height)},
        "box": {"x": int(x), "y": int(y), "w": int(w), "h": int(h)},
        "model": event.model,
        "model_version": event.model_version,
    }
    if event.crop_jpeg:
        if include_crop == "base64":
            payload["crop_jpeg_b64"] = base64.b64encode(event.crop_jpeg).decode("ascii")
        elif include_crop == "raw":
            payload["crop_topic"] = crop_topic
    return payload


def known_payload(event: PlateEvent) -> dict[str, Any] | None:
    """The ``known_plates`` entry an event matched: its ``name``, the ``plate`` (or pattern) as
    configured, how (``exact``, ``lookalike``, ``pattern``, ``near``) and the ``distance`` in
    edits beyond look-alike swaps; None for a plate that is not known."""
    k = event.known
    return None if k is None else {"name": k.name, "plate": k.plate, "match": k.kind, "distance": k.distance}


def chars_payload(reading: Reading) -> list[dict[str, Any]]:
    """Per-character confidences of a reading: ``[{"char": "R", "confidence": 0.99}, ...]``."""
    return [{"char": c, "confidence": round(float(p), 4)} for c, p in zip(reading.text, reading.char_confidences)]


def plate_payload(reading: Reading, box: Box | None = None, format_ok: bool | None = None,
                  region: str | None = None) -> dict[str, Any]:
    """One plate reading: ``text``, ``confidence``, ``chars``, then ``box`` ([x, y, w, h] in image
    pixels), ``format_ok`` and ``region`` when known (a bare crop read without formats has none)."""
    doc: dict[str, Any] = {"text": reading.text, "confidence": round(float(reading.confidence), 4),
                           "chars": chars_payload(reading)}
    if box is not None:
        doc["box"] = [int(v) for v in box]
    if format_ok is not None:
        doc["format_ok"] = bool(format_ok)
        doc["region"] = region
    return doc


def ocr_payload(plates: list[dict[str, Any]], ms: float, mode: str, image_size: tuple[int, int],
                accepted: bool = True) -> dict[str, Any]:
    """The ``/api/ocr`` answer: the best plate's ``text``, ``confidence`` and ``chars`` at the top
    (empty unless that plate is ``accepted``: it fits a format of the enabled regions and reaches
    ``recognizer.min_confidence``, the daemon's bar for publishing), the time taken, how the image
    was read, its size, and every plate read (``plate_payload``), best first."""
    best = plates[0] if plates and accepted else {"text": "", "confidence": 0.0, "chars": []}
    return {"text": best["text"], "confidence": best["confidence"], "chars": best["chars"], "ms": round(ms, 2),
            "mode": mode, "image_size": [int(image_size[0]), int(image_size[1])], "plates": plates}


def example_json(doc: dict[str, Any]) -> str:
    """A document as the docs show it: one top-level key per line, values on one line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in doc.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


def discovery_payload(
    topics: Topics,
    device_id: str,
    sw_version: str,
    qos: int,
    include_crop: str,
    *,
    name: str | None = None,
    configuration_url: str | None = None,
) -> dict[str, Any]:
    """Home Assistant device-based discovery config for one device (``dev``, ``o``, ``cmps``).

    Needs Home Assistant 2024.12 or newer (older versions log "Integration device is not
    supported" and create nothing). ``name`` is the device name (default :func:`device_name`);
    ``configuration_url`` links the device page to the web page when the HTTP API is on. A
    component that is switched off (the crop image unless ``include_crop`` is ``raw``) is sent as
    ``{"p": <platform>}`` alone, which is how Home Assistant is told to remove an entity it made
    from an earlier config; for one it never made, the stub is a no-op.
    """
    uid = f"edge_ocr_{device_id}"
    availability = {
        "availability_topic": topics.status,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    cmps = _plate_components(uid, topics, qos, availability)
    cmps[f"{uid}_crop"] = _crop_component(uid, topics, include_crop, availability)
    cmps.update(_stats_components(uid, topics, availability))
    dev: dict[str, Any] = {
        "ids": [uid],
        "name": name or device_name(device_id),
        "mf": "edge-ocr",
        "mdl": "Plate reader",
        "sw": sw_version,
    }
    if configuration_url:
        dev["configuration_url"] = configuration_url
    return {"dev": dev, "o": {"name": _ORIGIN, "sw": sw_version}, "cmps": cmps}


def _plate_components(uid: str, topics: Topics, qos: int, availability: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The last plate's sensors (text, confidence, region, known plate) and the reading event."""
    reading_fields = ("event_id", "camera", "time_utc", "confidence", "votes", "region", "known_plate")
    picked = ", ".join(f"'{k}': value_json.{k}" for k in reading_fields)
    cmps: dict[str, dict[str, Any]] = {
        f"{uid}_last_plate": {
            "p": "sensor",
            "name": "Last plate",
            "unique_id": f"{uid}_last_plate",
            "icon": "mdi:car-info",
            # The retained copy: Home Assistant gets the last plate again when it restarts.
            "state_topic": topics.last_plate,
            "value_template": "{{ value_json.text }}",
            "json_attributes_topic": topics.last_plate,
            # Picked fields only: a base64 crop would bloat the recorder's attributes.
            "json_attributes_template": "{{ {" + picked + "} | to_json }}",
            "qos": qos,
            **availability,
        },
        f"{uid}_last_confidence": {
            "p": "sensor",
            "name": "Last plate confidence",
            "unique_id": f"{uid}_last_confidence",
            "icon": "mdi:percent",
            "state_topic": topics.last_plate,
            "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
            "unit_of_measurement": "%",
            "qos": qos,
            **availability,
        },
        f"{uid}_last_region": {
            "p": "sensor",
            "name": "Last plate region",
            "unique_id": f"{uid}_last_region",
            "icon": "mdi:earth",
            "state_topic": topics.last_plate,
            # A null region renders as "None", which Home Assistant's MQTT sensor shows as unknown.
            "value_template": "{{ value_json.region }}",
            "qos": qos,
            **availability,
        },
        f"{uid}_known_plate": {
            "p": "sensor",
            "name": "Known plate",
            "unique_id": f"{uid}_known_plate",
            "icon": "mdi:car-key",
            "state_topic": topics.last_plate,
            # The known_plates entry's name; unknown when the last plate is on no list.
            "value_template": "{{ value_json.known_plate.name if value_json.known_plate else None }}",
            "qos": qos,
            **availability,
        },
        f"{uid}_reading": {
            "p": "event",
            "name": "Plate reading",
            "unique_id": f"{uid}_reading",
            "icon": "mdi:car-back",
            "state_topic": topics.plate,
            "event_types": ["plate"],
            # An event entity fires on every message, so the same plate seen twice fires twice.
            "value_template": "{{ {'event_type': 'plate', 'text': value_json.text, " + picked + "} | to_json }}",
            "qos": qos,
            **availability,
        },
    }
    return cmps


def _crop_component(uid: str, topics: Topics, include_crop: str, availability: dict[str, str]) -> dict[str, Any]:
    """The last crop's image entity; its removal stub unless crops are sent raw."""
    if include_crop == "raw":
        return {
            "p": "image",
            "name": "Last plate crop",
            "unique_id": f"{uid}_crop",
            # The retained copy, as for the Last plate sensor: the live crop topic is not
            # retained, so a restarted Home Assistant showed no image until the next car.
            "image_topic": topics.last_crop,
            "content_type": "image/jpeg",
            **availability,
        }
    return {"p": "image"}


def _stats_components(uid: str, topics: Topics, availability: dict[str, str]) -> dict[str, dict[str, Any]]:
    """One diagnostic sensor per ``STATS_SENSORS`` entry, from the stats topic."""
    cmps: dict[str, dict[str, Any]] = {}
    for s in STATS_SENSORS:
        comp: dict[str, Any] = {
            "p": "sensor",
            "name": s.name,
            "unique_id": f"{uid}_{s.key}",
            "state_topic": topics.stats,
            "value_template": "{{ value_json." + s.key + " }}",
            "entity_category": "diagnostic",
            **availability,
        }
        if s.unit:
            comp["unit_of_measurement"] = s.unit
        if s.device_class:
            comp["device_class"] = s.device_class
        if s.state_class:
            comp["state_class"] = s.state_class
        cmps[f"{uid}_{s.key}"] = comp
    return cmps