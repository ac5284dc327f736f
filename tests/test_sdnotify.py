"""edge_ocr.sdnotify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_ocr.sdnotify import Notifier


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket at a file-system path; yields (socket, NOTIFY_SOCKET value)."""
    # sun_path holds 107 bytes; pytest's tmp_path can be longer, so use a short directory of our own
    with tempfile.TemporaryDirectory(prefix="sdn") as d:
        path = str(Path(d) / "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(2.0)
        yield s, path
        s.close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[socket.socket, str]]:
    name = f"edge-ocr-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2.0)
    yield s, "@" + name
    s.close()


def recv(s: socket.socket) -> str:
    return s.recv(4096).decode("utf-8")


def test_messages_arrive(listener: tuple[socket.socket, str]) -> None:
    s, addr = listener
    n = Notifier({"NOTIFY_SOCKET": addr})
    assert n.enabled
    assert n.ready()
    assert recv(s) == "READY=1"
    assert n.ready("model loaded, camera open")
    assert recv(s) == "READY=1\nSTATUS=model loaded, camera open"
    assert n.status("12 plates, broker up")
    assert recv(s) == "STATUS=12 plates, broker up"
    assert n.watchdog()
    assert recv(s) == "WATCHDOG=1"
    assert n.stopping()
    assert recv(s) == "STOPPING=1"
    n.close()
    assert not n.enabled
    assert n.watchdog() is False


def test_abstract_namespace(abstract_listener: tuple[socket.socket, str]) -> None:
    s, addr = abstract_listener
    n = Notifier({"NOTIFY_SOCKET": addr})
    assert n.ready("up")
    assert recv(s) == "READY=1\nSTATUS=up"
    assert n.watchdog()
    assert recv(s) == "WATCHDOG=1"
    assert n.stopping()
    assert recv(s) == "STOPPING=1"


def test_default_environment(listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    s, addr = listener
    monkeypatch.setenv("NOTIFY_SOCKET", addr)
    assert Notifier().watchdog()
    assert recv(s) == "WATCHDOG=1"


def test_status_cannot_inject_fields(listener: tuple[socket.socket, str]) -> None:
    s, addr = listener
    n = Notifier({"NOTIFY_SOCKET": addr})
    assert n.status("camera gate\nREADY=1")
    assert recv(s) == "STATUS=camera gate READY=1"


def test_reloading_carries_monotonic_time(listener: tuple[socket.socket, str]) -> None:
    s, addr = listener
    n = Notifier({"NOTIFY_SOCKET": addr})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = recv(s).split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"WATCHDOG_USEC": "30000000"}])
def test_not_under_systemd_sends_nothing(env: dict[str, str]) -> None:
    n = Notifier(env)
    assert not n.enabled
    assert n.watchdog_s == 0.0
    for call in (n.ready, n.watchdog, n.stopping, n.reloading):
        assert call() is False
    assert n.status("x") is False
    assert n.notify("READY=1") is False


def test_no_environment_at_all_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and n.ready() is False


def test_unsupported_address_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_ocr.sdnotify"):
        n = Notifier({"NOTIFY_SOCKET": "relative/notify"})
    assert not n.enabled and n.ready() is False
    assert "NOTIFY_SOCKET" in caplog.text


def test_send_failure_returns_false_and_logs_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.enabled
    with caplog.at_level(logging.WARNING, logger="edge_ocr.sdnotify"):
        assert [n.watchdog() for _ in range(5)] == [False] * 5
    assert len([r for r in caplog.records if "sd_notify failed" in r.getMessage()]) == 1


def test_full_queue_does_not_block(listener: tuple[socket.socket, str]) -> None:
    """A receiver that never reads: a send waits at most the timeout, then fails; it recovers."""
    s, addr = listener
    n = Notifier({"NOTIFY_SOCKET": addr}, send_timeout_s=0.2)
    assert n.watchdog()
    for _ in range(100_000):  # fill the queue (net.unix.max_dgram_qlen, 10 or 512)
        t = time.monotonic()
        if not n.watchdog():
            break
    else:
        pytest.fail("the receiver's queue never filled")
    assert 0.15 < time.monotonic() - t < 2.0
    s.setblocking(False)
    while True:  # drain; once there is room the next send works again
        try:
            s.recv(4096)
        except BlockingIOError:
            break
    assert n.watchdog()
    assert s.recv(4096) == b"WATCHDOG=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        (" 15000000\n", "self", 15.0),
        ("30000000", "1", 0.0),  # meant for another process
        ("0", None, 0.0),
        ("", None, 0.0),
        ("abc", None, 0.0),
        ("-5", None, 0.0),
        ("1.5", None, 0.0),
        ("\u00b2", None, 0.0),  # isdigit() is True, int() would raise
    ],
)
def test_watchdog_interval(listener: tuple[socket.socket, str], usec: str, pid: str | None, expected: float) -> None:
    _, addr = listener
    env = {"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": usec}
    if pid is not None:
        env["WATCHDOG_PID"] = str(os.getpid()) if pid == "self" else pid
    assert Notifier(env).watchdog_s == expected
