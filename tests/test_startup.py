"""Start-up: every error that stops ``run`` exits 2 with one line naming the key or file, and
``check-config`` accepts exactly the files ``run`` starts with."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ocr.cli import main
from edge_ocr.daemon import Daemon
from edge_ocr.stages import StartupError

ROOT = Path(__file__).resolve().parents[1]


def _cases(tmp: Path) -> list[tuple[str, str, str]]:
    """(config YAML, the key the error line must name, a file it must name or "")."""
    video = tmp / "v.avi"
    cam = f"camera: {{type: file, uri: '{video}'}}\n"
    return [
        ("mqtt: {port: 70000}\n", "mqtt.port", ""),
        (cam + "mqtt: {enabled: false}\nlocalizer: {min_aspect: 7, max_aspect: 3}\n", "localizer.min_aspect", ""),
        ("camera: {type: picamera2}\nmqtt: {enabled: false}\n", "camera.type", ""),
        (cam + f"mqtt: {{enabled: false}}\nrecognizer: {{model: '{tmp / 'nope.onnx'}'}}\n", "recognizer.model",
         "nope.onnx"),
        (cam + f"mqtt: {{username: u, password_file: '{tmp / 'pw.txt'}'}}\n", "mqtt.password_file", "pw.txt"),
    ]


@pytest.mark.parametrize("case", range(5), ids=["range", "aspects", "picamera2", "model", "password_file"])
def test_every_start_up_error_exits_2_with_one_line(tmp_path: Path, case: int, capsys) -> None:
    text, key, file = _cases(tmp_path)[case]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "edge_ocr", "run", "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and key in lines[0] and file in lines[0], proc.stderr  # no traceback
    # check-config refuses it the same way
    assert main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and key in err[0] and file in err[0], err


def test_picamera2_check_follows_the_package(tmp_path: Path, monkeypatch) -> None:
    # the check asks whether the package can be imported, not which machine this is
    fake = tmp_path / "site"
    (fake / "picamera2").mkdir(parents=True)
    (fake / "picamera2" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(fake))
    cfg = tmp_path / "config.yaml"
    cfg.write_text("camera: {type: picamera2}\nmqtt: {enabled: false}\n")
    assert main(["check-config", str(cfg)]) == 0


# ----------------------------------------------------------------------------- check-config == run

settings_for_configs = settings(max_examples=12, deadline=None,
                                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def configs(draw: st.DrawFn) -> dict:
    """Configs that differ where a start-up check can fail, valid or not."""
    doc: dict = {"device_id": "prop"}
    doc["camera"] = draw(st.sampled_from([{"type": "file", "uri": "missing.avi"}, {"type": "picamera2"},
                                          {"type": "folder", "uri": "frames"}]))
    doc["localizer"] = {"min_aspect": draw(st.sampled_from([1.0, 1.5, 3.0, 7.0, 9.0])),
                        "max_aspect": draw(st.sampled_from([1.0, 3.0, 7.0, 12.0]))}
    doc["recognizer"] = {"model": draw(st.sampled_from(["models/plate_crnn_int8.onnx", "models/absent.onnx",
                                                        "models/plate_crnn_fp32.onnx"]))}
    mqtt: dict = {"enabled": draw(st.booleans())}
    pw = draw(st.sampled_from([None, "pw-present.txt", "pw-absent.txt"]))
    if pw:
        mqtt.update(username="u", password_file=pw)
    doc["mqtt"] = mqtt
    doc["voting"] = {"window_s": draw(st.sampled_from([0.5, 3.0, -1.0]))}
    return doc


@given(doc=configs())
@settings_for_configs
def test_check_config_accepts_exactly_what_run_starts_with(tmp_path: Path, mosquitto, doc: dict, capsys) -> None:
    (tmp_path / "pw-present.txt").write_text("secret\n")
    (tmp_path / "frames").mkdir(exist_ok=True)
    for section, key in (("camera", "uri"), ("mqtt", "password_file")):
        if doc[section].get(key):
            doc[section][key] = str(tmp_path / doc[section][key])
    if doc["recognizer"]["model"]:
        doc["recognizer"]["model"] = str(ROOT / doc["recognizer"]["model"])
    doc["mqtt"].update(host="127.0.0.1", port=mosquitto.port)
    doc["outbox"] = {"path": str(tmp_path / "outbox.sqlite")}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    checked = main(["check-config", str(cfg)])
    capsys.readouterr()
    try:
        d = Daemon.open(str(cfg), threading.Event())
    except StartupError:
        started = 2
    else:
        d.close()
        started = 0
    assert checked == started, doc
