"""Frame sources: real video files and image folders written here, a fake only for Picamera2."""

from __future__ import annotations

import itertools
import random
import sys
import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from edge_ocr.capture.sources import (
    Backoff,
    FolderSource,
    FrameSource,
    LatestSlot,
    LoresFrame,
    Picamera2Source,
    SourceUnavailable,
    VideoCaptureSource,
)
from edge_ocr.config import CameraConfig
from edge_ocr.stages import open_source
from edge_ocr.types import Frame

from .helpers import camera_source

W, H = 96, 64
STEP = 8  # grey level step between frames, so a frame's mean tells its index


def write_video(path: Path, n: int, fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (W, H))
    assert writer.isOpened(), f"cannot write {fourcc} here"
    for i in range(n):
        writer.write(np.full((H, W, 3), 10 + i * STEP, np.uint8))
    writer.release()
    return path


def index_of(frame: Frame) -> int:
    return round((float(frame.image.mean()) - 10) / STEP)


def wait_for(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def collect(source: FrameSource, limit: int = 1000, timeout: float = 5.0) -> list[Frame]:
    frames = []
    end = time.monotonic() + timeout
    for f in source:
        frames.append(f)
        if len(frames) >= limit or time.monotonic() > end:
            break
    return frames


# ---------------------------------------------------------------------- video files


@pytest.mark.parametrize(("fourcc", "suffix"), [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_file_ends_after_last_frame(tmp_path: Path, fourcc: str, suffix: str) -> None:
    path = write_video(tmp_path / f"v{suffix}", 8, fourcc)
    src = camera_source(VideoCaptureSource, str(path), "file", fps=100)
    with src:
        frames = collect(src)
    st = src.stats()
    assert st.frames == 8
    assert st.state in ("ended", "stopped")
    assert src.ended
    # frames arrive in order, newest-only: indices strictly increase and end at the last one
    idx = [index_of(f) for f in frames]
    assert idx == sorted(set(idx)) and idx[-1] == 7
    assert [f.index for f in frames] == sorted(f.index for f in frames)
    assert frames[0].image.shape == (H, W, 3)
    assert st.taken + st.dropped == st.frames


def test_file_loops(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", 5)
    src = camera_source(VideoCaptureSource, str(path), "file", fps=100, loop=True)
    with src:
        frames = collect(src, limit=14)
        assert src.state == "open"
    idx = [index_of(f) for f in frames]
    assert len(frames) == 14
    assert any(b < a for a, b in itertools.pairwise(idx)), f"never started again: {idx}"
    assert src.stats().frames >= 14 and src.stats().errors == 0


def test_file_is_paced(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", 6)
    src = camera_source(VideoCaptureSource, str(path), "file", fps=20)
    t0 = time.monotonic()
    with src:
        collect(src)
    # 6 frames at 20 fps: at least 5 periods of 50 ms
    assert time.monotonic() - t0 >= 0.24


def test_missing_file_retries_with_backoff_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "later.avi"
    src = camera_source(
        VideoCaptureSource, str(path), "file", fps=100, loop=True, reconnect_min_s=0.02, reconnect_max_s=0.08,
        rng=random.Random(1)
    )
    src.start()
    try:
        assert wait_for(lambda: src.stats().errors >= 4)
        assert src.state == "failed"
        assert src.get(timeout=0.05) is None
        delays = list(src.retry_delays)
        assert all(0.02 <= d <= 0.08 for d in delays)
        assert max(delays) > delays[0]  # it backed off
        assert "no such video file" in (src.stats().last_error or "")
        write_video(path, 4)
        frame = src.get(timeout=3.0)
        assert frame is not None and frame.image.shape == (H, W, 3)
        assert src.state == "open" and src.stats().reconnects == 1
    finally:
        src.stop()
    assert src.state == "stopped"


def test_truncated_file_counts_errors_and_does_not_crash(tmp_path: Path) -> None:
    path = write_video(tmp_path / "cut.avi", 20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    src = camera_source(VideoCaptureSource, str(path), "file", fps=100, reconnect_min_s=0.01, reconnect_max_s=0.02)
    src.start()
    try:
        assert wait_for(lambda: src.stats().errors >= 2)
        assert src._thread is not None and src._thread.is_alive()
        # the file comes back whole: the source recovers and plays it
        write_video(path, 20)
        assert src.get(timeout=3.0) is not None
    finally:
        src.stop()


def test_stop_while_failing_is_prompt(tmp_path: Path) -> None:
    src = camera_source(VideoCaptureSource, str(tmp_path / "nope.mp4"), "file", reconnect_min_s=5,
                        reconnect_max_s=5)
    src.start()
    assert wait_for(lambda: src.stats().errors >= 1)
    t0 = time.monotonic()
    src.stop()
    assert time.monotonic() - t0 < 1.0
    assert list(src) == []


def test_slow_consumer_gets_newest_frame_and_drops_are_counted(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", 30)
    src = camera_source(VideoCaptureSource, str(path), "file", fps=120)
    taken = []
    with src:
        for f in src:
            taken.append(index_of(f))
            time.sleep(0.06)  # a slow recogniser
    st = src.stats()
    assert st.frames == 30
    assert st.dropped > 10
    assert st.taken == len(taken) and st.taken + st.dropped == st.frames
    assert taken[-1] == 29  # the last frame is never lost, only stale ones


def test_latest_slot() -> None:
    slot = LatestSlot()
    for i in range(3):
        slot.put(Frame(float(i), 0.0, np.zeros((1, 1, 3), np.uint8), i))
    got = slot.take(0)
    assert got is not None and got.index == 2
    assert slot.dropped == 2 and slot.taken == 1
    assert slot.take(0.01) is None
    slot.close()
    assert slot.take(None) is None  # closed and empty: no wait


def test_backoff_doubles_with_jitter_within_bounds() -> None:
    b = Backoff(1.0, 10.0, jitter=0.25, rng=random.Random(3))
    delays = [b.next() for _ in range(8)]
    for k, d in enumerate(delays):
        base = min(10.0, 2.0**k)
        assert max(1.0, 0.75 * base) <= d <= base
    assert delays[-1] >= 7.5  # reached the cap
    b.reset()
    assert b.next() == 1.0  # the first delay is the minimum: jitter never goes below it
    with pytest.raises(ValueError, match="camera.reconnect_max_s: must be >= camera.reconnect_min_s"):
        CameraConfig(uri="x.mp4", reconnect_min_s=2.0, reconnect_max_s=1.0)  # the schema's check, the only one


# ---------------------------------------------------------------------- folders


def write_image(path: Path, value: int) -> None:
    assert cv2.imwrite(str(path), np.full((H, W, 3), value, np.uint8))


def test_folder_sorted_corrupt_skipped_and_counted(tmp_path: Path) -> None:
    write_image(tmp_path / "b.png", 10 + 1 * STEP)
    write_image(tmp_path / "a.jpg", 10 + 0 * STEP)
    write_image(tmp_path / "d.png", 10 + 2 * STEP)
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8 this is not a jpeg at all" * 10)
    good = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "bb.jpg").write_bytes(good[: len(good) // 2])  # cut short
    (tmp_path / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # undecodable
    (tmp_path / "notes.txt").write_text("not an image")
    src = camera_source(FolderSource, tmp_path, fps=25)
    with src:
        frames = collect(src)  # the consumer keeps up: nothing is dropped
    st = src.stats()
    assert st.skipped == 3
    assert st.frames == 3 and st.dropped == 0
    assert st.errors == 0 and st.state in ("ended", "stopped")
    assert [index_of(f) for f in frames] == [0, 1, 2]


def test_folder_loops_and_is_paced(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"{i}.png", 10 + i * STEP)
    src = camera_source(FolderSource, tmp_path, fps=50, loop=True)
    t0 = time.monotonic()
    with src:
        frames = collect(src, limit=7)
    assert len(frames) == 7
    assert [index_of(f) for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert time.monotonic() - t0 >= 6 / 50 * 0.9


def test_folder_of_only_corrupt_files_backs_off(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    src = camera_source(FolderSource, tmp_path, fps=100, loop=True, reconnect_min_s=0.02, reconnect_max_s=0.05)
    src.start()
    try:
        assert wait_for(lambda: src.stats().errors >= 2)
        assert src.state == "failed" and src.stats().frames == 0
        # a slow retry, not a spin: each attempt skips the file once
        assert src.stats().skipped <= src.stats().errors + 1
    finally:
        src.stop()


def test_missing_folder_retries(tmp_path: Path) -> None:
    src = camera_source(FolderSource, tmp_path / "none", reconnect_min_s=0.01, reconnect_max_s=0.02)
    src.start()
    try:
        assert wait_for(lambda: src.stats().errors >= 3)
        (tmp_path / "none").mkdir()
        write_image(tmp_path / "none" / "a.png", 100)
        assert src.get(timeout=3.0) is not None
    finally:
        src.stop()


# ---------------------------------------------------------------------- picamera2 (fake)


class FakeRequest:
    def __init__(self, cam: FakePicamera2) -> None:
        self.cam = cam
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        cfg = self.cam.config[name]
        w, h = cfg["size"]
        n = self.cam.captured
        if name == "main":
            assert cfg["format"] == "RGB888"
            arr = np.zeros((h, w, 4 if self.cam.xrgb else 3), np.uint8)
            arr[..., 0] = n  # blue channel carries the frame number
            return arr
        assert cfg["format"] == "YUV420"
        stride = w + 32  # padded rows, as the ISP may deliver
        arr = np.full((h * 3 // 2, stride), 128, np.uint8)
        arr[:h, :w] = 200  # luma
        return arr

    def release(self) -> None:
        self.released = True
        self.cam.released += 1


class FakePicamera2:
    """The few calls the adapter makes, with what they were given."""

    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, fail_start: int = 0, xrgb: bool = False) -> None:
        self.calls: list[str] = []
        self.config: dict = {}
        self.fail_start = fail_start
        self.xrgb = xrgb
        self.captured = 0
        self.released = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main: dict, lores: dict, controls: dict) -> dict:
        self.calls.append("create_video_configuration")
        return {"main": main, "lores": lores, "controls": controls}

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")
        if self.fail_start > 0:
            raise RuntimeError("Camera __init__ sequence did not complete")

    def capture_request(self) -> FakeRequest:
        self.captured += 1
        time.sleep(0.005)  # a camera delivers at its frame rate
        return FakeRequest(self)

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_picamera2_adapter_calls_and_formats() -> None:
    FakePicamera2.instances.clear()
    src = camera_source(Picamera2Source, 320, 240, fps=15, factory=lambda: FakePicamera2(xrgb=True))
    with src:
        frames = collect(src, limit=3)
    cam = FakePicamera2.instances[0]
    assert cam.calls[:3] == ["create_video_configuration", "configure", "start"]
    assert cam.calls[-2:] == ["stop", "close"]
    assert cam.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert cam.config["lores"] == {"size": (240, 180), "format": "YUV420"}
    assert cam.config["controls"] == {"FrameRate": 15.0}
    assert cam.released == cam.captured  # every request went back to the camera
    f = frames[0]
    assert isinstance(f, LoresFrame)
    assert f.image.shape == (240, 320, 3)  # XRGB padding dropped
    assert f.lores is not None and f.lores.shape == (180, 240)
    assert int(f.lores.min()) == 200  # only the Y plane, without the stride padding
    assert [int(fr.image[0, 0, 0]) for fr in frames] == sorted(int(fr.image[0, 0, 0]) for fr in frames)


def test_picamera2_failure_closes_and_retries() -> None:
    attempts = []

    def factory() -> FakePicamera2:
        cam = FakePicamera2(fail_start=1 if len(attempts) < 2 else 0)
        attempts.append(cam)
        return cam

    src = camera_source(Picamera2Source, 64, 48, factory=factory, reconnect_min_s=0.01, reconnect_max_s=0.02)
    with src:
        assert src.get(timeout=3.0) is not None
    assert len(attempts) == 3
    for cam in attempts[:2]:
        assert cam.calls[-2:] == ["stop", "close"]  # a failed start still releases the camera
    assert src.stats().errors == 2 and src.stats().reconnects == 1


def test_picamera2_missing_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail
    with pytest.raises(SourceUnavailable, match="picamera2"):
        camera_source(Picamera2Source)
    with pytest.raises(SourceUnavailable):
        open_source(CameraConfig(type="picamera2"))


def test_open_source_picks_the_configured_kind(tmp_path: Path) -> None:
    assert isinstance(open_source(CameraConfig(type="folder", uri=str(tmp_path))), FolderSource)
    s = open_source(CameraConfig(type="rtsp", uri="rtsp://127.0.0.1:9/x"))
    assert isinstance(s, VideoCaptureSource) and s.kind == "rtsp" and s.pace_fps is None
    s = open_source(CameraConfig(type="file", uri="a.mp4", fps=7, loop=True))
    assert isinstance(s, VideoCaptureSource) and s.pace_fps == 7 and s.loop
    s = open_source(CameraConfig(type="picamera2", width=640, height=480), picamera2_factory=FakePicamera2)
    assert isinstance(s, Picamera2Source) and s.lores_size == (480, 360)
    src = camera_source(Picamera2Source, 641, 481, lores_size=(321, 241), factory=FakePicamera2)
    assert src.lores_size == (320, 240)


def test_refused_stream_keeps_retrying() -> None:
    # nothing listens on port 9 of localhost: connection refused, quickly
    src = camera_source(
        VideoCaptureSource, "http://127.0.0.1:9/stream.mjpg", "rtsp", reconnect_min_s=0.02, reconnect_max_s=0.05,
        timeout_s=1.0
    )
    src.start()
    try:
        assert wait_for(lambda: src.stats().errors >= 2, timeout=8.0)
        assert src.state == "failed"
    finally:
        src.stop()


def test_failures_are_logged_once_per_state_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "v.avi"
    src = camera_source(VideoCaptureSource, str(path), "file", fps=100, loop=True, reconnect_min_s=0.01,
                        reconnect_max_s=0.02)
    with caplog.at_level("INFO", logger="edge_ocr.capture.sources"):
        src.start()
        try:
            assert wait_for(lambda: src.stats().errors >= 5)
            write_video(path, 3)
            assert src.get(timeout=3.0) is not None
        finally:
            src.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("failed" in m for m in lines) == 1, lines  # five failures, one line
    assert sum("recovered" in m for m in lines) == 1
    assert any("stopped" in m for m in lines)


def test_folder_skips_and_counts_oversize_and_corrupt_images(tmp_path: Path) -> None:
    from . import bombs

    write_image(tmp_path / "a.png", 10)
    (tmp_path / "b.jpg").write_bytes(bombs.jpeg_bomb())  # 334 bytes, 12000x12000
    (tmp_path / "c.png").write_bytes(bombs.encoded(".png", 6000))
    (tmp_path / "d.bmp").write_bytes(bombs.bmp_rle8())
    webp = bytearray(bombs.encoded(".webp", 64))
    webp[30:] = b"\x5a" * (len(webp) - 30)
    (tmp_path / "e.webp").write_bytes(bytes(webp))
    write_image(tmp_path / "f.png", 10 + STEP)
    src = camera_source(FolderSource, tmp_path, fps=50)
    with src:
        frames = collect(src)
    assert [index_of(f) for f in frames] == [0, 1]
    assert src.stats().skipped == 4 and src.stats().errors == 0
