"""SQLite outbox: every message is on disk before it is published and leaves only when acknowledged.

The table is an append-only queue keyed by an AUTOINCREMENT sequence number, so the order of
insertion is the order of delivery, across restarts, and a sequence number is never reused (the
publisher remembers how far it has read; a reused number could be skipped). The file is in WAL
mode with ``synchronous=FULL`` so that a power cut loses nothing that was committed; the caller
is expected to write from a worker thread, since that costs an fsync per commit.

The outbox is bounded: beyond ``max_events`` the oldest messages are dropped, and messages older
than ``max_age_h`` are dropped by :meth:`Outbox.prune`. Drops are counted and logged.

A damaged file (a torn page, a truncated or foreign file) is found by ``PRAGMA quick_check`` when
opening and by the error of any later statement: it is moved aside, every queued row that can
still be read is copied into a fresh file under its old sequence number, and work goes on. A
message the broker can never take is moved to the ``dead_letter`` table, kept for a person.

Knows nothing of MQTT client libraries or OCR.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Self, TypeVar

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
CREATE TABLE IF NOT EXISTS dead_letter (
    seq     INTEGER PRIMARY KEY,
    created REAL    NOT NULL,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL,
    reason  TEXT    NOT NULL,
    failed  REAL    NOT NULL
);
"""
_COLUMNS = "seq, created, topic, payload, qos, retain"

# SQLite's primary result codes (the low byte of sqlite_errorcode).
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 8, 10, 11, 13, 14, 26
# Below this much free space SQLite's next journal or WAL write fails: call it full.
_FULL_BELOW_BYTES = 64 * 1024
# Salvaging a file whose index is unreadable looks rows up one by one; this bounds the search.
_SALVAGE_SPAN = 4

# A full outbox drops on every insert; one summary line per interval keeps the log readable.
_DROP_LOG_INTERVAL_S = 60.0


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_damage(exc: BaseException) -> bool:
    """True when ``exc`` says the file itself is damaged (not full, locked or read-only)."""
    if _sqlite_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc)
    return isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text)


def storage_problem(exc: BaseException, path: str | Path) -> tuple[str, str]:
    """Why writing to ``path`` failed, as (kind, one line): kind is ``full``, ``read-only``,
    ``damaged`` or ``error``. SQLite says "disk I/O error" for many of these (a full disk while
    it creates the WAL), so the file system is asked too."""
    code, err = _sqlite_code(exc), getattr(exc, "errno", None)
    where = Path(path).parent
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        st = os.statvfs(where)
        fs_readonly, free = bool(st.f_flag & os.ST_RDONLY), st.f_bavail * st.f_frsize
    except OSError:
        fs_readonly, free = False, _FULL_BELOW_BYTES
    if is_damage(exc):
        return "damaged", f"file damaged: {exc}"
    if code == _SQLITE_FULL or err == errno.ENOSPC or (free < _FULL_BELOW_BYTES and not fs_readonly):
        return "full", f"disk full ({free // 1024} KiB free on {where}): {exc}"
    if fs_readonly or code == _SQLITE_READONLY or err in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "read-only", f"read-only ({'file system ' if fs_readonly else ''}{where}): {exc}"
    return "error", str(exc)


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


