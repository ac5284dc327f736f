"""Fault injection: every event the publisher counts as produced reaches a real broker once, in
order, or is counted as dead-lettered with its reason, whatever happens to the disk, the file or
the broker.

Real parts only: real Mosquitto brokers (an ACL, a packet limit, a changed password in their
config), real SQLite files damaged by byte edits and truncation, and a real full or read-only
file system: a tmpfs of a few hundred KiB mounted for the test (root needed; CI runs as root and
sets EDGE_OCR_REQUIRE_MOUNT=1, so a missing capability fails there instead of skipping).

Each test prints one ``FAULT`` line with its counts; ``python -m pytest -s -q tests/test_faults.py
| grep FAULT`` shows them all.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_ocr.config import Config, LocalizerConfig, MqttConfig, VotingConfig
from edge_ocr.daemon import EX_CONFIG, EX_TEMPFAIL, _changed_keys, run_daemon
from edge_ocr.publish.outbox import Outbox
from edge_ocr.publish.publish import MqttPublisher
from edge_ocr.stages import broker, mqtt_publisher, publisher

from .helpers import DEVICE, TOPICS, make_event, mqtt_cfg, outbox_cfg, wait_until

ROOT = Path(__file__).resolve().parents[1]
PAGE = 4096


# ----------------------------------------------------------------------------- helpers


class Mount:
    """A tmpfs of ``size`` bytes at ``path``: a real file system that fills up or turns read-only."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            why = (f"cannot mount a tmpfs at {path} ({proc.stderr.strip() or proc.returncode}): the full and "
                   "read-only disk tests need root with CAP_SYS_ADMIN")
            if os.environ.get("EDGE_OCR_REQUIRE_MOUNT"):
                pytest.fail(f"EDGE_OCR_REQUIRE_MOUNT is set but {why}", pytrace=False)
            pytest.skip(why)

    def fill(self) -> Path:
        """Write a file until the file system says ENOSPC; returns it (delete it to make room)."""
        filler = self.path / "filler"
        with filler.open("wb", buffering=0) as f:  # unbuffered: close has nothing left to write
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        return filler

    def read_only(self, on: bool) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path)], check=True)

    def remove(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Mount]]:
    made: list[Mount] = []

    def factory(size: int) -> Mount:
        made.append(Mount(tmp_path / f"fs{len(made)}", size))
        return made[-1]

    yield factory
    for m in made:
        m.remove()


class Ledger:
    """What the publisher said it produced, and what the subscriber got, by event_id."""

    def __init__(self, pub: MqttPublisher, caplog: pytest.LogCaptureFixture) -> None:
        self.pub = pub
        self.caplog = caplog
        self.made: list[str] = []  # event ids in the order they were made
        self.refused: list[str] = []  # publish_event said False: held, not produced yet

    def publish(self, n: int, start: int, crop: bytes | None = None) -> None:
        for i in range(start, start + n):
            ev = make_event(i, crop=crop)
            self.made.append(ev.event_id)
            if not self.pub.publish_event(ev):
                self.refused.append(ev.event_id)

    def produced(self) -> list[str]:
        """Stored at once, or stored late (the log line that says so), in the order they were made."""
        late = {r.getMessage().split("event_id ")[1].split(")")[0] for r in self.caplog.records
                if "stored late" in r.getMessage()}
        return [e for e in self.made if e not in self.refused or e in late]


def arrived(sub: Any) -> list[str]:
    return [e["event_id"] for e in sub.events(TOPICS.plate)]


def report(case: str, produced: int, delivered: int, dead: int = 0, lost: int = 0) -> None:
    print(f"\nFAULT {case}: produced={produced} delivered={delivered} dead_lettered={dead} unreadable={lost}")


def logged(caplog: pytest.LogCaptureFixture, text: str, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage() and r.levelno >= level]


def store_offline(tmp_path: Path, n: int, size: int = 0) -> list[str]:
    """``n`` events committed by a publisher that never reached a broker (port with no listener)."""
    from .helpers import free_port

    pub = mqtt_publisher(mqtt_cfg(free_port()), outbox_cfg(tmp_path), DEVICE, "t")
    ids = []
    for i in range(n):
        ev = make_event(i, crop=b"j" * size if size else None)
        assert pub.publish_event(ev)
        ids.append(ev.event_id)
    pub.stop(0.1)
    return ids


