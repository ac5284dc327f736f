"""The delivery engine without a broker: a real outbox file, and a list standing in for the client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_ocr.config import MqttConfig, OutboxConfig
from edge_ocr.publish.delivery import Delivery
from edge_ocr.publish.outbox import NewMessage, Outbox

PLATE, LAST = "edge-ocr/d/plate", "edge-ocr/d/last_plate"


class FakeClient:
    """Takes messages while ``up`` (QoS 1/2 also while down, as paho queues them), numbers them."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, bytes, int, bool]] = []
        self.up = True
        self.refuse = False
        self._mid = 0

    def send(self, topic: str, payload: bytes, qos: int, retain: bool) -> int | None:
        if self.refuse:
            return None
        self._mid += 1
        self.sent.append((self._mid, topic, payload, qos, retain))
        return self._mid

    def link_up(self) -> bool:
        return self.up

    def plates(self) -> list[bytes]:
        """Payloads handed over on the plate topic, in order."""
        return [p for _, t, p, _, _ in self.sent if t == PLATE]


def delivery(outbox: Outbox, send: Any, **kw: Any) -> Delivery:
    """A Delivery with the config's bounds unless the test sets its own."""
    return Delivery(outbox, send, **{"max_held": OutboxConfig().max_held, "max_refusals": MqttConfig().max_refusals,
                                     **kw})


def events(n: int, start: int = 0, qos: int = 1) -> list[NewMessage]:
    return [NewMessage(PLATE, f"e{i}".encode(), qos, False) for i in range(start, start + n)]


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "o.sqlite", 1000, 24)
    yield box
    box.close()


def test_store_is_on_disk_when_it_returns(tmp_path: Path, outbox: Outbox) -> None:
    d = delivery(outbox, FakeClient().send)
    assert d.store(events(3)) is True
    # A second connection (as a restarted process would open) sees them: committed, not buffered.
    with Outbox(tmp_path / "o.sqlite", 1000, 24) as other:
        assert [m.payload for m in other.peek()] == [b"e0", b"e1", b"e2"]
    assert d.queued == 3 and d.held == 0


def test_window_order_and_removal_on_ack(outbox: Outbox) -> None:
    client = FakeClient()
    d = delivery(outbox, client.send, window=10)
    d.store(events(25))
    d.pump(client.link_up)
    assert client.plates() == [f"e{i}".encode() for i in range(10)]
    assert d.inflight == 10 and d.published == 10
    d.pump(client.link_up)
    assert d.published == 10  # window full: nothing more until acknowledgements
    for mid, topic, *_ in list(client.sent):
        if topic == PLATE:
            d.ack(mid)
    d.flush()
    assert d.acked == 10 and outbox.depth == 15
    d.pump(client.link_up)
    sent_plates = client.plates()
    assert sent_plates == [f"e{i}".encode() for i in range(20)]
    d.ack(10_000)  # an id it never handed over (a retained copy's): ignored
    d.flush()
    assert d.acked == 10


def test_not_taken_is_retried_from_the_same_place(outbox: Outbox) -> None:
    client = FakeClient()
    d = delivery(outbox, client.send)
    d.store(events(3))
    client.refuse = True
    d.pump(client.link_up)
    assert client.sent == [] and d.published == 0
    client.refuse = False
    d.pump(client.link_up)
    assert client.plates() == [b"e0", b"e1", b"e2"]


def test_link_lost_hands_qos0_over_again_but_not_qos1(outbox: Outbox) -> None:
    client = FakeClient()
    d = delivery(outbox, client.send)
    d.store(events(2, qos=0) + events(2, start=2, qos=1))
    d.pump(client.link_up)
    assert d.inflight == 4
    d.link_lost()  # paho dropped the QoS 0 ones and keeps the QoS 1 ones to resend itself
    assert d.inflight == 2
    client.sent.clear()
    d.pump(client.link_up)
    assert client.plates() == [b"e0", b"e1"]


