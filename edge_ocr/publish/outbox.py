"""SQLite outbox: every message is on disk before it is published and leaves only when acknowledged.

The table is an append-only queue keyed by an AUTOINCREMENT sequence number, so the order of
insertion is the order of delivery, across restarts, and a sequence number is never reused (the
publisher remembers how far it has read; a reused number could be skipped). The file is in WAL
mode with ``synchronous=FULL`` so that a power cut loses nothing that was committed; the caller
is expected to write from a worker thread, since that costs an fsync per commit.

The outbox is bounded: beyond ``max_events`` the oldest messages are dropped, and messages older
than ``max_age_h`` are dropped by :meth:`Outbox.prune`. Drops are counted and logged.

Knows nothing of MQTT client libraries or OCR.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Self

from ..config import OutboxConfig

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL    NOT NULL,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created);
"""

# A full outbox drops on every insert; one summary line per interval keeps the log readable.
_DROP_LOG_INTERVAL_S = 60.0


class NewMessage(NamedTuple):
    """A message to store: what the publisher will send."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True)
class StoredMessage:
    """A message read back from the outbox. ``created`` is the Unix time it was stored."""

    seq: int
    created: float
    topic: str
    payload: bytes = field(repr=False)
    qos: int
    retain: bool


class Outbox:
    """A bounded, durable FIFO of MQTT messages in one SQLite file.

    Thread-safe: every method takes an internal lock, so the publisher's worker thread can write
    while other threads read :attr:`depth` or :meth:`dropped`.

    Args:
        path: SQLite file; its directory is created if missing.
        max_events: most messages kept; the oldest are dropped beyond it.
        max_age_h: messages older than this (hours) are dropped by :meth:`prune`.
        clock: Unix time source, replaceable in tests.

    Raises:
        OSError: the directory cannot be created.
        sqlite3.Error: the file cannot be opened (a corrupt file is moved aside instead).
    """

    def __init__(
        self,
        path: str | Path,
        max_events: int,
        max_age_h: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if max_age_h <= 0:
            raise ValueError(f"max_age_h must be > 0, got {max_age_h}")
        self.path = Path(path)
        self.max_events = max_events
        self.max_age_s = max_age_h * 3600.0
        self._clock = clock
        self._lock = threading.Lock()
        self._dropped = {"max_events": 0, "max_age": 0}
        self._unlogged = {"max_events": 0, "max_age": 0}
        self._last_drop_log = float("-inf")
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        if self._depth:
            log.info("outbox %s holds %d message(s) from before", self.path, self._depth)
        self.prune()

    @classmethod
    def from_config(cls, cfg: OutboxConfig) -> Outbox:
        """An outbox with the path and bounds from the ``outbox`` config section."""
        return cls(cfg.path, cfg.max_events, cfg.max_age_h)

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), so a batch
        # of inserts costs one fsync and nothing is left half-committed by the sqlite3 module.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("outbox %s: WAL mode unavailable on this filesystem, using %s", self.path, mode)
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked, read-only, missing directory: not the file's fault, keep it
            # A torn or foreign file must not stop the daemon from publishing new readings.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._clock())}")
            log.error("outbox %s is unreadable (%s); moved aside to %s, starting empty", self.path, exc, aside)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.rename(aside.with_name(aside.name + suffix))
            return self._connect()

    # ------------------------------------------------------------------ writing

    def add(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store one message; returns its sequence number."""
        return self.add_many([NewMessage(topic, payload, qos, retain)])[0]

    def add_many(self, messages: Sequence[NewMessage]) -> list[int]:
        """Store messages in one transaction (one fsync), in order; returns their sequence numbers.

        If the outbox then holds more than ``max_events``, the oldest are dropped and counted.
        """
        if not messages:
            return []
        now = self._clock()
        with self._lock:
            seqs: list[int] = []
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for topic, payload, qos, retain in messages:
                    cur = self._db.execute(
                        "INSERT INTO outbox (created, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)",
                        (now, topic, sqlite3.Binary(payload), int(qos), int(bool(retain))),
                    )
                    seqs.append(int(cur.lastrowid or 0))
                excess = self._depth + len(messages) - self.max_events
                dropped = 0
                if excess > 0:
                    dropped = self._db.execute(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                        (excess,),
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += len(messages) - dropped
            if dropped:
                self._note_drop("max_events", dropped)
            return seqs

    def remove(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged messages; returns how many were still there."""
        ids = [(int(s),) for s in seqs]
        if not ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # executemany's rowcount is the sum over all statements.
                removed = self._db.executemany("DELETE FROM outbox WHERE seq = ?", ids).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= max(removed, 0)
            return max(removed, 0)

    def prune(self) -> int:
        """Drop messages older than ``max_age_h``; returns how many were dropped.

        Call it periodically: it also logs the summary of earlier drops once it is due.
        """
        cutoff = self._clock() - self.max_age_s
        with self._lock:
            dropped = max(self._db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,)).rowcount, 0)
            self._depth -= dropped
            if dropped:
                self._note_drop("max_age", dropped)
            else:
                self._log_drops()
            return dropped

    # ------------------------------------------------------------------ reading

    def peek(self, after_seq: int = 0, limit: int = 100) -> list[StoredMessage]:
        """Up to ``limit`` messages with a sequence number above ``after_seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, created, topic, payload, qos, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after_seq), int(limit)),
            ).fetchall()
        return [StoredMessage(int(r[0]), float(r[1]), str(r[2]), bytes(r[3]), int(r[4]), bool(r[5])) for r in rows]

    @property
    def depth(self) -> int:
        """Messages waiting for an acknowledgement (kept in memory; no query)."""
        return self._depth

    def __len__(self) -> int:
        return self._depth

    def dropped(self) -> dict[str, int]:
        """Messages dropped since this object was created, by reason: ``max_events``, ``max_age``."""
        with self._lock:
            return dict(self._dropped)

    @property
    def dropped_total(self) -> int:
        """All messages dropped since this object was created."""
        return sum(self._dropped.values())

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._log_drops(force=True)
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("outbox %s: checkpoint on close failed: %s", self.path, exc)
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ drop accounting

    def _note_drop(self, reason: str, n: int) -> None:
        self._dropped[reason] += n
        self._unlogged[reason] += n
        self._log_drops()

    def _log_drops(self, force: bool = False) -> None:
        # Called with the lock held. At most one summary per interval unless forced.
        if not any(self._unlogged.values()):
            return
        now = time.monotonic()
        if not force and now - self._last_drop_log < _DROP_LOG_INTERVAL_S:
            return
        self._last_drop_log = now
        if self._unlogged["max_events"]:
            log.warning(
                "outbox full (max_events=%d): dropped %d oldest message(s), %d since start",
                self.max_events,
                self._unlogged["max_events"],
                self._dropped["max_events"],
            )
        if self._unlogged["max_age"]:
            log.warning(
                "outbox: dropped %d message(s) older than %.1f h, %d since start",
                self._unlogged["max_age"],
                self.max_age_s / 3600.0,
                self._dropped["max_age"],
            )
        self._unlogged = {"max_events": 0, "max_age": 0}
