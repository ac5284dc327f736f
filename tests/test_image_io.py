"""The one image decoder (edge_ocr.image_io) and the HTTP read bound, through the real server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import tracemalloc
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_ocr.capture import image_io
from edge_ocr.cli import main
from edge_ocr.config import Config, ConfigError, RecognizerConfig, parse_config
from edge_ocr.serve.http_api import HttpApi
from edge_ocr.stages import Stages, load_recognizer

from . import bombs

ROOT = Path(__file__).resolve().parents[1]


def post(url: str, data: bytes) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def png(w: int, h: int) -> bytes:
    return cv2.imencode(".png", np.full((h, w, 3), 90, np.uint8))[1].tobytes()


def serve(read, max_reads: int = 2) -> HttpApi:
    api = HttpApi("127.0.0.1", 0, None, 8 << 20, read=read, status=dict, snapshot=lambda: None, events=list,
                  max_reads=max_reads)
    api.start()
    return api


def test_the_pixel_limit_is_opencvs_own_and_in_force() -> None:
    assert image_io.LIMIT_IN_FORCE and image_io.MAX_PIXELS == 4096 * 4096
    assert image_io.decode_image(png(4096, 4096)).shape == (4096, 4096, 3)  # the limit itself is allowed
    with pytest.raises(image_io.ImageTooLarge, match="too large"):
        image_io.decode_image(png(4097, 4096))


def test_uploads_beyond_the_bound_get_503_at_once_without_decoding() -> None:
    entered, release = threading.Semaphore(0), threading.Event()

    def slow_read(image: np.ndarray, crop: bool) -> dict:
        entered.release()
        release.wait(30)
        return {"text": "X", "confidence": 1.0, "ms": 1.0, "shape": list(image.shape)}

    api = serve(slow_read, max_reads=2)
    url = f"http://127.0.0.1:{api.port}/api/ocr"
    results: list[tuple[int, dict, dict]] = []
    workers = [threading.Thread(target=lambda: results.append(post(url, png(64, 48)))) for _ in range(2)]
    try:
        for t in workers:
            t.start()
        assert entered.acquire(timeout=30) and entered.acquire(timeout=30)  # both slots held
        # the third is a bomb: a 503 (not 413) shows it was turned away before any decoding
        status, headers, doc = post(url, bombs.jpeg_bomb())
        assert status == 503 and "busy" in doc["error"] and "max_concurrent_reads" in doc["error"]
        assert headers["Retry-After"] == "1"
        release.set()
        for t in workers:
            t.join(30)
        assert [r[0] for r in results] == [200, 200] and results[0][2]["shape"] == [48, 64, 3]
        # slots come back after errors too
        assert post(url, b"not an image")[0] == 422
        assert post(url, bombs.jpeg_bomb())[0] == 413
        assert post(url, png(8, 8))[0] == 200
    finally:
        release.set()
        api.stop()


def test_sixteen_uploads_of_new_sizes_leave_memory_flat() -> None:
    cfg = Config()
    reader = Stages.from_config(cfg, load_recognizer(RecognizerConfig())).still
    api = serve(reader.read)
    url = f"http://127.0.0.1:{api.port}/api/ocr"
    try:
        assert post(url, png(2400, 2400))[0] == 200  # warm up: model buffers, server thread
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(16):  # 5.8 MP each, all different sizes: 92 MB of masks were kept before
            status, _, doc = post(url, png(2400 + i, 2400))
            assert status == 200 and doc["image_size"] == [2400 + i, 2400]
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert grown < 8_000_000, f"{grown:,} bytes kept after 16 uploads"
    finally:
        api.stop()


def test_max_concurrent_reads_is_validated() -> None:
    assert parse_config("http: {max_concurrent_reads: 3}").http.max_concurrent_reads == 3
    with pytest.raises(ConfigError) as err:
        parse_config("http: {max_concurrent_reads: 0}")
    assert any("http.max_concurrent_reads" in p for p in err.value.problems)


def test_recognize_cli_reports_a_bomb_and_reads_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "bomb.jpg").write_bytes(bombs.jpeg_bomb())
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((32, 128, 3), 200, np.uint8))
    assert main(["recognize", "--json", str(tmp_path / "bomb.jpg"), str(tmp_path / "ok.png")]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert "too large" in lines[0]["error"] and "text" in lines[1]


def test_decoding_is_refused_when_cv2_was_loaded_before_edge_ocr() -> None:
    # cv2 loaded first reads no limit (1 gigapixel): image_io says so instead of decoding bombs
    code = ("import cv2, numpy as np\n"
            "from edge_ocr.capture import image_io\n"
            "assert not image_io.LIMIT_IN_FORCE\n"
            "try:\n"
            "    image_io.decode_image(cv2.imencode('.png', np.zeros((4, 4), np.uint8))[1].tobytes())\n"
            "except RuntimeError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "import edge_ocr first" in out.stdout


def test_a_bad_limit_in_the_environment_is_named() -> None:
    out = subprocess.run([sys.executable, "-c", "import edge_ocr"], check=False, capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={"PYTHONPATH": str(ROOT), "OPENCV_IO_MAX_IMAGE_PIXELS": "16M"})
    assert out.returncode != 0 and "OPENCV_IO_MAX_IMAGE_PIXELS='16M'" in out.stderr
