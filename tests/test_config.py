"""Config: the shipped file validates; every class of error names its dotted key."""

from pathlib import Path

import pytest

from edge_ocr.cli import main
from edge_ocr.config import ConfigError, load_config, parse_config
from edge_ocr.stages import broker

ROOT = Path(__file__).resolve().parents[1]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    return exc.value.problems


def test_shipped_config_validates() -> None:
    cfg = load_config(ROOT / "config.yaml")
    assert cfg.mqtt.port == 1883
    assert cfg.recognizer.model.endswith(".onnx")


def test_empty_file_gives_defaults() -> None:
    cfg = parse_config("")
    assert cfg.mqtt.qos == 1 and cfg.voting.min_votes >= 1
    # still images re-read unsure crops; the live pipeline, whose frames vote, does not
    assert cfg.recognizer.retry_below == 0.6 and cfg.recognizer.retry_live is False


@pytest.mark.parametrize(
    "text,expected",
    [
        ("mqtt: {port: 70000}", "mqtt.port: must be 1..65535, got 70000"),
        ("mqtt: {prot: 1883}", "mqtt.prot: unknown key"),
        ("colour: red", "colour: unknown key"),
        ("camera: {fps: fast}", "camera.fps:"),
        ("mqtt: {qos: 3}", "mqtt.qos: must be 0..2, got 3"),
        ("voting: {min_votes: 0}", "voting.min_votes: must be 1..100, got 0"),
        ("recognizer: {decoder: magic}", "recognizer.decoder:"),
        ("camera: {type: rtsp}", "camera.uri: required"),
        ("mqtt: {password: x}", "mqtt.username: required"),
        ("http: {enabled: true, host: 0.0.0.0}", "http.token: required"),
        ("roi: {polygons: [[[0, 0], [2, 0], [1, 1]]]}", "roi.polygons:"),
        ("device_id: 'has space'", "device_id:"),
        ("mqtt: {topic_prefix: 'a/#'}", "mqtt.topic_prefix:"),
        ("recognizer: {retry_below: 1.5}", "recognizer.retry_below: must be 0..1, got 1.5"),
        ("recognizer: {retry_live: maybe}", "recognizer.retry_live:"),
    ],
)
def test_errors_name_the_dotted_key(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(text)), problems(text)


def test_several_problems_are_all_reported() -> None:
    assert len(problems("mqtt: {port: 0, qos: 9}\nvoting: {window_s: -1}")) == 3


def test_yaml_syntax_error_names_the_line() -> None:
    (msg,) = problems("mqtt:\n  port: 1883\n  host: [broken\n")
    assert "YAML syntax error at line" in msg


def test_top_level_must_be_a_mapping() -> None:
    assert "mapping" in problems("- a\n- b\n")[0]


def test_password_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = parse_config(f"mqtt: {{username: u, password_file: {secret}}}")
    login = broker(cfg.mqtt, cfg.device_id)
    assert login.password_file == str(secret) and login.password_now() == "s3cret"
    secret.write_text("changed\n")  # read again at each connection attempt, not kept from the start
    assert login.password_now() == "changed"
    monkeypatch.setenv("EDGE_OCR_MQTT_PASSWORD", "fromenv")
    assert broker(parse_config("mqtt: {username: u}").mqtt, "d").password_now() == "fromenv"


def test_config_is_frozen() -> None:
    cfg = parse_config("")
    with pytest.raises(ValueError, match="frozen"):
        cfg.mqtt.port = 1  # type: ignore[misc]


def test_check_config_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config.yaml")]) == 0
    assert "mqtt:" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  port: 70000\n")
    assert main(["check-config", str(bad)]) == 2
    assert "mqtt.port: must be 1..65535, got 70000" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_check_config_takes_the_config_like_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  port: 70000\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    assert f"{bad}: mqtt.port: must be 1..65535, got 70000" in capsys.readouterr().err
    assert main(["check-config", "-c", str(ROOT / "config.yaml")]) == 0
    assert "mqtt:" in capsys.readouterr().out
    assert main(["check-config", str(ROOT / "config.yaml"), "--config", str(bad)]) == 2  # both are checked
    assert f"{bad}: mqtt.port: must be 1..65535" in capsys.readouterr().err
