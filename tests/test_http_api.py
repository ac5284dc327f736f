"""The HTTP API served by a running daemon (real video source, real model, real sockets)."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_ocr.config import ConfigError, parse_config
from edge_ocr.daemon import run_daemon

from . import bombs, scenes
from .helpers import FRAME, HttpDaemon, start_daemon

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpDaemon]:
    d = start_daemon(tmp_path_factory.mktemp("web"))
    yield d
    d.stop_event.set()
    d.thread.join(timeout=15)
    assert d.result == [0], "the daemon must stop cleanly after every request the tests threw at it"


def call(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def post_json(url: str, doc: object) -> tuple[int, dict]:
    status, _, body = call(url, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    return status, json.loads(body)


def multipart(field: str, filename: str, data: bytes, ctype: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


CROP = scenes.clean_plate("PJC4903", "br", 48)


def test_whole_frame_json_base64_finds_and_reads_the_plate(daemon: HttpDaemon) -> None:
    status, res = post_json(daemon.url + "/api/ocr", {"image": base64.b64encode(jpeg(FRAME)).decode()})
    assert status == 200, res
    assert res["text"] == "RK115AN" and res["mode"] == "frame"
    assert len(res["chars"]) == 7 and all(0.0 <= c["confidence"] <= 1.0 for c in res["chars"])
    assert res["ms"] > 0 and res["image_size"] == [960, 540]
    x, y, w, h = res["plates"][0]["box"]
    # the plate sits on the car's bumper in the lower middle of the frame
    assert 300 < x + w / 2 < 660 and 300 < y + h / 2 < 540 and w < 300


def test_crop_mode_multipart_upload(daemon: HttpDaemon) -> None:
    body, ctype = multipart("image", "plate.png", cv2.imencode(".png", CROP)[1].tobytes(), "image/png")
    status, _, raw = call(daemon.url + "/api/ocr?crop=1", body, {"Content-Type": ctype})
    res = json.loads(raw)
    assert status == 200 and res["mode"] == "crop" and res["text"] == "PJC4903"
    assert res["plates"][0]["box"] == [0, 0, CROP.shape[1], CROP.shape[0]]
    # LLLDDDD is a US, EU and Brazilian layout alike: the crop's 3.1:1 shape says Brazil
    assert res["plates"][0]["region"] == "br"


def test_corrupt_base64_is_a_400_naming_base64(daemon: HttpDaemon) -> None:
    status, res = post_json(daemon.url + "/api/ocr", {"image": "not*base64!!"})
    assert status == 400 and "base64" in res["error"]
    status, res = post_json(daemon.url + "/api/ocr", {"picture": "AAAA"})
    assert status == 400 and '"image"' in res["error"]
    status, _, raw = call(daemon.url + "/api/ocr", b"{broken json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON" in json.loads(raw)["error"]


def test_text_file_and_truncated_jpeg_are_rejected_as_images(daemon: HttpDaemon) -> None:
    body, ctype = multipart("file", "notes.txt", b"just some text, not a picture\n" * 20, "text/plain")
    status, _, raw = call(daemon.url + "/api/ocr", body, {"Content-Type": ctype})
    assert status == 422 and "not a decodable image" in json.loads(raw)["error"]
    whole = jpeg(FRAME)
    status, res = post_json(daemon.url + "/api/ocr", {"image": base64.b64encode(whole[: len(whole) // 2]).decode()})
    assert status == 422 and "truncated JPEG" in res["error"]
    status, _, raw = call(daemon.url + "/api/ocr", b"x" * 10, {"Content-Type": "text/plain"})
    assert status == 415 and "Content-Type" in json.loads(raw)["error"]


@pytest.mark.parametrize("name, data", [
    ("JPEG with a stray byte before its frame header, 12000x12000", bombs.jpeg_bomb()),
    ("RLE8 BMP, 5000x5000", bombs.bmp_rle8()),
    ("PNG, 6000x6000", bombs.encoded(".png", 6000)),
    ("WebP, 5000x5000", bombs.encoded(".webp", 5000)),
    ("TIFF, 5000x5000", bombs.encoded(".tiff", 5000)),
])
def test_small_files_of_huge_images_are_refused_413_before_decoding(daemon: HttpDaemon, name: str, data: bytes) -> None:
    assert len(data) < 2_000_000, name  # all far under http.max_body_mb: only the pixel limit stops them
    status, _, raw = call(daemon.url + "/api/ocr", data, {"Content-Type": "application/octet-stream"})
    assert status == 413 and "too large" in json.loads(raw)["error"], (name, raw)


def test_a_corrupt_webp_is_a_422(daemon: HttpDaemon) -> None:
    webp = bytearray(bombs.encoded(".webp", 64))
    webp[30:] = b"\x5a" * (len(webp) - 30)  # the header survives, the bitstream does not
    status, _, raw = call(daemon.url + "/api/ocr", bytes(webp), {"Content-Type": "image/webp"})
    assert status == 422 and "not a decodable image" in json.loads(raw)["error"]


def test_a_50_mb_body_is_refused_unread_and_the_server_keeps_serving(daemon: HttpDaemon) -> None:
    host, port = daemon.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /api/ocr HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: 52428800\r\n\r\n" + b"\0" * 65536)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"max_body_mb" in body
    status, _, raw = call(daemon.url + "/api/status")
    assert status == 200 and json.loads(raw)["http"]["errors"] >= 1


def test_status_snapshot_and_events_while_the_pipeline_runs(daemon: HttpDaemon) -> None:
    status, _, raw = call(daemon.url + "/api/status")
    first = json.loads(raw)
    assert status == 200 and first["frames"] >= 0 and "uptime_s" in first
    deadline = time.time() + 20
    snap = None
    while time.time() < deadline:
        status, headers, body = call(daemon.url + "/api/snapshot.jpg")
        if status == 200:
            snap = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            break
        time.sleep(0.3)
    assert snap is not None and snap.shape == (360, 640, 3) and headers["Content-Type"] == "image/jpeg"
    deadline = time.time() + 30
    events: list = []
    while time.time() < deadline and not events:  # the looping video brings a car every few seconds
        events = json.loads(call(daemon.url + "/api/events")[2])
        time.sleep(0.5)
    assert events and events[0]["text"] in ("RK115AN", "PJC4903")
    later = json.loads(call(daemon.url + "/api/status")[2])
    assert later["frames"] > first["frames"], "the pipeline kept running"


def test_concurrent_requests_while_the_pipeline_runs(daemon: HttpDaemon) -> None:
    frames_before = json.loads(call(daemon.url + "/api/status")[2])["frames"]
    payload = {"image": base64.b64encode(jpeg(FRAME)).decode()}

    def one(_: int) -> tuple[int, str]:
        # http.max_concurrent_reads (2) reads at a time: the others are told 503 and come back
        for _attempt in range(200):
            status, res = post_json(daemon.url + "/api/ocr", payload)
            if status != 503:
                break
            assert "busy" in res["error"]
            time.sleep(0.05)
        return status, res.get("text", res.get("error"))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [(200, "RK115AN")] * 16
    assert json.loads(call(daemon.url + "/api/status")[2])["frames"] > frames_before


def test_unknown_path_and_wrong_method(daemon: HttpDaemon) -> None:
    assert call(daemon.url + "/api/nothing")[0] == 404
    assert call(daemon.url + "/api/ocr")[0] == 405
    status, headers, body = call(daemon.url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b'id="drop"' in body


def test_token_is_required_when_set(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, f", token: {TOKEN}")
    try:
        status, _, raw = call(d.url + "/api/status")
        assert status == 401 and "token" in json.loads(raw)["error"]
        assert call(d.url + "/api/status", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call(d.url + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        body = json.dumps({"image": base64.b64encode(jpeg(FRAME)).decode()}).encode()
        assert call(d.url + "/api/ocr", body, {"Content-Type": "application/json"})[0] == 401
        # an <img> cannot send headers: the snapshot also takes ?token=
        deadline = time.time() + 20
        while call(d.url + f"/api/snapshot.jpg?token={TOKEN}")[0] != 200 and time.time() < deadline:
            time.sleep(0.3)
        assert call(d.url + f"/api/snapshot.jpg?token={TOKEN}")[0] == 200
        assert call(d.url + "/")[0] == 200  # the page itself holds nothing secret
    finally:
        d.stop_event.set()
        d.thread.join(timeout=15)
    assert d.result == [0]


def test_non_loopback_address_without_token_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("http: {enabled: true, host: 0.0.0.0}")
    assert any("http.token" in p for p in err.value.problems)


def test_port_in_use_refuses_to_start_naming_the_key(tmp_path: Path, caplog) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        cfg = tmp_path / "config.yaml"
        video = tmp_path / "v.avi"
        scenes.render(video, [("RK115AN", "eu")], width=320, height=240, fps=5, seconds_per_car=1)
        cfg.write_text(f"camera: {{type: file, uri: '{video}'}}\nmqtt: {{enabled: false}}\n"
                       f"http: {{enabled: true, port: {port}}}\n")
        assert run_daemon(str(cfg)) == 2
        assert "http.port" in caplog.text
    finally:
        blocker.close()
