"""Several cameras on one machine: the template unit systemd/edge-ocr@.service, `tools/install.sh
--instance`, `check-config` on several files, and two instances running side by side against one
real broker, each started with its unit's own command line.

systemd/edge-ocr@.service is edge-ocr.service with per-instance names (``template_of`` below):
``EDGE_OCR_WRITE_UNITS=1 pytest tests/test_instances.py`` rewrites it after a change to the
single unit."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from edge_ocr.cli import main
from edge_ocr.config import load_config

from .helpers import UNIT, parse_unit, run_install, verify

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "systemd" / "edge-ocr@.service"

HEADER = """\
# edge-ocr@NAME: one more camera on this machine, one instance per camera (edge-ocr@entry,
# edge-ocr@exit). Each instance has its own config /etc/edge-ocr/NAME.yaml, state directory and
# outbox /var/lib/edge-ocr-NAME, journal identifier edge-ocr-NAME and MQTT password credential
# edge-ocr-NAME.mqtt_password. `tools/install.sh --instance NAME` installs this file as
# /etc/systemd/system/edge-ocr@.service and writes NAME.yaml with a device_id, outbox and HTTP
# port of its own; `edge-ocr check-config /etc/edge-ocr/*.yaml` names any key two instances share.
#
# Generated from edge-ocr.service, of which it is a copy but for the names of its files
# (tests/test_instances.py; `EDGE_OCR_WRITE_UNITS=1 pytest tests/test_instances.py` rewrites it).
# Like it, written for systemd 252; `systemd-analyze verify` passes on an instance of it.
# Change it locally with `systemctl edit edge-ocr@NAME` (one instance) or `systemctl edit edge-ocr@`
# (all of them).
"""

# (text in edge-ocr.service, what the template has instead)
RENAMES = [
    ("Description=edge-ocr licence-plate reader (camera to MQTT)",
     "Description=edge-ocr licence-plate reader %i (camera to MQTT)"),
    ("--config /etc/edge-ocr/config.yaml", "--config /etc/edge-ocr/%i.yaml"),
    ("WorkingDirectory=%S/edge-ocr\n", "WorkingDirectory=%S/edge-ocr-%i\n"
                                       "# journalctl -t edge-ocr-NAME shows one instance's lines\n"
                                       "SyslogIdentifier=edge-ocr-%i\n"),
    ("/var/lib/edge-ocr (really /var/lib/private/edge-ocr)", "/var/lib/edge-ocr-%i (really /var/lib/private/edge-ocr-%i)"),
    ("StateDirectory=edge-ocr\n", "StateDirectory=edge-ocr-%i\n"),
    ("edge-ocr.mqtt_password", "edge-ocr-%i.mqtt_password"),
    ("systemctl restart edge-ocr\n", "systemctl restart edge-ocr@%i\n"),
]


def template_of(single: str) -> str:
    body = single[single.index("\n[Unit]"):]
    for old, new in RENAMES:
        assert old in body, f"{UNIT.name} no longer has {old!r}: update RENAMES in {__file__}"
        body = body.replace(old, new)
    return HEADER + body


# ----------------------------------------------------------------------------- the template unit


def test_template_is_the_single_unit_per_instance() -> None:
    want = template_of(UNIT.read_text(encoding="utf-8"))
    if os.environ.get("EDGE_OCR_WRITE_UNITS") == "1":
        TEMPLATE.write_text(want, encoding="utf-8")
    assert TEMPLATE.read_text(encoding="utf-8") == want, (
        f"{TEMPLATE.name} differs from {UNIT.name} with per-instance names: rewrite it with "
        "EDGE_OCR_WRITE_UNITS=1 pytest tests/test_instances.py")
    service = parse_unit(want)["Service"]
    assert service["StateDirectory"] == ["edge-ocr-%i"] and service["SyslogIdentifier"] == ["edge-ocr-%i"]
    assert service["ExecStart"] == ["/opt/edge-ocr/venv/bin/edge-ocr run --config /etc/edge-ocr/%i.yaml"]
    assert service["LoadCredential"] == ["mqtt_password:edge-ocr-%i.mqtt_password"]


def test_template_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    rc, complaints = verify(text, tmp_path, "edge-ocr@.service", "edge-ocr@entry.service")
    assert rc == 0 and complaints == []
    # the check reads the template: a bad value in it is reported for the instance
    _, complaints = verify(text.replace("WatchdogSec=30", "WatchdogSec=thirty"), tmp_path, "edge-ocr@.service",
                           "edge-ocr@entry.service")
    assert any("WatchdogSec" in c or "sec value" in c for c in complaints), complaints


# ----------------------------------------------------------------------------- install.sh --instance


def test_install_two_instances_then_remove_one(tmp_path: Path) -> None:
    run_install(tmp_path, "--no-pi")  # the single camera first: it keeps its config.yaml and unit
    run_install(tmp_path, "--no-pi", "--instance", "entry")
    proc = run_install(tmp_path, "--no-pi", "--instance", "exit", "--region", "eu")
    assert "shares nothing with" in proc.stdout  # checked against the other configs
    etc, units = tmp_path / "etc", tmp_path / "unit"
    single, entry, exit_ = (load_config(etc / f"{n}.yaml") for n in ("config", "entry", "exit"))
    assert (single.device_id, entry.device_id, exit_.device_id) == ("edge-ocr", "entry", "exit")
    assert entry.camera.name == "entry" and exit_.formats.regions == ["eu"]
    assert entry.outbox.path == f"{tmp_path}/state/edge-ocr-entry/outbox.sqlite"
    assert exit_.outbox.path == f"{tmp_path}/state/edge-ocr-exit/outbox.sqlite"
    assert (single.http.port, entry.http.port, exit_.http.port) == (8080, 8081, 8082)
    assert {p.name for p in units.iterdir()} == {"edge-ocr.service", "edge-ocr@.service"}
    text = (units / "edge-ocr@.service").read_text(encoding="utf-8")
    assert f"ExecStart={tmp_path}/opt/venv/bin/edge-ocr run --config {etc}/%i.yaml\n" in text
    assert main(["check-config", *(str(etc / f"{n}.yaml") for n in ("config", "entry", "exit"))]) == 0

    # one instance goes; its config and outbox stay until --purge; the rest stays
    state = tmp_path / "state" / "edge-ocr-entry"
    state.mkdir(parents=True)
    (state / "outbox.sqlite").write_bytes(b"")
    proc = run_install(tmp_path, "--instance", "entry", "--uninstall")
    assert "kept" in proc.stdout and (etc / "entry.yaml").exists() and state.exists()
    assert (units / "edge-ocr@.service").exists() and (tmp_path / "opt" / "models").exists()
    run_install(tmp_path, "--instance", "entry", "--purge")
    assert not (etc / "entry.yaml").exists() and not state.exists()
    assert (etc / "exit.yaml").exists() and (etc / "config.yaml").exists()

    # everything goes with a plain --purge, the instances' state included
    (tmp_path / "state" / "edge-ocr-exit").mkdir(parents=True)
    run_install(tmp_path, "--purge")
    assert not etc.exists() and not (tmp_path / "state" / "edge-ocr-exit").exists() and not list(units.iterdir())


@pytest.mark.parametrize("name", ["config", "a b", "x/y", ""])
def test_install_refuses_a_bad_instance_name(tmp_path: Path, name: str) -> None:
    proc = run_install(tmp_path, "--no-pi", "--instance", name, ok=False)
    assert "--instance" in proc.stderr
    assert not (tmp_path / "etc").exists()


def test_install_refuses_an_instance_that_clashes(tmp_path: Path) -> None:
    run_install(tmp_path, "--no-pi", "--instance", "entry")
    etc = tmp_path / "etc"
    # a hand-written config that takes entry's device id
    (etc / "exit.yaml").write_text((etc / "entry.yaml").read_text().replace("/edge-ocr-entry/", "/edge-ocr-exit/")
                                   .replace("port: 8081", "port: 8090"))
    proc = run_install(tmp_path, "--no-pi", "--instance", "exit", ok=False)
    assert "device_id: also in" in proc.stderr and "mqtt.client_id: also in" in proc.stderr
    assert "systemctl enable" not in proc.stdout  # nothing enabled for it


# ----------------------------------------------------------------------------- check-config, several files


BASE = {"camera": {"type": "file", "uri": "samples/demo.mp4"}}


@pytest.mark.parametrize(("a", "b", "key"), [
    ({"device_id": "gate"}, {"device_id": "gate", "mqtt": {"client_id": "other"}}, "device_id"),
    ({"device_id": "a", "mqtt": {"client_id": "cam"}}, {"device_id": "b", "mqtt": {"client_id": "cam"}},
     "mqtt.client_id"),
    ({"device_id": "a", "outbox": {"path": "/tmp/x/../o.sqlite"}}, {"device_id": "b", "outbox": {"path": "/tmp/o.sqlite"}},
     "outbox.path"),
    ({"device_id": "a", "http": {"enabled": True, "port": 8081}},
     {"device_id": "b", "http": {"enabled": True, "port": 8081, "host": "0.0.0.0", "token": "t"}}, "http.port"),
    ({"device_id": "a", "camera": {"type": "usb", "uri": "0"}}, {"device_id": "b", "camera": {"type": "usb", "uri": "0"}},
     "camera.uri"),
])
def test_check_config_names_the_key_two_instances_share(tmp_path: Path, capsys, a: dict, b: dict, key: str) -> None:
    paths = []
    for name, doc in (("entry", a), ("exit", b)):
        doc = {**BASE, "outbox": {"path": str(tmp_path / f"{name}.sqlite")}, **doc}
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert main(["check-config", *map(str, paths)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"{paths[1]}: {key}: also in {paths[0]}") for line in err), err
    # the same two on different brokers, or with the shared key changed, are fine
    if key in ("device_id", "mqtt.client_id"):
        other = yaml.safe_load(paths[1].read_text())
        other["mqtt"] = {**other.get("mqtt", {}), "port": 1884}
        paths[1].write_text(yaml.safe_dump(other), encoding="utf-8")
        assert main(["check-config", *map(str, paths)]) == 0


# ----------------------------------------------------------------------------- two instances running


@pytest.fixture
def notify_dir() -> Iterator[Path]:
    # sun_path holds 107 bytes; pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="inst") as d:
        yield Path(d)


def unit_command(unit: Path, instance: str, state_root: Path) -> tuple[list[str], Path, dict[str, str]]:
    """(argv, working directory, environment) of the installed template's instance, with the
    virtualenv's edge-ocr replaced by this checkout's package (the test installs no venv)."""
    service = parse_unit(unit.read_text(encoding="utf-8"))["Service"]
    argv = shlex.split(service["ExecStart"][-1].replace("%i", instance))
    assert argv[0].endswith("/venv/bin/edge-ocr")
    cwd = Path(service["WorkingDirectory"][-1].replace("%S", str(state_root)).replace("%i", instance))
    env = dict(v.split("=", 1) for v in service["Environment"])
    return [sys.executable, "-m", "edge_ocr", *argv[1:]], cwd, env


def test_two_instances_side_by_side_on_one_broker(tmp_path: Path, mosquitto, notify_dir: Path) -> None:
    for name in ("entry", "exit"):
        run_install(tmp_path, "--no-pi", "--instance", name)
        path = tmp_path / "etc" / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["camera"].update(uri=str(ROOT / "samples" / "demo.mp4"), loop=True)
        doc["mqtt"].update(host="127.0.0.1", port=mosquitto.port, stats_interval_s=1)
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")

    got: list[tuple[str, bytes]] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe([("edge-ocr/#", 1), ("homeassistant/#", 1)])
    sub.loop_start()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ready: dict[str, socket.socket] = {}
    try:
        for name in ("entry", "exit"):
            argv, cwd, env = unit_command(tmp_path / "unit" / "edge-ocr@.service", name, tmp_path / "state")
            cwd.mkdir(parents=True)  # systemd makes the StateDirectory=
            assert load_config(tmp_path / "etc" / f"{name}.yaml").outbox.path == str(cwd / "outbox.sqlite")
            ready[name] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            ready[name].bind(str(notify_dir / name))
            ready[name].settimeout(90)
            env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(notify_dir / name)}
            with open(tmp_path / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        for name, s in ready.items():
            assert b"READY=1" in s.recv(4096), name  # the first message is READY=1, after the model and camera

        running = ["entry", "exit"]

        def seen(topic: str) -> list[bytes]:
            return [p for t, p in got if t == topic]

        def wait(pred, what: str, timeout: float = 60) -> None:
            deadline = time.monotonic() + timeout
            while not pred():
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {[t for t, _ in got]}"
                assert all(procs[n].poll() is None for n in running), "an instance exited"
                time.sleep(0.1)

        for name in ("entry", "exit"):
            wait(lambda n=name: seen(f"edge-ocr/{n}/plate"), f"a plate from {name}")
            disc = json.loads(seen(f"homeassistant/device/{name}/config")[-1])
            assert disc["dev"]["ids"] == [f"edge_ocr_{name}"] and disc["dev"]["name"] == f"edge-ocr {name}"
            assert all(c.get("unique_id", f"edge_ocr_{name}").startswith(f"edge_ocr_{name}_") or set(c) == {"p"}
                       for c in disc["cmps"].values())
            assert json.loads(seen(f"edge-ocr/{name}/plate")[0])["device"] == name

        procs["entry"].send_signal(signal.SIGTERM)
        running.remove("entry")
        assert procs["entry"].wait(30) == 0
        stats_before = len(seen("edge-ocr/exit/stats"))
        wait(lambda: len(seen("edge-ocr/exit/stats")) >= stats_before + 2, "exit's stats after entry stopped", 20)
        assert seen("edge-ocr/entry/status")[-1] == b"offline" and seen("edge-ocr/exit/status")[-1] == b"online"
        assert procs["exit"].poll() is None
        assert (tmp_path / "state" / "edge-ocr-entry" / "outbox.sqlite").exists()
        assert (tmp_path / "state" / "edge-ocr-exit" / "outbox.sqlite").exists()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for s in ready.values():
            s.close()
        sub.loop_stop()
        sub.disconnect()