# ----------------------------------------------------------------------------- a damaged outbox


@pytest.mark.parametrize("damage", ["page", "truncated"])
def test_damaged_outbox_salvages_every_readable_event(damage: str, mosquitto, tmp_path: Path, subscribers,
                                                      publishers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stored = store_offline(tmp_path, 60, size=600)
    path = Path(outbox_cfg(tmp_path).path)
    with path.open("r+b") as f:
        if damage == "page":  # a torn write or a bad sector in the middle of the file
            f.seek(path.stat().st_size // PAGE // 2 * PAGE)
            f.write(b"\xa5" * PAGE)
        else:  # a copy cut short, a file system that lost the tail
            f.truncate(path.stat().st_size * 2 // 3)
    sub = subscribers(mosquitto, [TOPICS.plate])
    pub = publishers(mqtt_cfg(mosquitto.port, include_crop="base64"), outbox_cfg(tmp_path), DEVICE, "t")
    salvaged, lost = pub._outbox.salvaged, pub._outbox.unreadable
    wait_until(lambda: len(arrived(sub)) >= salvaged, what="salvaged events")
    for i in range(100, 105):  # and it keeps going
        assert pub.publish_event(make_event(i))
    wait_until(lambda: len(arrived(sub)) >= salvaged + 5, what="new events")
    got = arrived(sub)
    assert len(got) == len(set(got)) == salvaged + 5
    assert got[:salvaged] == [e for e in stored if e in set(got)]  # in order, the survivors
    assert salvaged + lost >= len(stored) and 0 < salvaged < len(stored)
    line = logged(caplog, "is damaged", logging.ERROR)
    assert len(line) == 1 and ".damaged-" in line[0]
    saved, = logged(caplog, "queued message(s) from", logging.ERROR)
    assert f"salvaged {salvaged} queued message(s)" in saved and f"{lost} unreadable (lost)" in saved
    report(f"damaged outbox ({damage})", len(stored) + 5, len(got), lost=lost)


def test_damage_found_while_the_disk_is_full_is_salvaged_once_there_is_room(tmpfs, caplog) -> None:
    import sqlite3

    from edge_ocr.publish.outbox import NewMessage

    fs = tmpfs(512 * 1024)
    path = fs.path / "o.sqlite"
    sent = [f"event-{i:03d}-".encode() + b"x" * 900 for i in range(40)]
    with Outbox(path, 1000, 24) as box:
        box.add_many([NewMessage("t", p) for p in sent])
    box = Outbox(path, 1000, 24)
    with path.open("r+b") as f:
        f.seek(3 * PAGE)
        f.write(b"\xa5" * PAGE)
    with sqlite3.connect(path) as other:  # another writer: the outbox must read the pages again
        other.execute("CREATE TABLE poke (x)")
    filler = fs.fill()
    with pytest.raises(sqlite3.Error):
        box.add("t", b"late")  # damaged, moved aside, but no room for the fresh file yet
    assert len(logged(caplog, "is damaged", logging.ERROR)) == 1 and not logged(caplog, "queued message(s) from")
    filler.unlink()
    box.add("t", b"late")  # the rows waited in the aside file
    got = [m.payload for m in box.peek(limit=100)]
    box.close()
    assert got[-1] == b"late" and got[:-1] == [p for p in sent if p in set(got)]
    assert box.salvaged == len(got) - 1 and box.salvaged + box.unreadable >= len(sent)


# ----------------------------------------------------------------------------- the disk refuses writes


# Read-only while running is not here: the kernel refuses `mount -o remount,ro` while the outbox
# holds its file open for writing ("mount point is busy"), and only a failing device forces it.
# The daemon's path is the same as for a full disk (the commit raises, the cause is named by
# storage_problem); read-only at start is tested below.
@pytest.mark.parametrize("fault", ["full"])
def test_disk_refusing_writes_holds_new_events_and_keeps_delivering(
        fault: str, make_broker, tmpfs, subscribers, publishers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fs = tmpfs(512 * 1024)
    broker = make_broker(start=False)
    sub_ready: list[Any] = []
    pub = publishers(mqtt_cfg(broker.port, include_crop="base64"), outbox_cfg(fs.path), DEVICE, "t")
    book = Ledger(pub, caplog)
    book.publish(10, 0, crop=b"j" * 1500)  # on disk while the broker is down
    assert book.refused == []
    filler = fs.fill()
    book.publish(10, 10, crop=b"j" * 1500)  # the disk refuses these
    assert len(book.refused) == 10 and pub.stats()["held"] == 10 and pub.stats()["store_failures"] >= 1
    broker.start()
    sub_ready.append(subscribers(broker, [TOPICS.plate]))
    sub = sub_ready[0]
    # what was on disk goes out although nothing new can be written
    wait_until(lambda: len(arrived(sub)) >= 10, timeout=10, what="the stored events, disk still refusing")
    assert arrived(sub) == book.made[:10] and pub.stats()["held"] == 10
    cause = logged(caplog, "cannot store", logging.ERROR)
    assert cause and "disk full" in cause[0]
    assert "no transaction is active" not in caplog.text
    filler.unlink()
    wait_until(lambda: len(arrived(sub)) >= 20, timeout=10, what="the held events, once the disk takes them")
    got, produced = arrived(sub), book.produced()
    assert got == produced == book.made  # every one once, in order
    assert len(logged(caplog, "stored late", logging.INFO)) == 10
    report(f"{fault} disk while running", len(produced), len(got))


def test_pipeline_does_not_count_or_log_an_event_the_disk_refused(tmpfs, caplog) -> None:
    from edge_ocr.config import OutboxConfig
    from edge_ocr.daemon import Pipeline
    from edge_ocr.decide.tracks import Observation
    from edge_ocr.stages import Stages
    from edge_ocr.types import Reading

    from .helpers import free_port

    caplog.set_level(logging.INFO)
    fs = tmpfs(256 * 1024)
    cfg = Config(mqtt=MqttConfig(host="127.0.0.1", port=free_port()), voting=VotingConfig(min_votes=10),
                 localizer=LocalizerConfig(type="classic"),  # the reading stages do not matter here
                 outbox=OutboxConfig(path=str(fs.path / "outbox.sqlite")))  # published when the track ends
    pub = publisher(cfg, "t")
    pipeline = Pipeline(Stages.from_config(cfg), pub)
    filler = fs.fill()
    for i in range(3):
        pipeline.stages.voter.update(i * 0.1, [Observation(Reading("AB123CD", 0.99, (0.99,) * 7), (10, 10, 90, 20))])
    assert pipeline.flush(1.0) == [] and pipeline.counters["events"] == 0  # not produced
    assert not [m for m in logged(caplog, "event ", logging.INFO) if m.startswith("event ")]
    held, = logged(caplog, "not stored yet")
    event_id = held.split("event_id ")[1].split(")")[0]
    filler.unlink()
    pub.stop(0.1)  # never started: one more try to store, then closed
    late = logged(caplog, "stored late", logging.INFO)
    assert len(late) == 1 and event_id in late[0]  # produced now, and on disk
    assert pub.stats()["stored_late"] == 1  # the daemon adds these to the pipeline's "events"
    with Outbox(cfg.outbox.path, 100, 1) as box:
        assert [json.loads(m.payload)["event_id"] for m in box.peek()] == [event_id]
    report("full disk under the pipeline (no broker: 1 stored late, on disk)", 1, 0)


def test_stop_with_a_full_disk_never_calls_memory_kept(tmpfs, publishers, caplog) -> None:
    from .helpers import free_port

    fs = tmpfs(256 * 1024)
    pub = publishers(mqtt_cfg(free_port()), outbox_cfg(fs.path), DEVICE, "t")
    assert pub.publish_event(make_event(0))
    fs.fill()
    assert not pub.publish_event(make_event(1))
    assert pub.stop(0.5) is False
    lost, = logged(caplog, "never took", logging.ERROR)
    assert "stopped with 1 message(s) the outbox never took (full): lost" in lost
    kept, = logged(caplog, "for the next start")
    assert "stopped with 1 message(s) undelivered" in kept  # the one on disk, and only that one


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_disk_refusing_at_start_exits_75_naming_it(fault: str, tmpfs, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    fs = tmpfs(256 * 1024)
    if fault == "full":
        fs.fill()
    else:
        fs.read_only(True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"camera: {{type: file, uri: '{ROOT / 'samples' / 'demo.mp4'}'}}\nlocalizer: {{type: classic}}\n"
                   f"mqtt: {{host: 127.0.0.1, port: 1}}\noutbox: {{path: '{fs.path / 'outbox.sqlite'}'}}\n")
    assert run_daemon(str(cfg)) == EX_TEMPFAIL
    line = logged(caplog, "outbox.path", logging.ERROR)
    assert line and ("disk full" if fault == "full" else "read-only") in line[0]
    # the cause first, SQLite's words ("disk I/O error", "unable to open database file") after it
    assert re.search(r"cannot open \S+: (disk full|read-only) \(", line[0]), line[0]


def test_unit_restarts_tempfail_but_not_a_broken_config() -> None:
    from .helpers import UNIT, parse_unit

    service = parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]
    assert service["Restart"] == ["on-failure"]
    prevent = " ".join(service.get("RestartPreventExitStatus", [])).split()
    assert str(EX_CONFIG) in prevent and str(EX_TEMPFAIL) not in prevent


# ----------------------------------------------------------------------------- the broker refuses


def test_acl_denying_the_plate_topic_dead_letters_with_the_reason(make_broker, tmp_path: Path, subscribers,
                                                                   publishers, caplog) -> None:
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite #\ntopic deny {TOPICS.plate}\n", encoding="utf-8")
    broker = make_broker(extra=[f"acl_file {acl}"])
    sub = subscribers(broker, ["edge-ocr/#"])
    pub = publishers(mqtt_cfg(broker.port, max_refusals=3), outbox_cfg(tmp_path), DEVICE, "t")
    book = Ledger(pub, caplog)
    book.publish(3, 0)
    wait_until(lambda: pub.stats()["dead_lettered"] == 3, what="three dead letters")
    assert arrived(sub) == [] and pub.stats()["queued"] == 0 and pub.stats()["refused"] == 9
    refusals = logged(caplog, "broker refused message", logging.ERROR)
    assert refusals and TOPICS.plate in refusals[0] and "Not authorized" in refusals[0]
    dead = logged(caplog, "dead-letter table", logging.ERROR)
    assert len(dead) == 3 and all("refused by the broker 3 times: Not authorized" in d for d in dead)
    pub.stop(1.0)
    with Outbox(outbox_cfg(tmp_path).path, 100, 1) as box:
        letters = box.dead_letters()
    assert [json.loads(m.payload)["event_id"] for m, _ in letters] == book.produced()
    assert "mqtt: stopped, everything delivered" in caplog.text  # true now: nothing is left queued
    report("ACL denies the plate topic", len(book.produced()), 0, dead=len(letters))


def test_message_over_the_broker_packet_limit_does_not_block_the_rest(make_broker, tmp_path: Path, subscribers,
                                                                      publishers, caplog) -> None:
    broker = make_broker(extra=["max_packet_size 9000"])
    sub = subscribers(broker, [TOPICS.plate])
    pub = publishers(mqtt_cfg(broker.port, include_crop="base64"), outbox_cfg(tmp_path), DEVICE, "t")
    wait_until(lambda: pub.connected, what="connect")
    book = Ledger(pub, caplog)
    big = {1, 4}
    for i in range(6):
        book.publish(1, i, crop=b"j" * 8000 if i in big else b"j" * 100)
    wait_until(lambda: len(arrived(sub)) == 4 and pub.stats()["dead_lettered"] == 2, what="4 delivered, 2 dead")
    want = [e for i, e in enumerate(book.produced()) if i not in big]
    assert arrived(sub) == want
    dead = logged(caplog, "dead-letter table", logging.ERROR)
    assert len(dead) == 2 and "larger than the broker's maximum packet size (9000 bytes)" in dead[0]
    assert not logged(caplog, "lost connection")  # it never sent what would make the broker drop it
    assert not logged(caplog, "not sent")  # discovery (about 7 kB) fits: only the events were too large
    report("message over max_packet_size", len(book.produced()), len(arrived(sub)), dead=2)


# ----------------------------------------------------------------------------- credentials


def test_password_changed_on_disk_is_used_at_the_next_reconnect(make_broker, tmp_path: Path, subscribers,
                                                                publishers, caplog) -> None:
    caplog.set_level(logging.INFO)
    broker = make_broker(users={"edge": "old-pw", "watcher": "w"})
    secret = tmp_path / "mqtt_password"
    secret.write_text("old-pw\n", encoding="utf-8")
    sub = subscribers(broker, [TOPICS.plate], auth=("watcher", "w"))
    pub = publishers(mqtt_cfg(broker.port, username="edge", password_file=str(secret)), outbox_cfg(tmp_path),
                     DEVICE, "t")
    wait_until(lambda: pub.connected, what="connect with the old password")
    book = Ledger(pub, caplog)
    book.publish(3, 0)
    wait_until(lambda: len(arrived(sub)) == 3, what="events before the change")
    broker.set_password("edge", "new-pw")
    broker.stop()  # the connection drops; the broker now wants the new password
    broker.start()
    sub.client.reconnect()
    book.publish(3, 3)
    wait_until(lambda: logged(caplog, "Not authorized"), what="a refusal logged at warning level")
    wait_until(lambda: broker.log_text().count("not authorised") >= 3, what="three refused attempts")
    secret.write_text("new-pw\n", encoding="utf-8")  # no SIGHUP, no restart
    wait_until(lambda: len(arrived(sub)) >= 6, timeout=10, what="events after the password file changed")
    assert arrived(sub) == book.produced() == book.made
    # three or more refused attempts, one warning (the next one would come a minute later)
    assert len(logged(caplog, "Not authorized")) == 1
    report("password changed", len(book.produced()), len(arrived(sub)))


def test_ca_file_renewed_on_disk_is_used_at_the_next_reconnect(make_broker, tls_files, tmp_path: Path,
                                                               publishers, caplog) -> None:
    broker = make_broker(tls=tls_files)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls_files.cert.read_bytes())  # not the CA that signed the broker: refused
    pub = publishers(mqtt_cfg(broker.port, tls={"enabled": True, "ca_file": str(ca)}), outbox_cfg(tmp_path),
                     DEVICE, "t")
    wait_until(lambda: logged(caplog, "certificate verify failed"), what="the TLS failure, at warning level")
    assert not pub.connected
    ca.write_bytes(tls_files.ca.read_bytes())  # the right CA, no restart
    wait_until(lambda: pub.connected, what="a TLS connect with the renewed CA file")


def test_a_broker_refusing_mqtt5_gets_311_on_the_next_attempt() -> None:
    """No Mosquitto refuses MQTT 5, so the switch is checked on paho's own client and the reason
    code paho makes of a 3.1.1 broker's "unacceptable protocol version" CONNACK."""
    from paho.mqtt import client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from edge_ocr.publish.mqtt_client import fall_back_to_311, make_client
    from edge_ocr.publish.outbox import NewMessage

    client = make_client(broker(mqtt_cfg(1883, client_id="c"), DEVICE), NewMessage("t/status", b"offline"))
    assert client.protocol == paho.MQTTv5
    assert not fall_back_to_311(client, ReasonCode(PacketTypes.CONNACK, aName="Not authorized"))
    assert client.protocol == paho.MQTTv5
    assert fall_back_to_311(client, ReasonCode(PacketTypes.CONNACK, aName="Unsupported protocol version"))
    assert client.protocol == paho.MQTTv311
    assert not fall_back_to_311(client, ReasonCode(PacketTypes.CONNACK, aName="Unsupported protocol version"))


def test_reload_names_every_key_that_waits_for_a_restart() -> None:
    old = Config()
    new = Config(mqtt=MqttConfig(port=1884, username="u", password_file="/p"), device_id="gate2")
    assert _changed_keys(old, new, ("camera", "mqtt", "outbox", "http", "device_id")) == [
        "device_id", "mqtt.password_file", "mqtt.port", "mqtt.username"]
