"""The frame-source interface: a capture thread, a latest-frame slot, reconnect with back-off.

A concrete source only says how to open, read and close its device (``_open``, ``_read``,
``_close``); ``FrameSource`` runs them in its own thread, keeps only the newest frame for the
consumer (a slow consumer never builds a backlog: overwritten frames are counted as dropped),
and reopens a failing device with exponential back-off and jitter, logging once per change of
state. Nothing here knows of models or MQTT.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from edge_ocr.types import Frame

log = logging.getLogger(__name__)


class SourceError(Exception):
    """A device could not be opened or read; the source retries after a back-off."""


class SourceUnavailable(Exception):
    """A source that can never work here (missing optional dependency): fail at start-up."""


@dataclass(frozen=True)
class SourceStats:
    """Counters of one source since it was created."""

    state: str
    frames: int  # frames captured and put in the slot
    taken: int  # frames handed to the consumer
    dropped: int  # frames overwritten in the slot before being taken
    skipped: int  # unreadable items skipped (e.g. corrupt images in a folder)
    errors: int  # failed opens and reads
    reconnects: int  # successful opens after a failure
    last_error: str | None


class Backoff:
    """Exponential back-off with jitter: ``min_s``, then doubling up to ``max_s``; each delay is
    scaled by a random factor in [1 - jitter, 1] (so many devices do not retry in step) but never
    below ``min_s``. Plain values: ``0 < min_s <= max_s`` is the ``camera`` section's check
    (``config.py``); ``jitter`` is in 0..1."""

    def __init__(self, min_s: float, max_s: float, jitter: float = 0.25, rng: random.Random | None = None) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """The next delay, s."""
        base = min(self.max_s, self.min_s * 2.0 ** min(self._attempt, 60))
        self._attempt += 1
        return max(self.min_s, base * (1.0 - self.jitter * self._rng.random()))

    def reset(self) -> None:
        """Start again from ``min_s`` (after a success)."""
        self._attempt = 0


class LatestSlot:
    """A one-frame mailbox: ``put`` replaces what is there, ``take`` waits for something new."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Frame | None = None
        self._closed = False
        self.dropped = 0
        self.taken = 0

    def put(self, item: Frame) -> bool:
        """Store ``item``; True if it overwrote one that was never taken (counted as dropped)."""
        with self._cond:
            overwrote = self._item is not None
            if overwrote:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return overwrote

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest item not yet taken, waiting up to ``timeout`` s (``None`` = forever);
        ``None`` on timeout, or at once when closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                return None
            item, self._item = self._item, None
            if item is not None:
                self.taken += 1
            return item

    def close(self) -> None:
        """No more items will come; wakes every waiting ``take``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class FrameSource(ABC):
    """A camera, stream, file or folder delivering ``Frame``s from its own thread.

    Use: ``start()``, then ``get()`` (or iterate) for the newest frame, ``stop()`` at the end;
    or ``with source: for frame in source: ...``.

    Args:
        name: the camera's name, in log lines.
        reconnect_min_s, reconnect_max_s: back-off range for reopening a failed device, s.
        pace_fps: deliver at most this many frames per second (files and folders, which could
            otherwise be read as fast as the disk allows); ``None`` = as the device delivers.
        rng: random source for the back-off jitter (tests pass a seeded one).
    """

    kind = "source"

    def __init__(
        self,
        name: str,
        reconnect_min_s: float,
        reconnect_max_s: float,
        pace_fps: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.pace_fps = pace_fps
        self._backoff = Backoff(reconnect_min_s, reconnect_max_s, rng=rng)
        self._slot = LatestSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "new"
        self._frames = 0
        self._skipped = 0
        self._errors = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self.retry_delays: deque[float] = deque(maxlen=64)
        """The most recent back-off delays, s (for tests and diagnostics)."""

    # ------------------------------------------------------------------ for subclasses

    @abstractmethod
    def _open(self) -> None:
        """Open the device. Raise (any exception) if it cannot be opened now."""

    @abstractmethod
    def _read(self) -> Any | None:
        """Block for the next capture and return it (an image, or what ``_frame`` expects);
        ``None`` at the end of a finite source. Raise (any exception) if the device failed."""

    def _close(self) -> None:
        """Release the device; must not raise for a device that is half open."""

    def _frame(self, capture: Any, ts: float, wall: float, index: int) -> Frame:
        """Wrap what ``_read`` returned into a ``Frame``."""
        return Frame(ts, wall, capture, index)

    def _skip(self, what: str, why: str) -> None:
        """Count and log one unreadable item that is passed over (not a device failure)."""
        self._skipped += 1
        log.warning("%s: skipped %s: %s", self.name, what, why)

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Start the capture thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the capture thread and release the device; waits up to ``timeout`` s."""
        self._stop.set()
        self._slot.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: capture thread did not stop within %.1f s", self.name, timeout)

    def get(self, timeout: float | None = 1.0) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout`` s (``None`` = forever).

        Returns ``None`` on timeout, and at once after the source ended or was stopped and its
        last frame was taken.
        """
        return self._slot.take(timeout)

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the source ends or is stopped (waits through reconnects)."""
        while True:
            frame = self._slot.take(0.5)
            if frame is not None:
                yield frame
            elif self._slot.closed:
                return

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> str:
        """new, open, failed, ended or stopped."""
        return self._state

    @property
    def ended(self) -> bool:
        """True once a finite source has delivered its last frame, or after ``stop``."""
        return self._slot.closed

    def stats(self) -> SourceStats:
        """A snapshot of the counters."""
        return SourceStats(
            self._state,
            self._frames,
            self._slot.taken,
            self._slot.dropped,
            self._skipped,
            self._errors,
            self._reconnects,
            self._last_error,
        )

    # ------------------------------------------------------------------ the thread

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self._state:
            return
        previous, self._state = self._state, state
        if state == "failed":
            log.warning(
                "%s: %s %s failed: %s; retrying with back-off",
                self.name,
                self.kind,
                "open" if previous == "new" else "source",
                detail,
            )
        elif state == "open" and previous == "failed":
            log.info("%s: %s recovered", self.name, self.kind)
        elif state == "open":
            log.info("%s: %s opened", self.name, self.kind)
        else:
            log.info("%s: %s %s", self.name, self.kind, state)

    def _fail(self, exc: BaseException) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        try:
            self._close()
        except Exception as close_exc:  # noqa: BLE001 - a broken device may fail to close too
            log.debug("%s: close after failure raised %r", self.name, close_exc)
        self._set_state("failed", str(exc) or type(exc).__name__)
        delay = self._backoff.next()
        self.retry_delays.append(delay)
        log.debug("%s: retry in %.2f s", self.name, delay)
        self._stop.wait(delay)

    def _run(self) -> None:
        opened = False
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                if not opened:
                    try:
                        self._open()
                    except Exception as exc:  # noqa: BLE001 - any device error means "retry later"
                        self._fail(exc)
                        continue
                    opened = True
                    if self._state == "failed":
                        self._reconnects += 1
                    self._set_state("open")
                try:
                    capture = self._read()
                except Exception as exc:  # noqa: BLE001
                    opened = False
                    self._fail(exc)
                    continue
                if capture is None:
                    self._set_state("ended")
                    break
                self._backoff.reset()
                self._slot.put(self._frame(capture, time.monotonic(), time.time(), self._frames))
                self._frames += 1
                if self.pace_fps:
                    # pace from a schedule, so the time a read takes does not lower the rate; a
                    # late frame moves the schedule instead of causing a burst to catch up
                    next_due = max(next_due + 1.0 / self.pace_fps, time.monotonic())
                    self._stop.wait(max(0.0, next_due - time.monotonic()))
        finally:
            try:
                self._close()
            except Exception as exc:  # noqa: BLE001
                log.debug("%s: close raised %r", self.name, exc)
            if self._stop.is_set():
                self._set_state("stopped")
            self._slot.close()


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Drop an alpha/padding channel (XRGB8888 and the like) so frames are HxWx3."""
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return image