def test_pump_stops_when_the_link_goes_down(outbox: Outbox) -> None:
    client = FakeClient()
    d = delivery(outbox, client.send)
    d.store(events(3))
    client.up = False
    d.pump(client.link_up)
    assert client.sent == []


def test_retained_copy_of_the_newest_message_only(outbox: Outbox) -> None:
    client = FakeClient()
    d = delivery(outbox, client.send, retained_copies={PLATE: LAST})
    d.store(events(5))
    d.store([NewMessage("edge-ocr/d/plate/crop", b"jpeg", 1, False)])
    d.pump(client.link_up)
    copies = [(p, q, r) for _, t, p, q, r in client.sent if t == LAST]
    assert copies == [(b"e4", 1, True)]  # one per pump, the newest, retained, same QoS
    assert d.published == 6  # copies are not outbox messages: not counted, never acknowledged
    d.pump(client.link_up)
    assert len([1 for _, t, *_ in client.sent if t == LAST]) == 1  # nothing new sent: no new copy


def test_disk_refusing_holds_in_order_then_stores(tmp_path: Path) -> None:
    path = tmp_path / "ro" / "o.sqlite"
    box = Outbox(path, 1000, 24)
    client = FakeClient()
    d = delivery(box, client.send)
    assert d.store(events(1))
    box.close()  # what a vanished or unusable file looks like to sqlite: every write raises
    assert d.store(events(2, start=1)) is False
    assert d.held == 2
    with pytest.raises(OSError, match="not writable"):
        d.flush()
    reopened = Outbox(path, 1000, 24)
    d.outbox = reopened
    d.flush()
    assert d.held == 0 and [m.payload for m in reopened.peek()] == [b"e0", b"e1", b"e2"]
    reopened.close()


def test_memory_held_while_the_disk_refuses_is_bounded_and_late_commits_reported(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, 1000, 24)
    late: list[bytes] = []
    d = delivery(box, FakeClient().send, max_held=3, on_stored_late=lambda ms: late.extend(m.payload for m in ms))
    box.close()  # every write now raises
    for i in range(5):
        assert d.store(events(1, start=i)) is False
    assert d.held == 3 and d.dropped == 2 and d.store_failures == 5  # the two oldest never stored
    d.outbox = reopened = Outbox(path, 1000, 24)
    assert d.store(events(1, start=5)) is True  # on disk now, behind the three that waited
    assert late == [b"e2", b"e3", b"e4"]
    assert [m.payload for m in reopened.peek()] == [b"e2", b"e3", b"e4", b"e5"]
    reopened.close()


def test_refused_message_is_retried_then_dead_lettered_without_blocking(outbox: Outbox) -> None:
    client = FakeClient()
    d = delivery(outbox, client.send, max_refusals=2)
    d.store(events(3))
    d.pump(client.link_up)
    first = client.sent[0][0]
    d.refused(first, "Not authorized")  # once: handed over again, after the others
    for mid, topic, *_ in client.sent[1:]:
        d.ack(mid)
    d.flush()
    d.pump(client.link_up)
    assert client.plates() == [b"e0", b"e1", b"e2", b"e0"] and outbox.depth == 1
    d.refused(client.sent[-1][0], "Not authorized")  # twice: dead
    assert outbox.depth == 0 and d.dead_lettered == 1 and d.refusals == 2
    (msg, reason), = outbox.dead_letters()
    assert msg.payload == b"e0" and reason == "refused by the broker 2 times: Not authorized"


def test_larger_than_the_broker_takes_is_dead_lettered_before_sending(outbox: Outbox) -> None:
    client = FakeClient()
    d = delivery(outbox, client.send)
    d.store([NewMessage(PLATE, b"x" * 200, 1, False), *events(2)])
    d.max_packet = 100
    d.pump(client.link_up)
    assert client.plates() == [b"e0", b"e1"] and d.dead_lettered == 1
    assert "larger than the broker's maximum packet size (100 bytes)" in outbox.dead_letters()[0][1]
