"""The Home Assistant gate blueprint (blueprints/automation/edge-ocr/gate.yaml), checked without a
Home Assistant: its structure as HA reads it (``!input`` tags, inputs, selectors), its trigger
against the event entity discovery announces, and its templates rendered with Jinja2 on the
attributes that entity gets from real plate events (known, near-miss, unknown)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from edge_ocr.publish.mqtt_contract import discovery_payload, event_payload, make_topics
from edge_ocr.types import KnownMatch

from .helpers import event, render

ROOT = Path(__file__).resolve().parents[1]
BLUEPRINT = ROOT / "blueprints" / "automation" / "edge-ocr" / "gate.yaml"
DOCS = ROOT / "docs" / "mqtt.md"


class Input(str):
    """A ``!input name`` reference."""


class BlueprintLoader(yaml.SafeLoader):
    """YAML as Home Assistant reads a blueprint: ``!input`` is a reference to an input."""


BlueprintLoader.add_constructor("!input", lambda loader, node: Input(loader.construct_scalar(node)))


@pytest.fixture(scope="module")
def bp() -> dict[str, Any]:
    return yaml.load(BLUEPRINT.read_text(encoding="utf-8"), Loader=BlueprintLoader)


def references(node: Any) -> list[str]:
    if isinstance(node, Input):
        return [str(node)]
    if isinstance(node, dict):
        return [r for v in node.values() for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    return []


def test_blueprint_metadata_and_inputs(bp: dict[str, Any]) -> None:
    meta = bp["blueprint"]
    assert meta["domain"] == "automation" and meta["name"] and meta["description"]
    assert meta["homeassistant"]["min_version"] == "2024.12.0"  # device-based discovery
    inputs = meta["input"]
    used = references({k: v for k, v in bp.items() if k != "blueprint"})
    assert set(used) == set(inputs), "every input used, every reference an input"
    for name, spec in inputs.items():
        assert spec["name"] and len(spec["selector"]) == 1, name
    assert inputs["reader"]["selector"]["entity"]["filter"] == [{"integration": "mqtt", "domain": "event"}]
    gate_domains = inputs["gate"]["selector"]["entity"]["filter"][0]["domain"]
    assert sorted(gate_domains) == ["button", "cover", "switch"]
    assert sorted(bp["variables"]["services"]) == sorted(gate_domains)  # a service for each domain offered
    # the cooldown: a run ends only after the delay, and a single-mode automation drops triggers meanwhile
    assert bp["mode"] == "single" and bp["max_exceeded"] == "silent"
    assert bp["actions"][-1] == {"delay": {"seconds": Input("cooldown")}}


def test_trigger_is_the_docs_trigger_on_the_announced_event_entity(bp: dict[str, Any]) -> None:
    docs = yaml.safe_load(re.search(r"Example automation.*?```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL).group(1))
    want = {**docs["triggers"][0], "entity_id": Input("reader")}
    assert bp["triggers"] == [want]  # the same not_from/not_to that keep availability changes out
    cmps = discovery_payload(make_topics("edge-ocr", "gate1", "homeassistant"), "gate1", "1", 1, "off")["cmps"]
    reading = cmps["edge_ocr_gate1_reading"]
    assert reading["p"] == "event" and reading["state_topic"] == "edge-ocr/gate1/plate"


_jinja = jinja2.Environment(autoescape=False)


def value(template: str, **context: Any) -> Any:
    """A template as Home Assistant renders a variable: one expression, to a native value."""
    inner = re.fullmatch(r"\{\{(.*)\}\}", template.strip(), re.DOTALL)
    assert inner, template
    return _jinja.compile_expression(inner.group(1))(**context)


def entity_attributes(known: KnownMatch | None) -> dict[str, Any]:
    """What HA's MQTT event entity holds after a plate event: its value_template over the event
    JSON the daemon publishes (event_type plus the picked fields)."""
    topics = make_topics("edge-ocr", "gate1", "homeassistant")
    tpl = discovery_payload(topics, "gate1", "1", 1, "off")["cmps"]["edge_ocr_gate1_reading"]["value_template"]
    payload = json.dumps(event_payload(event(1, known=known), "gate1")).encode()
    return json.loads(render(tpl, payload))


def run(bp: dict[str, Any], known: KnownMatch | None, names: list[str], gate: str) -> str | None:
    """The action the automation calls for one plate event, or None when its condition says no."""
    trigger = {"to_state": {"attributes": entity_attributes(known)}}
    v = bp["variables"]
    ctx = {"trigger": trigger, "names": names, "gate": gate, "services": v["services"]}
    ctx["known"] = value(v["known"], **ctx)
    if not value(bp["conditions"][0]["value_template"], **ctx):
        return None
    assert value(bp["actions"][0]["target"]["entity_id"], **ctx) == gate
    return str(value(bp["actions"][0]["action"], **ctx))


@pytest.mark.parametrize(("known", "names", "gate", "action"), [
    (KnownMatch("our car", "PJB7392", "exact", 0), [], "cover.gate", "cover.open_cover"),
    (KnownMatch("our car", "PJB7392", "near", 1), [], "switch.gate_relay", "switch.turn_on"),  # a near miss
    (KnownMatch("our car", "PJB7392", "lookalike", 0), ["our car"], "button.open_gate", "button.press"),
    (KnownMatch("delivery van", "RK*", "pattern", 0), ["our car"], "cover.gate", None),  # not one of these names
    (None, [], "cover.gate", None),  # a plate on no list
])
def test_gate_opens_for_known_plates_only(bp: dict[str, Any], known: KnownMatch | None, names: list[str],
                                          gate: str, action: str | None) -> None:
    assert run(bp, known, names, gate) == action
