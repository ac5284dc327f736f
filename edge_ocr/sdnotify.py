"""The sd_notify protocol, spoken directly over $NOTIFY_SOCKET (no libsystemd needed).

Does nothing when not started by systemd: every call then returns False. The watchdog interval
comes from $WATCHDOG_USEC (set by ``WatchdogSec=``); ping at least every ``watchdog_s / 2``.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _watchdog_seconds(env: Mapping[str, str]) -> float:
    """$WATCHDOG_USEC as seconds; 0.0 when unset, malformed, zero, or meant for another process."""
    usec = env.get("WATCHDOG_USEC", "").strip()
    pid = env.get("WATCHDOG_PID", "").strip()
    # WATCHDOG_PID names the process the watchdog is meant for; another process must not pet it
    if pid and pid != str(os.getpid()):
        return 0.0
    # str.isdigit() also accepts characters int() rejects ("²"), so parse and catch instead
    if not usec.isascii() or not usec.isdigit():
        return 0.0
    return int(usec) / 1e6


class Notifier:
    """Sends sd_notify state lines to systemd.

    ``env`` defaults to ``os.environ``. ``send_timeout_s`` bounds how long one message may wait
    when the receiver's queue is full, so a busy service manager cannot stall the processing loop.
    """

    def __init__(self, env: Mapping[str, str] | None = None, send_timeout_s: float = 1.0) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.sock: socket.socket | None = None
        self.addr = ""
        self._failing = False
        if addr.startswith("@"):  # abstract namespace socket
            self.addr = "\0" + addr[1:]
        elif addr.startswith("/"):
            self.addr = addr
        elif addr:
            # systemd 252 sends only these two forms; anything else is not ours to interpret
            log.warning("NOTIFY_SOCKET=%r is neither an absolute path nor @abstract; not notifying", addr)
        if self.addr:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _set_send_timeout(self.sock, send_timeout_s)
        self.watchdog_s = _watchdog_seconds(env) if self.sock is not None else 0.0

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def notify(self, state: str) -> bool:
        """Send one message of ``KEY=value`` lines (e.g. ``READY=1``).

        Returns True when sent; False when not under systemd or when sending failed (logged once
        per change from working to failing).
        """
        if self.sock is None:
            return False
        try:
            self.sock.sendto(state.encode("utf-8"), self.addr)
        except OSError as exc:  # BlockingIOError (EAGAIN) when the queue stayed full past the timeout
            if not self._failing:
                log.warning("sd_notify failed: %s", exc)
                self._failing = True
            return False
        if self._failing:
            log.info("sd_notify works again")
            self._failing = False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this to the READY=1 that
        # ends the reload; older versions ignore it.
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _set_send_timeout(sock: socket.socket, seconds: float) -> None:
    """Let a send wait at most ``seconds`` for room in the receiver's queue, then fail with EAGAIN.

    SO_SNDTIMEO on a blocking socket makes the kernel sleep on the receiver's queue. (Python's
    ``settimeout`` would poll() instead, and poll() reports an unconnected datagram socket as
    always writable, so it would spin for the whole timeout.)
    """
    sec = int(seconds)
    usec = int((seconds - sec) * 1e6)
    # struct timeval is two longs, except on 32-bit systems built with a 64-bit time_t
    for fmt in ("@ll", "@qq"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(fmt, sec, usec))
            return
        except OSError:
            continue
    sock.settimeout(seconds)


def _one_line(text: str) -> str:
    # a newline would start another KEY=value assignment (e.g. a camera name ending "\nREADY=1")
    return " ".join(text.splitlines())
