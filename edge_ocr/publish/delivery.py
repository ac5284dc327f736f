"""Delivery engine: messages from the SQLite outbox to an MQTT client, in order, at least once.

Knows no broker library: the client is a ``send(topic, payload, qos, retain)`` function that
returns the message id the client took the message under, or None when it did not take it.
Acknowledgements come back through :meth:`Delivery.ack` with that id. So the whole engine runs
in a test with an outbox file and a list standing in for the broker.

A message is committed to the outbox by :meth:`Delivery.store` on the caller's thread before it
returns: what the caller logs or counts afterwards is on disk, and a SIGKILL right after loses
nothing. It is deleted only after its acknowledgement, so a crash between the broker receiving it
and the outbox forgetting it resends it (subscribers de-duplicate on ``event_id``). While the disk
refuses writes (full, read-only, damaged beyond repair), messages wait in memory, at most
``max_held``, and are committed in order as soon as it takes them; :meth:`store` says False for
them, so the caller does not count them as produced until ``on_stored_late`` reports them.

A message the broker refuses (an MQTT 5 reason code >= 0x80, see :meth:`refused`) is handed over
again, up to ``max_refusals`` times; then, or at once when it is larger than the broker's maximum
packet size, it moves to the outbox's dead-letter table with the reason, so it cannot block the
messages behind it.

Thread use: :meth:`store` and :meth:`reject` from any thread; everything else from one worker.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from .outbox import NewMessage, Outbox, storage_problem

log = logging.getLogger(__name__)

SendFn = Callable[[str, bytes, int, bool], "int | None"]

WINDOW = 100  # outbox messages handed to the client at a time; the rest wait on disk, not in RAM
_STORE_ERROR_EVERY_S = 30.0  # a disk that keeps refusing is reported again this often


def packet_size(topic: str, payload: bytes, qos: int) -> int:
    """Bytes of the PUBLISH packet MQTT 5 sends for this message (no properties): what a broker's
    Maximum Packet Size is compared with."""
    body = 2 + len(topic.encode()) + (2 if qos else 0) + 1 + len(payload)  # topic, packet id, props length
    header = 2 + (body >= 128) + (body >= 16_384) + (body >= 2_097_152)
    return header + body


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
        max_held: most messages waiting in memory while the disk refuses them; the oldest
            beyond it are dropped (never stored, never counted as produced) and counted.
        max_refusals: refusals by the broker before a message is dead-lettered.
        on_stored_late: called (under an internal lock, from whichever thread committed them)
            with messages that waited in memory and are now on disk.
    """

    def __init__(
        self,
        outbox: Outbox,
        send: SendFn,
        *,
        window: int = WINDOW,
        retained_copies: Mapping[str, str] | None = None,
        max_held: int,
        max_refusals: int,
        on_stored_late: Callable[[list[NewMessage]], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self._send = send
        self._window = window
        self._copies = dict(retained_copies or {})
        self._lock = threading.Lock()  # guards _held and _rejected (store/reject run on callers' threads)
        self._held: list[NewMessage] = []  # not yet on disk: the last commit failed
        self._rejected = 0
        self._max_held = max_held
        self._max_refusals = max_refusals
        self._on_stored_late = on_stored_late
        self._disk_error: str | None = None  # the kind of the last refusal: full, read-only, ...
        self._disk_error_logged = float("-inf")
        self.store_failures = 0  # commits the disk refused
        # Worker state: client message id -> (outbox seq, qos, topic), and how far the outbox was read.
        self._inflight: dict[int, tuple[int, int, str]] = {}
        self._inflight_seqs: set[int] = set()
        self._cursor = 0
        self._acks: list[int] = []
        self._acked_seqs: set[int] = set()  # acknowledged, not yet deleted: never handed over again
        self._refusals: dict[int, int] = {}  # outbox seq -> refusals by the broker so far
        self.max_packet: int | None = None  # the broker's Maximum Packet Size (MQTT 5 CONNACK)
        self.published = 0  # handed to the client
        self.acked = 0  # acknowledged and removed from the outbox
        self.refusals = 0  # publishes the broker refused (reason code >= 0x80)

    # ------------------------------------------------------------------ any thread

    def store(self, messages: Sequence[NewMessage]) -> bool:
        """Commit ``messages`` to the outbox (one transaction, one fsync) before returning.

        Returns False when the disk refused them: they then wait in memory, behind any earlier
        ones, for :meth:`flush` to retry (the failure is logged once per distinct error).
        """
        with self._lock:
            # Behind earlier held messages, never ahead of them: delivery order is commit order.
            earlier = len(self._held)
            self._held.extend(messages)
            return self._commit_held(earlier)

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

    @property
    def dead_lettered(self) -> int:
        """Messages moved to the dead-letter table since start (the broker would not take them)."""
        return self.outbox.dead_total

    @property
    def disk_error(self) -> str | None:
        """Why the disk refuses messages now (``full``, ``read-only``, ``damaged``, ``error``), or None."""
        return self._disk_error

    # ------------------------------------------------------------------ worker thread

    def ack(self, mid: int) -> None:
        """The client reports the broker's acknowledgement of message ``mid``; removed at :meth:`flush`."""
        entry = self._inflight.pop(mid, None)
        if entry is not None:
            self._inflight_seqs.discard(entry[0])
            self._acks.append(entry[0])
            self._acked_seqs.add(entry[0])
            self._refusals.pop(entry[0], None)

    def refused(self, mid: int, reason: str) -> None:
        """The broker answered message ``mid`` with a refusing reason code (``reason`` names it).

        The message stays in the outbox and is handed over again on the next pump, after the
        ones behind it; after ``max_refusals`` refusals it is dead-lettered."""
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        seq, _, topic = entry
        self._inflight_seqs.discard(seq)
        self.refusals += 1
        tries = self._refusals.get(seq, 0) + 1
        if tries >= self._max_refusals:
            self._refusals.pop(seq, None)
            self._dead(seq, topic, f"refused by the broker {tries} times: {reason}")
            return
        self._refusals[seq] = tries
        log.error("mqtt: broker refused message %d on %s: %s (refusal %d of %d; it stays queued)",
                  seq, topic, reason, tries, self._max_refusals)
        self._cursor = min(self._cursor, seq - 1)

    def _dead(self, seq: int, topic: str, reason: str) -> None:
        try:
            moved = self.outbox.dead_letter(seq, reason)
        except (sqlite3.Error, OSError):
            self._cursor = min(self._cursor, seq - 1)  # still queued: met again on the next pump
            raise
        if moved:
            log.error("mqtt: message %d on %s moved to the dead-letter table of %s: %s (%d since start)",
                      seq, topic, self.outbox.path, reason, self.outbox.dead_total)

    def link_lost(self) -> None:
        """The connection dropped. Paho drops unsent QoS 0 packets then (QoS 1/2 it keeps and
        resends itself), so those go back to the pending range to be handed over again."""
        lost = [(mid, seq) for mid, (seq, qos, _) in self._inflight.items() if qos == 0]
        for mid, seq in lost:
            del self._inflight[mid]
            self._inflight_seqs.discard(seq)
        if lost:
            self._cursor = min(self._cursor, min(seq for _, seq in lost) - 1)

    def flush(self) -> None:
        """Commit held messages and delete acknowledged ones (each tried even if the other fails).

        Raises:
            OSError: held messages could not be committed.
            sqlite3.Error: acknowledged ones could not be deleted (kept for the next try).
        """
        with self._lock:
            stored = not self._held or self._commit_held(len(self._held))
        if self._acks:
            self.outbox.remove(self._acks)
            self.acked += len(self._acks)
            self._acks = []
            self._acked_seqs.clear()
        if not stored:
            raise OSError(f"outbox {self.outbox.path} not writable: {self._disk_error}")

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
                if row.seq in self._inflight_seqs or row.seq in self._acked_seqs:
                    self._cursor = row.seq
                    continue
                size = packet_size(row.topic, row.payload, row.qos)
                if self.max_packet is not None and size > self.max_packet:
                    self._cursor = row.seq
                    self._dead(row.seq, row.topic, f"{size} bytes, larger than the broker's maximum packet size "
                                                   f"({self.max_packet} bytes)")
                    continue
                mid = self._send(row.topic, row.payload, row.qos, row.retain)
                if mid is None:
                    taken = False  # not taken; the next wake-up tries again from the same place
                    break
                self._inflight[mid] = (row.seq, row.qos, row.topic)
                self._inflight_seqs.add(row.seq)
                self._cursor = row.seq
                self.published += 1
                if row.topic in self._copies:
                    newest[row.topic] = (row.payload, row.qos)
            if not taken:
                break
        for topic, (payload, qos) in newest.items():
            if self.max_packet is None or packet_size(self._copies[topic], payload, qos) <= self.max_packet:
                self._send(self._copies[topic], payload, qos, True)

    # ------------------------------------------------------------------ internals

    def _commit_held(self, earlier: int) -> bool:
        # Called with the lock held. ``earlier``: how many of the held messages waited from before.
        try:
            self.outbox.add_many(self._held)
        except (sqlite3.Error, OSError) as exc:  # a full disk, a locked or read-only file
            self.store_failures += 1
            self._report_store_failure(exc)
            self._trim_held()
            return False
        if self._disk_error is not None:
            log.warning("outbox %s: writable again, %d held message(s) stored", self.outbox.path, len(self._held))
            self._disk_error = None
        late, self._held = self._held[:earlier], []
        if late and self._on_stored_late is not None:
            self._on_stored_late(late)
        return True

    def _report_store_failure(self, exc: BaseException) -> None:
        kind, line = storage_problem(exc, self.outbox.path)
        now = time.monotonic()
        if kind == self._disk_error and now - self._disk_error_logged < _STORE_ERROR_EVERY_S:
            return
        log.error("outbox %s: cannot store, %s; %d message(s) held in memory only (at most %d), not yet "
                  "counted as produced; retrying", self.outbox.path, line, len(self._held), self._max_held)
        self._disk_error, self._disk_error_logged = kind, now

    def _trim_held(self) -> None:
        # While the disk refuses writes, what waits in memory is bounded.
        excess = len(self._held) - self._max_held
        if excess > 0:
            del self._held[:excess]
            self._rejected += excess
            log.error("outbox not writable (%s): dropped %d oldest message(s) held in memory, never stored",
                      self._disk_error, excess)
