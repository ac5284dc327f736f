"""One serialiser per shape: README's /api/ocr example is what the serialiser produces (docs/mqtt.md's
are checked by tests/test_mqtt_docs.py), and every door (MQTT, /api/events, /api/ocr, recognize
--json) answers in those shapes. A failing test prints the block to paste into the doc."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from edge_ocr.cli import main
from edge_ocr.config import RecognizerConfig, parse_config
from edge_ocr.daemon import LogSink, Pipeline
from edge_ocr.publish.mqtt_contract import event_payload, example_json, ocr_payload, plate_payload
from edge_ocr.stages import Stages, load_recognizer
from edge_ocr.types import Frame, PlateEvent, Reading

from . import scenes

ROOT = Path(__file__).resolve().parents[1]

EVENT = PlateEvent(
    event_id="3f2b9c1e8d4a4b7e9a510c6d2e7f4a10", text="AB123CD", confidence=0.9312,
    char_confidences=(0.99, 0.98, 0.97, 0.9312, 0.99, 0.98, 0.97), camera="gate",
    time_utc="2026-11-25T20:13:29.123Z", frame_size=(1280, 720), box=(412, 388, 176, 42), model="plate_crnn",
    model_version="1.2.0", votes=4, region="eu",
)
PLATE = Reading("RK115AN", 0.9731, (0.9987, 0.9991, 0.9952, 0.9903, 0.9968, 0.9962, 0.9958))
OCR = ocr_payload([plate_payload(PLATE, (412, 388, 176, 42), True, "eu")], 23.41, "frame", (1280, 720))


def _block(doc: dict) -> str:
    return "```json\n" + example_json(doc) + "\n```"


def test_readme_api_ocr_example_is_the_serialisers_output() -> None:
    block = _block(OCR)
    assert block in (ROOT / "README.md").read_text(), f"README.md: the /api/ocr example is\n{block}"


def _shape(doc: object) -> object:
    """Keys and nesting of a JSON document, without the values."""
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_shape(doc[0])] if doc else []
    return type(doc).__name__ if doc is not None else "str"


def test_every_door_answers_in_the_documented_shapes(tmp_path: Path, capsys) -> None:
    rec = load_recognizer(RecognizerConfig())
    stages = Stages.from_config(parse_config("mqtt: {enabled: false}\nmotion: {enabled: false}\n"), rec)
    # /api/ocr
    assert _shape(stages.still.read(scenes.still("RK115AN", "eu", 960, 540))) == _shape(OCR)
    # /api/events holds what MQTT sends
    p = Pipeline(stages, LogSink())
    car = scenes.still("RK115AN", "eu", 640, 360)
    for i in range(3):
        p.process(Frame(i / 10, 1_800_000_000.0 + i / 10, car, i))
    assert p.recent and _shape(p.recent[0]) == _shape(event_payload(EVENT, "gate1"))
    # recognize --json: a plate reading, with the file and the time
    crop = tmp_path / "plate.png"
    cv2.imwrite(str(crop), scenes.clean_plate("RK115AN", "eu", 40))
    assert main(["recognize", "--json", str(crop)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert _shape({k: v for k, v in line.items() if k not in ("file", "ms")}) == _shape(
        plate_payload(PLATE, None, True, "eu"))
