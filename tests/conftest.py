"""Shared fixtures."""

from __future__ import annotations

import getpass
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# edge_ocr sets OpenCV's decoder pixel limit, which cv2 reads once when it loads; test modules
# import cv2 before edge_ocr, and conftest is imported before them
import edge_ocr  # noqa: F401
from edge_ocr.publish.publish import MqttPublisher
from edge_ocr.stages import mqtt_publisher

from .helpers import MOSQUITTO, PLATES, Subscriber, free_port
from .scenes import render as render_video

# ----------------------------------------------------------------------------- torch

# The runtime needs no torch; only the training recipe's tests do, and torch is the `train`
# extra's heavy part (a CPU-only wheel is ~190 MB, the default one pulls ~2.8 GB of CUDA). The
# README's command leaves it out, so those tests skip there; CI installs it and sets
# EDGE_OCR_REQUIRE_TORCH=1 so that a missing torch fails instead of skipping quietly.
HAVE_TORCH = importlib.util.find_spec("torch") is not None
NO_TORCH = ("torch is not installed: this test trains, exports or benchmarks the model with tools/ "
            "(pip install -e '.[train]'; a CPU-only torch: see the README's Tests section)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_torch: the test runs tools that import torch (train.py, "
                            "export_onnx.py, qat.py, crnn.py through bench)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_torch") is None or HAVE_TORCH:
        return
    if os.environ.get("EDGE_OCR_REQUIRE_TORCH"):
        pytest.fail(f"EDGE_OCR_REQUIRE_TORCH is set but {NO_TORCH}", pytrace=False)
    pytest.skip(NO_TORCH)


# ----------------------------------------------------------------------------- mosquitto

MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS listener."""

    ca: Path
    cert: Path
    key: Path


class Broker:
    """A real mosquitto on 127.0.0.1 with its own config file, startable and stoppable.

    ``users`` turns anonymous access off and writes a password file with ``mosquitto_passwd``
    (:meth:`set_password` changes one; mosquitto re-reads the file on SIGHUP); ``extra`` appends
    mosquitto.conf lines (an ``acl_file``, ``max_packet_size``); ``persistence`` keeps retained messages and persistent sessions across stop()/start(), which
    lets a test subscriber with ``clean_session=False`` receive what was published while it was
    away.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        persistence: bool = False,
        extra: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_file = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.users = dict(users or {})
        lines = [
            # mosquitto drops root privileges to user "mosquitto", who cannot read pytest's tmp dirs.
            f"user {getpass.getuser()}",
            f"listener {self.port} {self.host}",
            f"log_dest file {self.log_file}",
            "log_type all",
        ]
        if users:
            pw = workdir / "passwd"
            for i, (name, password) in enumerate(users.items()):
                args = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run([MOSQUITTO_PASSWD, *args, str(pw), name, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        lines += list(extra or [])
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 0"]
        else:
            lines.append("persistence false")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout: float = 5.0) -> Broker:
        """Start and wait until the port accepts connections."""
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.proc = None
                raise RuntimeError(f"mosquitto exited at start: {err}{self.log_text()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s: {self.log_text()}")

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file on the way out) and wait."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password in the broker's password file and make mosquitto re-read it
        (SIGHUP); connected clients stay connected, the next connect needs the new password."""
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(self.workdir / "passwd"), name, password], check=True,
                       capture_output=True)
        self.users[name] = password
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing is read or acknowledged."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL: no persistence save, sockets reset (also works on a paused broker)."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Factory: ``make_broker(port=None, users=None, tls=None, persistence=False, start=True)``.

    Every broker it made is stopped after the test.
    """
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    made: list[Broker] = []

    def factory(port: int | None = None, *, start: bool = True, **kwargs: object) -> Broker:
        broker = Broker(tmp_path / f"broker{len(made)}", port, **kwargs)  # type: ignore[arg-type]
        made.append(broker)
        return broker.start() if start else broker

    yield factory
    for broker in made:
        broker.stop()


@pytest.fixture
def mosquitto(make_broker: Callable[..., Broker]) -> Broker:
    """A running anonymous mosquitto on a free port."""
    return make_broker()


@pytest.fixture
def mosquitto_auth(make_broker: Callable[..., Broker]) -> Broker:
    """A running mosquitto that requires a password; ``.users`` holds the one account."""
    if not Path(MOSQUITTO_PASSWD).exists():
        pytest.skip("mosquitto_passwd is not installed")
    return make_broker(users={"edge": "s3cret-pw"})


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost, made by ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    d = tmp_path / "tls"
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # EC keys: instant
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=edge-ocr test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return TlsFiles(ca=d / "ca.crt", cert=d / "server.crt", key=d / "server.key")


# ----------------------------------------------------------------------------- videos

@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "cars.avi"
    render_video(path, PLATES, width=960, height=540, fps=10)
    return path


# ----------------------------------------------------------------------------- MQTT publishers and subscribers

@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def factory(broker: Broker, topics: list[str], **kw: Any) -> Subscriber:
        made.append(Subscriber(broker, topics, **kw))
        return made[-1]

    yield factory
    for s in made:
        s.close()


@pytest.fixture
def publishers() -> Iterator[Callable[..., MqttPublisher]]:
    """Builds publishers and makes sure each is stopped, so no paho thread outlives its test."""
    made: list[MqttPublisher] = []

    def factory(*args: Any, start: bool = True, **kw: Any) -> MqttPublisher:
        pub = mqtt_publisher(*args, **kw)  # the sections as tests/helpers.mqtt_cfg makes them: fast reconnects
        made.append(pub)
        if start:
            pub.start()
        return pub

    yield factory
    for p in made:
        p.stop(0.2)
