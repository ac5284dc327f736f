"""End to end: a video the test writes -> the daemon -> a real Mosquitto -> a subscriber.

The video is fed to the daemon as ``run`` builds it (config, model, MQTT) as fast as it reads, each
frame stamped with the video's own time (``play``): nothing plays in real time except the tests of
the process itself (signals, exit codes).
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge_ocr.cli import main
from edge_ocr.daemon import run_daemon

from . import scenes
from .helpers import PLATES, run_and_collect, subscribe, write_config

ROOT = Path(__file__).resolve().parents[1]





def test_one_event_per_car_reaches_the_subscriber(tmp_path: Path, video: Path, mosquitto) -> None:
    got = run_and_collect(tmp_path, video, mosquitto.port)
    plates = [json.loads(p) for t, p in got if t == "edge-ocr/test-gate/plate"]
    texts = [p["text"] for p in plates]
    for text, _ in PLATES:
        assert texts.count(text) == 1, texts  # voting: one event per car, not one per frame
    # PJC4903 fits US, EU and Brazilian layouts alike; its plate's shape makes it Brazilian
    assert {p["text"]: p["region"] for p in plates} == dict(PLATES)
    ev = next(p for p in plates if p["text"] == "RK115AN")
    assert ev["camera"] == "gate" and ev["confidence"] >= 0.7 and len(ev["char_confidences"]) == 7
    assert ev["model"] == "plate_crnn" and ev["frame_size"] == {"width": 960, "height": 540}
    statuses = [p for t, p in got if t == "edge-ocr/test-gate/status"]
    assert statuses[0] == b"online" and statuses[-1] == b"offline"


def test_sigterm_stops_cleanly_and_publishes_offline(tmp_path: Path, video: Path, mosquitto) -> None:
    cfg = write_config(tmp_path, video, mosquitto.port).read_text().replace("fps: 10}", "fps: 5, loop: true}")
    (tmp_path / "config.yaml").write_text(cfg)
    client, got = subscribe(mosquitto.port)
    proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "-c", str(tmp_path / "config.yaml")],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and (b"online" not in [p for t, p in got if t.endswith("/status")]):
            time.sleep(0.1)
        assert b"online" in [p for t, p in got if t.endswith("/status")]
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        deadline = time.time() + 3
        while time.time() < deadline and [p for t, p in got if t.endswith("/status")][-1] != b"offline":
            time.sleep(0.1)
        assert [p for t, p in got if t.endswith("/status")][-1] == b"offline"
    finally:
        proc.kill()
        client.loop_stop()
        client.disconnect()
    assert "ready:" in proc.stderr.read()


def test_bad_config_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt: {port: 70000}\n")
    assert run_daemon(str(bad)) == 2


def test_missing_model_refuses_to_start(tmp_path: Path, video: Path) -> None:
    cfg = write_config(tmp_path, video, 1883, f"recognizer: {{model: '{tmp_path / 'nope.onnx'}'}}\n")
    assert run_daemon(str(cfg)) == 2


def test_recognize_cli_reads_a_plate_and_reports_a_corrupt_file(tmp_path: Path, capsys) -> None:
    import cv2

    good = tmp_path / "plate.png"
    cv2.imwrite(str(good), scenes.clean_plate("RK115AN", "eu", 40))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["recognize", "--json", str(good), str(bad)]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["file"] == str(good) and lines[0]["text"] == "RK115AN" and lines[0]["confidence"] > 0.7
    assert lines[1]["file"] == str(bad) and "error" in lines[1]
    assert main(["recognize", str(good)]) == 0


def test_video_without_plates_emits_no_event(tmp_path: Path, mosquitto) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "empty.avi"
    bg = scenes.scene(960, 540, np.random.default_rng(3))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (960, 540))
    for i in range(40):  # a plain car body drives through: motion, but no plate
        f = bg.copy()
        x = i * 25 - 300
        cv2.rectangle(f, (x, 250), (x + 400, 460), (40, 90, 160), -1)
        vw.write(f)
    vw.release()
    got = run_and_collect(tmp_path, path, mosquitto.port)
    assert any(t.endswith("/status") and p == b"online" for t, p in got)  # it did run and connect
    assert [p for t, p in got if t == "edge-ocr/test-gate/plate"] == []


def test_sighup_reloads_and_a_bad_new_config_keeps_the_old_one(tmp_path: Path, video: Path) -> None:
    cfg = tmp_path / "config.yaml"
    good = (f"camera: {{name: gate, type: file, uri: '{video}', fps: 10, loop: true}}\n"
            "mqtt: {enabled: false}\nvoting: {window_s: 3}\n")
    cfg.write_text(good)
    log = tmp_path / "daemon.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "--config", str(cfg)], stderr=err,
                                cwd=ROOT)
    try:
        deadline = time.time() + 30
        while "ready:" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
        cfg.write_text(good.replace("window_s: 3", "window_s: -1"))
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "reload rejected" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
        assert "reload rejected, keeping old config" in log.read_text() and "voting.window_s" in log.read_text()
        assert proc.poll() is None, "a bad reload must not stop the daemon"
        cfg.write_text(good.replace("window_s: 3", "window_s: 5"))
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "config reloaded" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
        assert "config reloaded" in log.read_text() and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_sighup_with_a_car_in_view_gives_exactly_one_event(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    import cv2

    cv2.imwrite(str(folder / "parked.png"), scenes.still("RK115AN", "eu", 640, 360))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"log_level: DEBUG\ncamera: {{type: folder, uri: '{folder}', fps: 10, loop: true}}\n"
                   "mqtt: {enabled: false}\nmotion: {enabled: false}\n")
    log = tmp_path / "daemon.log"

    def wait_for(text: str, count: int = 1) -> str:
        deadline = time.time() + 60
        while log.read_text().count(text) < count and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        return log.read_text()

    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "--config", str(cfg)], stderr=err,
                                cwd=ROOT)
    try:
        assert "daemon: event RK115AN" in wait_for("daemon: event RK115AN")
        proc.send_signal(signal.SIGHUP)
        assert "config reloaded" in wait_for("config reloaded")
        # the new voter reads the parked car again: it must know it was published
        text = wait_for("suppressed repeat of RK115AN")
        if "suppressed repeat" not in text:
            text = wait_for("daemon: event RK115AN", 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert text.count("daemon: event RK115AN") == 1, text[-3000:]
