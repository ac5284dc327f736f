"""Fuzzing every surface that takes outside input, each with a fixed budget.

Long mode for a person: EDGE_OCR_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py
(MQTT's random broker restarts live in test_publish.py: EDGE_OCR_FUZZ_ROUNDS=200.)
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ocr.capture.image_io import ImageError, decode_image
from edge_ocr.config import Config, ConfigError, HttpConfig, RecognizerConfig, parse_config
from edge_ocr.daemon import LogSink, Pipeline, run_daemon
from edge_ocr.read.recognizer import Recognizer
from edge_ocr.serve.http_api import HttpApi, HttpError, parse_upload
from edge_ocr.stages import Stages, load_recognizer
from edge_ocr.types import Frame

from . import scenes
from .helpers import camera_source

ROOT = Path(__file__).resolve().parents[1]

N = int(os.environ.get("EDGE_OCR_FUZZ_EXAMPLES", "100"))
CFG = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REFERENCE = (ROOT / "config.yaml").read_text()


def parse_within(text: str, seconds: float = 5.0) -> Config | ConfigError:
    """parse_config must answer (a Config or a ConfigError naming problems) and do it quickly."""
    out: list = []

    def run() -> None:
        try:
            out.append(parse_config(text, "fuzz.yaml"))
        except ConfigError as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"parse_config hung on {text[:200]!r}"
    assert out, "parse_config raised something other than ConfigError (see the thread's traceback)"
    if isinstance(out[0], ConfigError):
        assert out[0].problems and all(isinstance(p, str) and p for p in out[0].problems)
        assert all(len(p) < 400 for p in out[0].problems), "error lines stay readable"
    return out[0]


# ----------------------------------------------------------------------------- config.yaml

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["1e999", "-.inf", ".nan", "0x10", "~", "yes", "é漢字"]))
keys = st.one_of(st.sampled_from(["camera", "mqtt", "roi", "voting", "http", "port", "uri", "polygons", "qos",
                                  "enabled", "host", "token", "window_s", "device_id", "recognizer", "model"]),
                 st.text(max_size=12))
docs = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                     st.dictionaries(keys, inner, max_size=6)), max_leaves=30)


@CFG
@given(docs)
def test_random_documents_give_a_config_or_named_problems(doc) -> None:
    parse_within(yaml.safe_dump(doc, allow_unicode=True))


@CFG
@given(st.data())
def test_mutated_reference_config(data) -> None:
    lines = REFERENCE.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["delete", "dup", "replace", "indent", "garbage"]))
        if op == "delete":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = " " * data.draw(st.integers(1, 5)) + lines[i]
        elif op == "garbage":
            lines[i] = data.draw(st.text(max_size=40))
        elif ":" in lines[i] and not lines[i].lstrip().startswith("#"):
            key = lines[i].split(":", 1)[0]
            lines[i] = key + ": " + data.draw(st.sampled_from(["-1", "70000", "[]", "{}", "'x'", "1e400", "null",
                                                                "&a 1", "*a", "!!python/object:os.system x"]))
        if not lines:
            break
    parse_within("\n".join(lines))


def test_yaml_bombs_and_absurd_documents_are_refused_quickly() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for k in range(1, 10):
        bomb += f"{chr(97 + k)}: &{chr(97 + k)} [" + ",".join([f"*{chr(96 + k)}"] * 9) + "]\n"
    err = parse_within(bomb + "camera: {name: *j}\n")
    assert isinstance(err, ConfigError) and "aliases" in err.problems[0]
    deep = "a: " + "[" * 500 + "]" * 500 + "\n"
    err = parse_within(deep)
    assert isinstance(err, ConfigError) and "nesting" in err.problems[0]
    huge = "device_id: x\n" + "# " + "y" * 400_000 + "\n"
    assert isinstance(parse_within(huge), ConfigError)
    err = parse_within("mqtt: {port: " + "9" * 5000 + "}\n")
    assert isinstance(err, ConfigError) and "digits" in err.problems[0]
    err = parse_within("camera: {name: !!python/object/apply:os.system ['true']}\n")
    assert isinstance(err, ConfigError)  # safe_load: no Python objects from a config


# ----------------------------------------------------------------------------- images and frames

GOOD_JPEG = cv2.imencode(".jpg", scenes.clean_plate("RK115AN", "eu", 40))[1].tobytes()
GOOD_PNG = cv2.imencode(".png", scenes.clean_plate("PJC4903", "br", 40))[1].tobytes()


@CFG
@given(st.sampled_from([GOOD_JPEG, GOOD_PNG]), st.data())
def test_corrupted_and_truncated_image_bytes(good: bytes, data) -> None:
    b = bytearray(good)
    op = data.draw(st.sampled_from(["truncate", "flip", "insert", "random"]))
    if op == "truncate":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    elif op == "flip":
        for _ in range(data.draw(st.integers(1, 20))):
            b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    elif op == "insert":
        i = data.draw(st.integers(0, len(b)))
        b[i:i] = data.draw(st.binary(max_size=64))
    else:
        b = bytearray(data.draw(st.binary(max_size=2000)))
    try:
        img = decode_image(bytes(b))
    except ImageError as exc:
        assert str(exc)
        return
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


def test_a_decompression_bomb_header_is_refused_before_decoding() -> None:
    png = bytearray(GOOD_PNG)
    png[16:24] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")  # IHDR claims 60000 x 60000
    png[29:33] = zlib.crc32(png[12:29]).to_bytes(4, "big")  # with a valid CRC, so libpng reads the claim
    with pytest.raises(ImageError, match="too large"):
        decode_image(bytes(png))


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return load_recognizer(RecognizerConfig())


def test_bad_frames_are_skipped_and_counted(recognizer: Recognizer) -> None:
    pipe = Pipeline(Stages.from_config(parse_config("mqtt: {enabled: false}"), recognizer), LogSink())
    good = scenes.still("RK115AN", "eu", 640, 360)
    nan = good.astype(np.float32)
    nan[5, 5, 0] = np.nan
    bad = [np.zeros((0, 10, 3), np.uint8), np.zeros((1, 100000), np.uint8), np.zeros((100000, 1), np.uint8),
           nan, np.zeros((50, 50, 2), np.uint8), np.zeros((50, 50, 3), np.int64), "not an array", None]
    odd_but_fine = [good.astype(np.uint16) * 257, cv2.cvtColor(good, cv2.COLOR_BGR2BGRA),
                    cv2.cvtColor(good, cv2.COLOR_BGR2GRAY), good.astype(np.float32) / 255.0]
    for i, img in enumerate([good, *bad, *odd_but_fine, good]):
        pipe.process(Frame(ts=i * 0.1, wall=time.time(), image=img, index=i))  # type: ignore[arg-type]
    assert pipe.counters["bad_frames"] == len(bad)
    assert pipe.counters["frames"] == 2 + len(odd_but_fine)


def test_resolution_change_mid_stream(recognizer: Recognizer) -> None:
    pipe = Pipeline(Stages.from_config(parse_config("mqtt: {enabled: false}\nvoting: {min_votes: 2, window_s: 1}"),
                                       recognizer), LogSink())
    sizes = [(640, 360)] * 4 + [(960, 540)] * 4 + [(320, 240)] * 4
    events = []
    for i, (w, h) in enumerate(sizes):
        events += pipe.process(Frame(ts=i * 0.1, wall=time.time(), image=scenes.still("RK115AN", "eu", w, h),
                                     index=i))
    events += pipe.flush(100.0)
    assert pipe.counters["frames"] == len(sizes) and pipe.counters["bad_frames"] == 0
    assert [e.text for e in events] == ["RK115AN"]  # one car, one event, whatever the camera did


def test_truncated_video_and_folder_of_mixed_files(tmp_path: Path) -> None:
    video = tmp_path / "cut.avi"
    scenes.render(video, [("RK115AN", "eu")], width=640, height=360, fps=10, seconds_per_car=2)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) * 2 // 3])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"camera: {{type: file, uri: '{video}', fps: 50}}\nmqtt: {{enabled: false}}\n")
    assert run_daemon(str(cfg)) == 0  # reads what is there, then ends cleanly
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (w, h) in enumerate([(640, 360), (800, 600), (320, 240)]):
        cv2.imwrite(str(folder / f"{i:02d}.png"), scenes.still("PJC4903", "br", w, h))
    (folder / "03.png").write_bytes(GOOD_PNG[:100])
    (folder / "04.jpg").write_bytes(b"\xff\xd8 nonsense")
    (folder / "05.txt").write_text("not an image")
    cfg.write_text(f"camera: {{type: folder, uri: '{folder}', fps: 50}}\nmqtt: {{enabled: false}}\n")
    assert run_daemon(str(cfg)) == 0


# ----------------------------------------------------------------------------- HTTP

ctypes = st.sampled_from(["application/json", "multipart/form-data; boundary=xyz", "multipart/form-data",
                          "image/png", "text/plain", "", "application/json; charset=latin-1", "\x00weird"])


@CFG
@given(ctypes, st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode),
                         st.sampled_from([b'{"image": "', b'{"image": 5}', b"[]", b'{"image": "////"}',
                                          b"--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n--xyz--",
                                          b'{"image": "data:image/png;base64,AAAA"}'])))
def test_upload_parser_answers_bytes_or_a_4xx(ctype: str, body: bytes) -> None:
    try:
        out = parse_upload(ctype, body)
    except HttpError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return
    assert isinstance(out, bytes)


def test_slow_client_is_dropped_and_others_are_served_meanwhile() -> None:
    api = HttpApi("127.0.0.1", 0, None, 1 << 20, read=lambda img, crop: {"text": "", "confidence": 0.0, "ms": 0},
                  status=lambda: {"ok": 1}, snapshot=lambda: None, events=list, client_timeout_s=1.0,
                  max_reads=HttpConfig().max_concurrent_reads)
    api.start()
    try:
        slow = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        slow.sendall(b"POST /api/ocr HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc")  # then nothing
        t = time.monotonic()
        fast = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        fast.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert fast.recv(4096).startswith(b"HTTP/1.1 200")
        fast.close()
        reply = slow.recv(4096)  # the server gives up on the stalled body
        assert time.monotonic() - t < 4
        assert reply == b"" or b" 400 " in reply.split(b"\r\n")[0]
        slow.close()
        random_junk = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        random_junk.sendall(bytes(random.Random(3).getrandbits(8) for _ in range(300)) + b"\r\n\r\n")
        reply = random_junk.recv(4096)  # a garbage request line gets an HTTP/0.9-style bare body
        assert reply == b"" or reply.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400", b'{"error": "400'))
        random_junk.close()
        ok = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ok.recv(4096).startswith(b"HTTP/1.1 200")
        ok.close()
    finally:
        api.stop()


def test_a_network_stream_that_stalls_is_reopened() -> None:
    """An MJPEG-over-HTTP camera that stops sending mid-stream (connection left open): the read
    times out, the source reconnects with back-off and frames flow again."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from edge_ocr.capture.sources.opencv import VideoCaptureSource

    jpg = cv2.imencode(".jpg", scenes.still("RK115AN", "eu", 320, 240))[1].tobytes()
    connections: list[int] = []
    done = threading.Event()

    class Camera(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            first = not connections
            connections.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for i in range(10_000):
                if done.is_set():
                    return
                if first and i == 5:
                    done.wait(30)  # stall: keep the connection, send nothing
                    return
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                 + jpg + b"\r\n")
                self.wfile.flush()
                time.sleep(0.05)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    src = camera_source(VideoCaptureSource, f"http://127.0.0.1:{srv.server_address[1]}/video.mjpg", "rtsp",
                        timeout_s=2.0, reconnect_min_s=0.2, reconnect_max_s=0.5)
    src.start()
    got, t = 0, time.monotonic()
    try:
        while time.monotonic() - t < 20 and not (src.stats().reconnects >= 1 and got > 10):
            got += src.get(0.5) is not None
    finally:
        done.set()
        src.stop()
        srv.shutdown()
    s = src.stats()
    assert s.reconnects >= 1 and s.errors >= 1 and "no frame" in (s.last_error or "")
    assert got > 10 and len(connections) >= 2