@dataclass(frozen=True)
class OutboxSettings:
    """The outbox's file and bounds (``stages.outbox_settings`` makes it from the ``outbox`` section)."""

    path: str
    max_events: int  # oldest dropped beyond this
    max_age_h: float  # older dropped by prune()
    max_held: int  # messages kept in memory while the disk refuses them (see delivery.Delivery)


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
        sqlite3.Error: the file cannot be opened (a damaged file is moved aside instead; see
            :func:`storage_problem` for why).
    """

    def __init__(
        self,
        path: str | Path,
        max_events: int,
        max_age_h: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_age_s = max_age_h * 3600.0
        self._clock = clock
        self._lock = threading.Lock()
        self._dropped = {"max_events": 0, "max_age": 0}
        self._unlogged = {"max_events": 0, "max_age": 0}
        self._last_drop_log = float("-inf")
        self._closed = False
        self._dead = 0
        self.salvaged = 0  # rows copied out of damaged files since this object was created
        self.unreadable = 0  # rows of damaged files that could not be read back (lost)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._aside: Path | None = None  # a damaged file moved aside and not yet salvaged
        self._db = self._open()
        self._depth = 0  # _guarded may set it while counting
        self._depth = self._guarded(self._count_now)
        if self._depth:
            log.info("outbox %s holds %d message(s) from before", self.path, self._depth)
        self.prune()

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
            db = self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise  # locked, read-only, full, missing directory: not the file's fault, keep it
            return self._replace_damaged(str(exc))
        try:
            verdict = [str(r[0]) for r in db.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                db.close()
                raise
            verdict = [str(exc)]
        if verdict == ["ok"]:
            return db
        db.close()
        return self._replace_damaged("; ".join(verdict))

    def _replace_damaged(self, problem: str) -> sqlite3.Connection:
        """Move the damaged file aside, copy what it still holds into a fresh one, return that."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{int(self._clock())}")
        n = 1
        while aside.exists():  # a second damage within the second must not overwrite the first
            aside, n = aside.with_name(f"{self.path.name}.damaged-{int(self._clock())}-{n}"), n + 1
        for suffix in ("", "-wal", "-shm"):  # the WAL holds committed rows too: it goes along
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(aside.with_name(aside.name + suffix))
        self._aside = aside
        log.error("outbox %s is damaged (%s); moved aside to %s", self.path, problem, aside)
        return self._restore()

    def _restore(self) -> sqlite3.Connection:
        """A fresh outbox holding every row still readable in the file moved aside. If this fails
        (the disk is full now), the next operation tries again: the rows wait in the aside file."""
        assert self._aside is not None
        rows, unreadable, top = _salvage(self._aside, self.max_events * _SALVAGE_SPAN)
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
            # New sequence numbers continue above the old ones: the publisher's cursor stays valid.
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (top,))
            db.execute("COMMIT")
        except sqlite3.Error:
            db.close()
            raise
        self.salvaged += len(rows)
        self.unreadable += unreadable
        log.error("outbox %s: salvaged %d queued message(s) from %s, %d unreadable (lost)",
                  self.path, len(rows), self._aside, unreadable)
        self._aside = None
        return db

    def _guarded(self, op: Callable[[], _T]) -> _T:
        """Run ``op`` (lock held); if it finds the file damaged, replace the file and run it again."""
        if self._aside is not None:  # an earlier replacement could not finish
            self._db = self._restore()
            self._depth = self._count_now()
        try:
            return op()
        except sqlite3.DatabaseError as exc:
            self._rollback()
            if not is_damage(exc):
                raise
            self._db.close()
            self._db = self._replace_damaged(str(exc))
            self._depth = self._count_now()
            return op()

    def _count_now(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def _rollback(self) -> None:
        # SQLite has already rolled back after some errors (a full disk): a second ROLLBACK would
        # raise "no transaction is active" and hide the real error.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.debug("outbox %s: rollback failed: %s", self.path, exc)

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
            seqs, dropped = self._guarded(lambda: self._insert(messages, now))
            self._depth += len(messages) - dropped
            if dropped:
                self._note_drop("max_events", dropped)
            return seqs

    def _insert(self, messages: Sequence[NewMessage], now: float) -> tuple[list[int], int]:
        seqs: list[int] = []
        self._db.execute("BEGIN IMMEDIATE")
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
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,)
            ).rowcount
        self._db.execute("COMMIT")
        return seqs, dropped

    def remove(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged messages; returns how many were still there."""
        ids = [(int(s),) for s in seqs]
        if not ids:
            return 0
        with self._lock:
            removed = max(self._guarded(lambda: self._transaction("DELETE FROM outbox WHERE seq = ?", ids)), 0)
            self._depth -= removed
            return removed

    def _transaction(self, sql: str, params: list[tuple[object, ...]]) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        n = self._db.executemany(sql, params).rowcount  # executemany's rowcount sums the statements
        self._db.execute("COMMIT")
        return int(n)

    def dead_letter(self, seq: int, reason: str) -> bool:
        """Move message ``seq`` to the ``dead_letter`` table with ``reason``; False if it was gone.

        The table keeps the newest ``max_events`` dead letters (for a person to look at)."""
        with self._lock:
            moved = self._guarded(lambda: self._move_dead(int(seq), reason))
            if moved:
                self._depth -= 1
                self._dead += 1
            return moved

    def _move_dead(self, seq: int, reason: str) -> bool:
        self._db.execute("BEGIN IMMEDIATE")
        cur = self._db.execute(
            f"INSERT INTO dead_letter ({_COLUMNS}, reason, failed) SELECT {_COLUMNS}, ?, ? FROM outbox WHERE seq = ?",
            (reason, self._clock(), seq))
        if cur.rowcount > 0:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._db.execute("DELETE FROM dead_letter WHERE seq NOT IN "
                             "(SELECT seq FROM dead_letter ORDER BY seq DESC LIMIT ?)", (self.max_events,))
        self._db.execute("COMMIT")
        return cur.rowcount > 0

    def dead_letters(self, limit: int = 100) -> list[tuple[StoredMessage, str]]:
        """The newest ``limit`` dead letters, oldest first, each with its reason."""
        with self._lock:
            rows = self._guarded(lambda: self._db.execute(
                f"SELECT {_COLUMNS}, reason FROM dead_letter ORDER BY seq DESC LIMIT ?", (int(limit),)).fetchall())
        return [(_stored(r), str(r[6])) for r in reversed(rows)]

    @property
    def dead_total(self) -> int:
        """Messages moved to the dead-letter table since this object was created."""
        return self._dead

    def prune(self) -> int:
        """Drop messages older than ``max_age_h``; returns how many were dropped.

        Call it periodically: it also logs the summary of earlier drops once it is due.
        """
        cutoff = self._clock() - self.max_age_s
        with self._lock:
            dropped = max(self._guarded(lambda: self._transaction("DELETE FROM outbox WHERE created < ?", [(cutoff,)])),
                          0)
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
            rows = self._guarded(lambda: self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (int(after_seq), int(limit))
            ).fetchall())
        return [_stored(r) for r in rows]

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


def _stored(r: Sequence[object]) -> StoredMessage:
    return StoredMessage(int(r[0]), float(r[1]), str(r[2]), bytes(r[3]), int(r[4]), bool(r[5]))  # type: ignore[arg-type]


def _salvage(aside: Path, span: int) -> tuple[list[tuple[object, ...]], int, int]:
    """The queued rows still readable in the damaged file ``aside``: (rows, unreadable, highest seq).

    One pass in order first; where that stops at a bad page, every sequence number between the
    lowest and highest known ones (at most ``span`` of them) is looked up on its own, so the rows
    on good pages after the bad one are found too. A looked-up row that raises is counted lost."""
    cut = _partial_page_cut(aside)
    if cut is None:
        return _salvage_rows(aside, span)
    # A file cut inside a page reads that page's lost tail as zeros, which look like valid rows:
    # salvage from a copy without the partial page.
    copy = aside.with_name(aside.name + ".whole-pages")
    try:
        with aside.open("rb") as src, copy.open("wb") as dst:
            dst.write(src.read(cut))
        return _salvage_rows(copy, span)
    finally:
        copy.unlink(missing_ok=True)


def _partial_page_cut(path: Path) -> int | None:
    """The size to cut ``path`` to when it ends inside a page, else None."""
    try:
        with path.open("rb") as f:
            header = f.read(100)
        size = path.stat().st_size
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return None
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    return None if page < 512 or size % page == 0 else size - size % page


def _salvage_rows(aside: Path, span: int) -> tuple[list[tuple[object, ...]], int, int]:
    rows: dict[int, tuple[object, ...]] = {}
    unreadable, top = 0, 0
    try:
        src = sqlite3.connect(aside)  # not read-only: a WAL file may need its -shm made
        # Loosens SQLite's schema checks (a truncated file fails them on every statement); the
        # file is only read.
        src.execute("PRAGMA writable_schema=ON")
    except sqlite3.Error:
        return [], 0, 0
    try:
        top = _first_int(src, ["SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", "SELECT max(seq) FROM outbox"])
        try:
            for r in src.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY seq"):
                if _whole(r):
                    rows[int(r[0])] = tuple(r)
                else:
                    unreadable += 1
            return list(rows.values()), unreadable, max([top, *rows])
        except sqlite3.DatabaseError:
            unreadable = 0  # rows read so far stay; the rest (partial rows too) one by one
        low = _first_int(src, ["SELECT min(seq) FROM outbox"]) or (min(rows) if rows else max(top - span, 1))
        top = max([top, *rows])
        for seq in range(max(low, top - span), top + 1):
            if seq in rows:
                continue
            try:
                r = src.execute(f"SELECT {_COLUMNS} FROM outbox WHERE seq = ?", (seq,)).fetchone()
            except sqlite3.DatabaseError:
                unreadable += 1
                continue
            if r is not None and _whole(r):
                rows[seq] = tuple(r)
            elif r is not None:
                unreadable += 1
    finally:
        src.close()
    return [rows[k] for k in sorted(rows)], unreadable, top


def _whole(r: Sequence[object]) -> bool:
    # A row read past the end of a truncated file comes back with NULLs: not a message.
    return (isinstance(r[1], (int, float)) and isinstance(r[2], str) and isinstance(r[3], bytes)
            and isinstance(r[4], int) and isinstance(r[5], int))


def _first_int(db: sqlite3.Connection, queries: list[str]) -> int:
    # The first of ``queries`` that still reads a number from a damaged file; 0 if none does.
    for q in queries:
        try:
            row = db.execute(q).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and row[0] is not None:
            return int(row[0])
    return 0
