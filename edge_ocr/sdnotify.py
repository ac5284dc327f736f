"""The sd_notify protocol, spoken directly over $NOTIFY_SOCKET (no libsystemd needed).

Does nothing when not started by systemd. The watchdog interval comes from $WATCHDOG_USEC.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self.sock: socket.socket | None = None
        self.addr = addr
        if addr:
            if addr.startswith("@"):  # abstract namespace socket
                addr = "\0" + addr[1:]
            self.addr = addr
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for; another process must not pet it
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and (not pid or pid == str(os.getpid())) else 0.0

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def notify(self, state: str) -> bool:
        """Send one state line (e.g. ``READY=1``). Returns False when not under systemd or on error."""
        if self.sock is None:
            return False
        try:
            self.sock.sendto(state.encode("utf-8"), self.addr)
            return True
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")
