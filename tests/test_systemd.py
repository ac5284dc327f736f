"""The systemd unit (systemd/edge-ocr.service) and the installer (tools/install.sh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_ocr.config import load_config

from .helpers import UNIT, parse_unit, run_install, verify

ROOT = Path(__file__).resolve().parent.parent
EXEC_START = "/opt/edge-ocr/venv/bin/edge-ocr run --config /etc/edge-ocr/config.yaml"


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


def one(service: dict[str, list[str]], key: str) -> str:
    assert key in service, f"{key}= missing from {UNIT.name}"
    return service[key][-1]


# ----------------------------------------------------------------------------- systemd-analyze verify




def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    rc, complaints = verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert rc == 0 and complaints == []


def test_verify_would_catch_directives_this_systemd_lacks(tmp_path: Path) -> None:
    """The check above is not vacuous: a key unknown to this systemd (RestartSteps= is 254+ on 252)
    or a bad value is reported."""
    version = subprocess.run(
        ["systemd-analyze", "--version"], check=False, capture_output=True, text=True
    ).stdout.split()
    text = UNIT.read_text(encoding="utf-8").replace("WatchdogSec=30", "WatchdogSec=thirty")
    if len(version) > 1 and version[1].isdigit() and int(version[1]) < 254:
        text = text.replace("#   RestartSteps=6", "RestartSteps=6")
    _, complaints = verify(text, tmp_path)
    assert any("WatchdogSec" in c or "sec value" in c for c in complaints), complaints


# ----------------------------------------------------------------------------- directives


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        ("RestartSec", "5"),
        ("TimeoutStopSec", "15"),
        ("ExecStart", EXEC_START),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "edge-ocr"),
        ("ConfigurationDirectory", "edge-ocr"),
        ("SupplementaryGroups", "video"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("DevicePolicy", "closed"),
    ],
)
def test_unit_directive(service: dict[str, list[str]], key: str, value: str) -> None:
    assert one(service, key) == value


def test_address_families(service: dict[str, list[str]]) -> None:
    assert set(one(service, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}


def test_environment(service: dict[str, list[str]]) -> None:
    assert "PYTHONUNBUFFERED=1" in service["Environment"]


def test_camera_devices_reachable(service: dict[str, list[str]]) -> None:
    # PrivateDevices=yes would hide /dev/video*, /dev/media* and /dev/dma_heap/* from picamera2/V4L2
    assert service.get("PrivateDevices", ["no"])[-1] in ("no", "false")
    allowed = {v.split()[0] for v in service["DeviceAllow"]}
    assert {"char-video4linux", "char-media", "char-dma_heap", "/dev/vchiq"} <= allowed


def test_nothing_systemd_252_rejects(service: dict[str, list[str]]) -> None:
    # Debian 12 / Raspberry Pi OS bookworm ship systemd 252; these came in 254
    for key in ("RestartSteps", "RestartMaxDelaySec", "ImportCredential"):
        assert key not in service


def test_credential_is_optional_and_matches_config(service: dict[str, list[str]]) -> None:
    # An absolute source path makes the start fail (243/CREDENTIALS) while the file is absent; a
    # bare credential name is looked up in /etc/credstore and friends and skipped when missing.
    name, _, source = one(service, "LoadCredential").partition(":")
    assert name == "mqtt_password"  # what publish.mqtt_client.Broker.password_now reads
    assert source and not source.startswith("/")


def test_outbox_lives_in_the_state_directory(service: dict[str, list[str]]) -> None:
    cfg = load_config(ROOT / "config.yaml")
    assert cfg.outbox.path == f"/var/lib/{one(service, 'StateDirectory')}/outbox.sqlite"


def test_installed_at_boot() -> None:
    assert parse_unit(UNIT.read_text(encoding="utf-8"))["Install"]["WantedBy"] == ["multi-user.target"]


# ----------------------------------------------------------------------------- tools/install.sh




def test_install_upgrade_uninstall_purge(tmp_path: Path) -> None:
    models = tmp_path / "opt" / "models"
    config = tmp_path / "etc" / "config.yaml"
    unit = tmp_path / "unit" / "edge-ocr.service"

    run_install(tmp_path, "--no-pi")
    # the unit points at this prefix and config, and is otherwise the shipped one
    text = unit.read_text(encoding="utf-8")
    assert f"ExecStart={tmp_path}/opt/venv/bin/edge-ocr run --config {config}\n" in text
    assert text.replace(f"{tmp_path}/opt", "/opt/edge-ocr").replace(
        str(config), "/etc/edge-ocr/config.yaml"
    ) == UNIT.read_text(encoding="utf-8")
    assert sorted(p.name for p in models.glob("*.onnx")) == sorted(p.name for p in (ROOT / "models").glob("*.onnx"))
    # the config is valid and names the installed model by absolute path
    cfg = load_config(config)
    assert cfg.recognizer.model == f"{models}/plate_crnn_int8.onnx"
    assert cfg.camera.type == "file"
    assert config.stat().st_mode & 0o777 == 0o644

    # a user's config survives a reinstall, byte for byte
    mine = config.read_text(encoding="utf-8").replace("device_id: edge-ocr", "device_id: gate-north")
    config.write_text(mine, encoding="utf-8")
    proc = run_install(tmp_path, "--no-pi")
    assert config.read_text(encoding="utf-8") == mine
    assert "keeping existing" in proc.stdout

    # --uninstall: program files go, config, state and the user's own drop-ins stay
    state = tmp_path / "state" / "edge-ocr"
    state.mkdir(parents=True)
    (state / "outbox.sqlite").write_bytes(b"")
    override = tmp_path / "unit" / "edge-ocr.service.d" / "override.conf"
    override.parent.mkdir()
    override.write_text("[Service]\nEnvironment=X=1\n")
    run_install(tmp_path, "--uninstall")
    assert not unit.exists() and not (tmp_path / "opt").exists()
    assert config.read_text(encoding="utf-8") == mine
    assert (state / "outbox.sqlite").exists() and override.exists()

    # --purge: everything; running it again is fine
    run_install(tmp_path, "--purge")
    assert not (tmp_path / "etc").exists() and not state.exists() and not override.parent.exists()
    run_install(tmp_path, "--purge")


def test_install_sets_the_users_region(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "config.yaml"
    proc = run_install(tmp_path, "--no-pi")
    assert load_config(config).formats.regions == ["us", "eu", "br", "cn"]
    assert "--region" in proc.stderr  # told how to set the country
    shipped = config.read_text(encoding="utf-8")
    config.unlink()

    run_install(tmp_path, "--no-pi", "--region", "BR")
    assert load_config(config).formats.regions == ["br"]
    # only that line differs from the shipped config: the comments stay
    diff = [(a, b) for a, b in zip(shipped.splitlines(), config.read_text(encoding="utf-8").splitlines(), strict=True)
            if a != b]
    assert diff == [("  regions: [us, eu, br, cn]", "  regions: [br]")]

    # an existing config: --region changes that key and nothing else; without it nothing changes
    mine = config.read_text(encoding="utf-8").replace("device_id: edge-ocr", "device_id: gate-north")
    config.write_text(mine, encoding="utf-8")
    run_install(tmp_path, "--no-pi", "--region", "eu,us", "--region", "eu")
    assert load_config(config).formats.regions == ["eu", "us"] and load_config(config).device_id == "gate-north"
    run_install(tmp_path, "--no-pi")
    assert load_config(config).formats.regions == ["eu", "us"]

    # a block list and a config without the key
    config.write_text("formats:\n  enabled: true\n  regions:\n    - us\n    - eu\n  extra:\n    - LLDDLLL\n")
    run_install(tmp_path, "--no-pi", "--region", "cn")
    cfg = load_config(config)
    assert cfg.formats.regions == ["cn"] and cfg.formats.extra == ["LLDDLLL"]
    config.write_text("device_id: x\n")
    run_install(tmp_path, "--no-pi", "--region", "us")
    assert load_config(config).formats.regions == ["us"]


def test_install_refuses_an_unknown_region(tmp_path: Path) -> None:
    proc = run_install(tmp_path, "--no-pi", "--region", "de", ok=False)
    assert "--region" in proc.stderr and "'de'" in proc.stderr
    assert not (tmp_path / "etc" / "config.yaml").exists()


def test_install_on_a_pi_uses_the_camera_module(tmp_path: Path) -> None:
    # check-config asks for the picamera2 package a Pi config needs (apt installs it on a real Pi;
    # --no-apt here): an empty stand-in on the path
    fake = tmp_path / "site"
    (fake / "picamera2").mkdir(parents=True)
    (fake / "picamera2" / "__init__.py").write_text("")
    python = tmp_path / "python-with-picamera2"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="$PYTHONPATH:{fake}" exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    run_install(tmp_path, "--pi", extra_env={"PYTHON": str(python)})
    cfg = load_config(tmp_path / "etc" / "config.yaml")
    assert cfg.camera.type == "picamera2" and cfg.camera.uri == ""
    assert cfg.recognizer.model == f"{tmp_path}/opt/models/plate_crnn_int8.onnx"


def test_install_refuses_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("mqtt:\n  port: 70000\n")
    proc = run_install(tmp_path, "--no-pi", ok=False)
    assert "mqtt.port" in proc.stderr and "has errors" in proc.stderr
    assert config.read_text() == "mqtt:\n  port: 70000\n"
    assert not (tmp_path / "unit" / "edge-ocr.service").exists()  # nothing enabled on a bad config
