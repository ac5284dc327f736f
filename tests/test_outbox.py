"""The SQLite outbox: order, durability across reopen, bounds, and what it does with a bad file."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from edge_ocr.config import ConfigError, parse_config
from edge_ocr.publish.outbox import NewMessage, Outbox


class FakeClock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def msgs(n: int, start: int = 0) -> list[NewMessage]:
    return [NewMessage("edge-ocr/dev/plate", f"event-{i}".encode(), 1, False) for i in range(start, start + n)]


def payloads(box: Outbox, limit: int = 1000) -> list[bytes]:
    return [m.payload for m in box.peek(limit=limit)]


def test_fifo_order_and_remove_on_ack(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 100, 24) as box:
        seqs = box.add_many(msgs(5))
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        assert box.depth == 5
        assert payloads(box) == [f"event-{i}".encode() for i in range(5)]
        assert [m.payload for m in box.peek(after_seq=seqs[2])] == [b"event-3", b"event-4"]
        assert [m.seq for m in box.peek(limit=2)] == seqs[:2]

        assert box.remove([seqs[1], seqs[3], 999_999]) == 2
        assert box.depth == 3
        assert payloads(box) == [b"event-0", b"event-2", b"event-4"]
        m = box.peek(limit=1)[0]
        assert (m.topic, m.qos, m.retain) == ("edge-ocr/dev/plate", 1, False)


def test_file_is_wal_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "o.sqlite"  # missing directories are created
    box = Outbox(path, 100, 24)
    box.add_many(msgs(3))
    box.add("edge-ocr/dev/plate/crop", b"\xff\xd8jpeg\x00bytes", qos=0, retain=True)
    box.close()
    box.close()  # twice is harmless

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    with Outbox(path, 100, 24) as again:
        assert again.depth == 4
        stored = again.peek()
        assert [m.payload for m in stored] == [b"event-0", b"event-1", b"event-2", b"\xff\xd8jpeg\x00bytes"]
        assert (stored[-1].qos, stored[-1].retain) == (0, True)
        # New messages sort after the old ones even when everything old was removed first.
        last = stored[-1].seq
        again.remove(m.seq for m in stored)
        assert again.add("t", b"new") > last


def test_sequence_numbers_are_never_reused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 100, 24) as box:
        first = box.add_many(msgs(3))
        box.remove(first)
        assert box.depth == 0
        # The publisher reads "after the last seq it handed over"; a reused number would be skipped.
        assert box.add("t", b"x") > max(first)


def test_max_events_drops_oldest_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge_ocr.publish.outbox")
    with Outbox(tmp_path / "o.sqlite", 10, 24) as box:
        box.add_many(msgs(8))
        assert box.dropped_total == 0
        box.add_many(msgs(4, start=8))  # 12 > 10: the two oldest go
        assert box.depth == 10
        assert payloads(box) == [f"event-{i}".encode() for i in range(2, 12)]
        assert box.dropped() == {"max_events": 2, "max_age": 0}
        for i in range(12, 15):
            box.add("edge-ocr/dev/plate", f"event-{i}".encode())
        assert box.depth == 10
        assert payloads(box)[0] == b"event-5"
        assert box.dropped_total == 5
    drops = [r for r in caplog.records if "outbox full" in r.getMessage()]
    # Logged at once, then summarised (rate-limited) rather than one line per insert.
    assert drops and "dropped 2 oldest" in drops[0].getMessage()
    assert len(drops) <= 2
    assert "5 since start" in drops[-1].getMessage()


def test_max_age_drops_old_messages(tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path / "o.sqlite", 100, max_age_h=1.0, clock=clock) as box:
        box.add_many(msgs(2))
        clock.t += 1800
        box.add_many(msgs(1, start=2))
        assert box.prune() == 0
        clock.t += 1801  # the first two are now 1 h + 1 s old
        assert box.prune() == 2
        assert payloads(box) == [b"event-2"]
        assert box.dropped() == {"max_events": 0, "max_age": 2}
        assert box.depth == 1


def test_age_is_applied_when_opening(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "o.sqlite"
    with Outbox(path, 100, 1.0, clock=clock) as box:
        box.add_many(msgs(3))
    clock.t += 2 * 3600
    with Outbox(path, 100, 1.0, clock=clock) as box:
        assert box.depth == 0
        assert box.dropped()["max_age"] == 3


def test_bounds_come_from_the_schema_checked_once(tmp_path: Path) -> None:
    with Outbox(str(tmp_path / "c.sqlite"), 10, 2) as box:
        assert (box.max_events, box.max_age_s, box.path) == (10, 7200.0, tmp_path / "c.sqlite")
    with pytest.raises(ConfigError, match="outbox.max_events"):
        parse_config("outbox: {max_events: 5}")
    with pytest.raises(ConfigError, match="outbox.max_age_h"):
        parse_config("outbox: {max_age_h: 0}")


def test_corrupt_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with Outbox(path, 100, 24) as box:
        assert box.depth == 0
        box.add("t", b"x")
        assert box.depth == 1
    aside = list(tmp_path.glob("o.sqlite.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    lines = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(lines) == 1 and str(aside[0]) in lines[0]
    assert any("salvaged 0 queued message(s)" in r.getMessage() for r in caplog.records)


PAGE = 4096


def filled(path: Path, n: int = 200, size: int = 900) -> list[bytes]:
    """An outbox file holding ``n`` messages of ``size`` bytes (several per 4 KiB page), closed."""
    sent = [f"event-{i:04d}-".encode() + b"x" * size for i in range(n)]
    with Outbox(path, 10_000, 24) as box:
        box.add_many([NewMessage("edge-ocr/dev/plate", p) for p in sent])
    return sent


def damage_page(path: Path, page: int) -> None:
    """Overwrite one whole page of the file with garbage, as a torn write or a bad sector would."""
    with path.open("r+b") as f:
        f.seek(page * PAGE)
        f.write(b"\xa5" * PAGE)


def test_damaged_page_found_on_open_and_every_readable_row_salvaged(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "o.sqlite"
    sent = filled(path)
    pages = path.stat().st_size // PAGE
    damage_page(path, pages // 2)
    with Outbox(path, 10_000, 24) as box:
        kept = box.peek(limit=1000)
        got = [m.payload for m in kept]
        # everything but the rows of the one bad page, in the original order, under the old numbers
        assert 0 < len(sent) - len(got) <= PAGE // 900 + 1
        assert got == [p for p in sent if p in set(got)]
        assert box.depth == len(got) and box.salvaged == len(got)
        assert box.unreadable == len(sent) - len(got)
        assert box.add("t", b"new") > max(m.seq for m in kept)
    line = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(line) == 1 and "moved aside to" in line[0]
    saved = [r.getMessage() for r in caplog.records if "salvaged" in r.getMessage()]
    assert len(saved) == 1 and f"salvaged {len(got)} queued message(s)" in saved[0]
    assert f"{len(sent) - len(got)} unreadable (lost)" in saved[0]
    assert len(list(tmp_path.glob("o.sqlite.damaged-*"))) == 1


def test_truncated_file_salvages_the_rows_before_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    sent = filled(path)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size * 2 // 3)
    with Outbox(path, 10_000, 24) as box:
        got = [m.payload for m in box.peek(limit=1000)]
    assert got and got == sent[: len(got)]


def test_damage_found_by_a_write_while_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "o.sqlite"
    sent = filled(path)
    box = Outbox(path, 10_000, 24)
    box.close()
    box = Outbox(path, 10_000, 24)
    damage_page(path, 2)
    # another writer: the outbox's page cache is no longer trusted, its next read meets the page
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE poke (x)")
    for i in range(3):
        box.add("edge-ocr/dev/plate", f"late-{i}".encode())
        box.remove([m.seq for m in box.peek(limit=5)][:0])
    got = [m.payload for m in box.peek(limit=1000)]
    box.close()
    assert got[-3:] == [b"late-0", b"late-1", b"late-2"]
    assert got[:-3] == [p for p in sent if p in set(got)] and len(got) - 3 >= len(sent) - PAGE // 900 - 1
    assert any("is damaged" in r.getMessage() for r in caplog.records)


def test_dead_letter_moves_the_row_with_its_reason(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10, 24) as box:
        seqs = box.add_many(msgs(3))
        assert box.dead_letter(seqs[1], "refused by the broker: Not authorized") is True
        assert box.dead_letter(seqs[1], "again") is False
        assert payloads(box) == [b"event-0", b"event-2"] and box.depth == 2 and box.dead_total == 1
        (msg, reason), = box.dead_letters()
        assert (msg.seq, msg.payload, reason) == (seqs[1], b"event-1", "refused by the broker: Not authorized")
    with Outbox(tmp_path / "o.sqlite", 10, 24) as again:  # kept on disk
        assert [m.payload for m, _ in again.dead_letters()] == [b"event-1"]
