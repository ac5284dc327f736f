"""A local Mosquitto the benchmarks can stop and start (the tests have their own fixture)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class LocalBroker:
    """Mosquitto on 127.0.0.1:``port``. With ``persistence`` it keeps a persistent subscriber's
    session and queue across stop()/start() (SIGTERM saves them); ``extra`` is appended to its
    config (a bridge)."""

    def __init__(self, workdir: Path, port: int, persistence: bool = False, extra: str = "") -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.conf = workdir / "mosquitto.conf"
        keep = (f"persistence true\npersistence_location {workdir}/\nautosave_interval 0\n" if persistence
                else "persistence false\n")
        self.conf.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                             f"{keep}max_queued_messages 1000000\n{extra}")

    def start(self, timeout: float = 5.0) -> None:
        self.proc = subprocess.Popen([mosquitto_path() or "mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
