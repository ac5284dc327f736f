"""edge-ocr against a real Home Assistant, opt-in: set EDGE_OCR_HA_VENV to a venv holding
Home Assistant (tested with 2025.4.4 on Python 3.13:
``python3.13 -m venv /opt/havenv && /opt/havenv/bin/pip install homeassistant==2025.4.4``).

The test starts HA on a fresh config dir, onboards it and adds the MQTT integration through its
REST API, then runs ``tools/ha_check.py --daemon ... --restart`` with the demo video: entities,
states, an HA restart, availability on SIGTERM and start, removal of the image entity, and the
docs' example automation. HA's first start installs its integrations' requirements into that
venv (minutes); later runs take about three minutes. CI does not set the variable."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
VENV = os.environ.get("EDGE_OCR_HA_VENV", "")
pytestmark = pytest.mark.skipif(not VENV, reason="EDGE_OCR_HA_VENV (a venv with Home Assistant) is not set")

HA_CONFIG = """\
homeassistant:
  name: edge-ocr check
  time_zone: UTC
  unit_system: metric
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
auth:
onboarding:
config:
websocket_api:
logbook:
automation: !include automations.yaml
# the gate blueprint's stand-in gate: each turn_on counts
counter:
  gate_opened:
switch:
  - platform: template
    switches:
      gate:
        turn_on:
          action: counter.increment
          target:
            entity_id: counter.gate_opened
        turn_off:
          action: counter.reset
          target:
            entity_id: counter.gate_opened
"""


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None,
         form: bool = False) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if form:
        data = urllib.parse.urlencode(body).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        data = None if body is None else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def onboard(base: str, broker_port: int) -> str:
    """A fresh HA's owner account and the MQTT integration; returns an access token (valid for
    30 minutes, longer than the check runs)."""
    client = base + "/"
    status, user = call(base, "POST", "/api/onboarding/users", {
        "client_id": client, "name": "Check", "username": "check", "password": "check-pass-123", "language": "en"})
    assert status == 200, user
    status, tok = call(base, "POST", "/auth/token", {
        "grant_type": "authorization_code", "code": user["auth_code"], "client_id": client}, form=True)
    assert status == 200, tok
    token = tok["access_token"]
    status, flow = call(base, "POST", "/api/config/config_entries/flow", {"handler": "mqtt"}, token)
    assert status == 200 and flow["step_id"] == "broker", flow
    status, done = call(base, "POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                        {"broker": "127.0.0.1", "port": broker_port}, token)
    assert status == 200 and done["type"] == "create_entry", done
    return str(token)


@pytest.fixture
def home_assistant(mosquitto, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A fresh Home Assistant with the MQTT integration on ``mosquitto`` and the gate blueprint
    in its blueprints folder; yields (base URL, access token)."""
    hass_bin = Path(VENV) / "bin" / "hass"
    assert hass_bin.is_file(), f"EDGE_OCR_HA_VENV={VENV}: no bin/hass there"
    conf, port = tmp_path / "ha", free_port()
    conf.mkdir()
    (conf / "configuration.yaml").write_text(HA_CONFIG.format(port=port), encoding="utf-8")
    (conf / "automations.yaml").write_text("[]\n", encoding="utf-8")
    blueprints = conf / "blueprints" / "automation" / "edge-ocr"
    blueprints.mkdir(parents=True)
    shutil.copy(ROOT / "blueprints" / "automation" / "edge-ocr" / "gate.yaml", blueprints / "gate.yaml")
    log = tmp_path / "ha.log"
    # hass exits with 100 on homeassistant.restart and leaves starting again to its supervisor.
    loop = f'while "{hass_bin}" -c "{conf}" >> "{log}" 2>&1; [ $? -eq 100 ]; do :; done'
    ha = subprocess.Popen(["bash", "-c", loop], start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900  # the first start installs requirements
        while True:
            try:
                if call(base, "GET", "/api/onboarding")[0] == 200:
                    break
            except OSError:
                pass
            assert ha.poll() is None, f"Home Assistant exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"Home Assistant did not answer: {log.read_text()[-3000:]}"
            time.sleep(2)
        yield base, onboard(base, mosquitto.port)
    finally:
        os.killpg(ha.pid, signal.SIGTERM)
        try:
            ha.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(ha.pid, signal.SIGKILL)
            ha.wait()


def load_ha_check() -> Any:
    from tools import ha_check

    return ha_check


def test_real_home_assistant(home_assistant: tuple[str, str], mosquitto, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    base, token = home_assistant
    daemon_cfg = tmp_path / "edge-ocr.yaml"
    daemon_cfg.write_text(
        "device_id: gate1\n"
        f"camera: {{name: demo-street, type: file, uri: '{ROOT / 'samples' / 'demo.mp4'}', fps: 10, loop: true}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {mosquitto.port}, stats_interval_s: 30}}\n"
        f"outbox: {{path: '{tmp_path / 'outbox.sqlite'}'}}\n"
        "roi: {polygons: [[[0, 0.4], [1, 0.4], [1, 1], [0, 1]]]}\n", encoding="utf-8")
    rc = load_ha_check().main(["--ha", base, "--token", token, "--broker", "127.0.0.1", "--port", str(mosquitto.port),
                               "--daemon", str(daemon_cfg), "--restart", "--cars-s", "12"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "all checks passed" in out
    for line in ("sensor.edge_ocr_gate1_last_plate = last_plate on the broker (7ABC123)",
                 "image.edge_ocr_gate1_last_plate_crop removed after include_crop raw -> off",
                 "the docs' automation ran once per plate event"):
        assert line in out, out


def test_real_home_assistant_gate_blueprint(home_assistant: tuple[str, str], mosquitto,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The blueprint, imported into HA's blueprints folder, made into an automation on a stand-in
    gate: the known plate and its misreads open it, the unknown plate never, the cooldown holds."""
    base, token = home_assistant
    rc = load_ha_check().main(["--ha", base, "--token", token, "--broker", "127.0.0.1", "--port",
                               str(mosquitto.port), "--gate", "switch.gate"])
    out = capsys.readouterr().out
    assert rc == 0 and "all checks passed" in out, out
    status, state = call(base, "GET", "/api/states/counter.gate_opened", token=token)
    assert status == 200 and state["state"] == "4", state  # 3 known readings, then 1 within the cooldown
