"""`edge-ocr listen` against a real broker and `edge-ocr tune` on a real video."""

import io
import json
import threading
import time
from pathlib import Path

import cv2

from edge_ocr.cli import main
from edge_ocr.config import parse_config
from edge_ocr.tools_cli import listen

from .helpers import PLATES, play, write_config


def test_listen_prints_the_events_the_daemon_publishes(tmp_path: Path, video: Path, mosquitto) -> None:
    cfg_path = write_config(tmp_path, video, mosquitto.port)
    out = io.StringIO()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(
        listen(parse_config(cfg_path.read_text()), "test-gate", count=3, timeout_s=60, out=out)))
    t.start()
    time.sleep(0.5)
    play(cfg_path, video)
    t.join(65)
    lines = out.getvalue().splitlines()
    assert result == [3]
    assert "test-gate status online" in lines
    for text, _ in PLATES:
        assert any(f" {text} conf=" in line for line in lines), lines


def test_tune_draws_candidates_with_readings(tmp_path: Path, video: Path, capsys) -> None:
    cfg = write_config(tmp_path, video, 1883).read_text().replace("fps: 10}", "fps: 10}\nmotion: {enabled: false}")
    cfg_path = tmp_path / "tune.yaml"
    cfg_path.write_text(cfg.replace("mqtt: {", "mqtt: {enabled: false, "))
    snap = tmp_path / "snap.png"
    assert main(["tune", "--config", str(cfg_path), "--out", str(snap), "--frames", "15"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frame"] == [960, 540]
    assert any(c["text"] == "RK115AN" for c in info["candidates"]), info
    img = cv2.imread(str(snap))
    assert img is not None and img.shape == (540, 960, 3)
