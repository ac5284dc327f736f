"""Delivery engine: messages from the SQLite outbox to an MQTT client, in order, at least once.

Knows no broker library: the client is a ``send(topic, payload, qos, retain)`` function that
returns the message id the client took the message under, or None when it did not take it.
Acknowledgements come back through :meth:`Delivery.ack` with that id. So the whole engine runs
in a test with an outbox file and a list standing in for the broker.

A message is committed to the outbox by :meth:`Delivery.store` on the caller's thread before it
returns: what the caller logs or counts afterwards is on disk, and a SIGKILL right after loses
nothing. It is deleted only after its acknowledgement, so a crash between the broker receiving it
and the outbox forgetting it resends it (subscribers de-duplicate on ``event_id``). While the disk
refuses writes, messages wait in memory, as many as the outbox would hold, and are retried in order.

Thread use: :meth:`store` and :meth:`reject` from any thread; everything else from one worker.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence

from .outbox import NewMessage, Outbox

log = logging.getLogger(__name__)

SendFn = Callable[[str, bytes, int, bool], "int | None"]

WINDOW = 100  # outbox messages handed to the client at a time; the rest wait on disk, not in RAM


class Delivery:
    """Moves outbox messages to a client and removes them once acknowledged.

    Args:
        outbox: where messages wait; owned by the caller (closed by whoever made it).
        send: hands one message to the client; returns its message id, or None if not taken.
        window: most messages handed over and not yet acknowledged.
        retained_copies: topic -> topic: after a pump that sent messages on the first topic, the
            newest of them is also sent, retained, on the second (a "last value" topic that a
            subscriber arriving later still gets). Copies are not stored or counted: the next
            message on the first topic brings a fresh one.
    """

    def __init__(
        self,
        outbox: Outbox,
        send: SendFn,
        *,
        window: int = WINDOW,
        retained_copies: Mapping[str, str] | None = None,
    ) -> None:
        self.outbox = outbox
        self._send = send
        self._window = window
        self._copies = dict(retained_copies or {})
        self._lock = threading.Lock()  # guards _held and _rejected (store/reject run on callers' threads)
        self._held: list[NewMessage] = []  # not yet on disk: the last commit failed
        self._rejected = 0
        self._disk_error: str | None = None
        # Worker state: client message id -> (outbox seq, qos), and how far the outbox was read.
        self._inflight: dict[int, tuple[int, int]] = {}
        self._inflight_seqs: set[int] = set()
        self._cursor = 0
        self._acks: list[int] = []
        self.published = 0  # handed to the client
        self.acked = 0  # acknowledged and removed from the outbox

    # ------------------------------------------------------------------ any thread

    def store(self, messages: Sequence[NewMessage]) -> bool:
        """Commit ``messages`` to the outbox (one transaction, one fsync) before returning.

        Returns False when the disk refused them: they then wait in memory, behind any earlier
        ones, for :meth:`flush` to retry (the failure is logged once per distinct error).
        """
        with self._lock:
            # Behind earlier held messages, never ahead of them: delivery order is commit order.
            self._held.extend(messages)
            return self._commit_held()

    def reject(self, n: int) -> None:
        """Count ``n`` messages refused before storing (the publisher was stopping)."""
        with self._lock:
            self._rejected += n

    @property
    def held(self) -> int:
        """Messages waiting in memory for the disk to take them."""
        return len(self._held)

    @property
    def queued(self) -> int:
        """Messages not yet acknowledged: on disk or held in memory."""
        return self.outbox.depth + len(self._held)

    @property
    def inflight(self) -> int:
        """Messages handed to the client and not yet acknowledged."""
        return len(self._inflight)

    @property
    def dropped(self) -> int:
        """Messages lost to the outbox bounds, to a disk that stayed full, or refused while stopping."""
        return self.outbox.dropped_total + self._rejected

    # ------------------------------------------------------------------ worker thread

    def ack(self, mid: int) -> None:
        """The client reports the broker's acknowledgement of message ``mid``; removed at :meth:`flush`."""
        entry = self._inflight.pop(mid, None)
        if entry is not None:
            self._inflight_seqs.discard(entry[0])
            self._acks.append(entry[0])

    def link_lost(self) -> None:
        """The connection dropped. Paho drops unsent QoS 0 packets then (QoS 1/2 it keeps and
        resends itself), so those go back to the pending range to be handed over again."""
        lost = [(mid, seq) for mid, (seq, qos) in self._inflight.items() if qos == 0]
        for mid, seq in lost:
            del self._inflight[mid]
            self._inflight_seqs.discard(seq)
        if lost:
            self._cursor = min(self._cursor, min(seq for _, seq in lost) - 1)

    def flush(self) -> None:
        """Commit held messages and delete acknowledged ones.

        Raises:
            OSError: held messages could not be committed.
            sqlite3.Error: acknowledged ones could not be deleted (kept for the next try).
        """
        with self._lock:
            if self._held and not self._commit_held():
                raise OSError(f"outbox {self.outbox.path} not writable: {self._disk_error}")
        if self._acks:
            self.outbox.remove(self._acks)
            self.acked += len(self._acks)
            self._acks = []

    def pump(self, link_up: Callable[[], bool]) -> None:
        """Hand stored messages to the client, oldest first, keeping at most ``window`` unacknowledged."""
        newest: dict[str, tuple[bytes, int]] = {}
        while link_up():
            room = self._window - len(self._inflight)
            if room <= 0:
                break
            rows = self.outbox.peek(after_seq=self._cursor, limit=room)
            if not rows:
                break
            taken = True
            for row in rows:
                if row.seq in self._inflight_seqs:
                    self._cursor = row.seq
                    continue
                mid = self._send(row.topic, row.payload, row.qos, row.retain)
                if mid is None:
                    taken = False  # not taken; the next wake-up tries again from the same place
                    break
                self._inflight[mid] = (row.seq, row.qos)
                self._inflight_seqs.add(row.seq)
                self._cursor = row.seq
                self.published += 1
                if row.topic in self._copies:
                    newest[row.topic] = (row.payload, row.qos)
            if not taken:
                break
        for topic, (payload, qos) in newest.items():
            self._send(self._copies[topic], payload, qos, True)

    # ------------------------------------------------------------------ internals

    def _commit_held(self) -> bool:
        # Called with the lock held.
        try:
            self.outbox.add_many(self._held)
        except (sqlite3.Error, OSError) as exc:  # a full disk, a locked or read-only file
            if str(exc) != self._disk_error:
                log.error("outbox %s: cannot store (%s); %d message(s) held in memory, retrying",
                          self.outbox.path, exc, len(self._held))
                self._disk_error = str(exc)
            self._trim_held()
            return False
        if self._disk_error is not None:
            log.info("outbox %s: writable again, %d held message(s) stored", self.outbox.path, len(self._held))
            self._disk_error = None
        self._held = []
        return True

    def _trim_held(self) -> None:
        # While the disk refuses writes, what waits in memory is bounded like the file would be.
        excess = len(self._held) - self.outbox.max_events
        if excess > 0:
            del self._held[:excess]
            self._rejected += excess
            log.warning("outbox not writable: dropped %d oldest message(s) held in memory", excess)
