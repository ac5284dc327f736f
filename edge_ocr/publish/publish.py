"""MQTT sink: the pipeline's plate events go out through an outbox; the device announces itself.

Three parts, wired here:

* :class:`delivery.Delivery` — outbox to client, in order, at least once (no broker library);
* :class:`announce.Announcer` — Home Assistant discovery, availability, stats messages;
* :func:`mqtt_client.make_client` — the paho client with credentials, TLS and the Last Will.

Threads, and why there are three:

* the caller (the pipeline) serialises the event and commits it to the SQLite outbox before
  :meth:`MqttPublisher.publish_event` returns (one fsync, a few ms), so whatever the caller logs
  or counts afterwards survives a SIGKILL;
* the ``mqtt-outbox`` worker hands stored messages to paho in order while connected, deletes
  them when paho reports the broker's acknowledgement, and sends the periodic stats;
* paho's own network thread (``loop_start``) connects, reconnects with back-off and runs the
  callbacks, which only set flags, publish the announcements and post to the worker's queue.

Paho keeps unacknowledged QoS 1/2 messages across reconnects and resends them first, so the
worker never hands the same message to paho twice within one process (a message the broker
refused is handed over again, see ``delivery``).

While the disk refuses writes, :meth:`MqttPublisher.publish_event` returns False and the event
waits in memory; the worker keeps delivering what is already on disk and commits the waiting
events as soon as it can, logging each then (``event ... stored late``).

Knows nothing of OCR beyond the :class:`PlateEvent` record.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paho.mqtt import client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..types import PlateEvent
from .announce import Announcer, StatsFn, to_json
from .delivery import Delivery, packet_size
from .mqtt_client import Broker, connect_problem, fall_back_to_311, make_client, refresh_credentials
from .mqtt_contract import event_payload, make_topics
from .outbox import NewMessage, Outbox, OutboxSettings

log = logging.getLogger(__name__)

_PRUNE_INTERVAL_S = 60.0
_PROBLEM_EVERY_S = 60.0  # a connection problem that persists is logged again this often


@dataclass(frozen=True)
class Publishing:
    """What is published and how (``stages.publishing`` makes it from the ``mqtt`` section and
    ``device_id``)."""

    device_id: str  # part of every topic and of the Home Assistant ids
    topic_prefix: str
    qos: int  # of plate events
    include_crop: str  # "off", "base64" or "raw"
    stats_interval_s: float
    max_refusals: int  # refusals by the broker before a message is dead-lettered
    discovery: bool  # Home Assistant discovery on
    discovery_prefix: str
    device_name: str | None  # Home Assistant's device name; None: derived from device_id
    configuration_url: str | None  # linked from Home Assistant's device page


class MqttPublisher:
    """Publishes plate events over MQTT with an on-disk outbox. The pipeline's sink.

    Args:
        broker: where and how to connect.
        outbox: the outbox's file and bounds.
        publishing: what is published and how.
        sw_version: reported in discovery.
        stats_fn: returns the pipeline's stats (see ``mqtt_contract.STATS_SENSORS``); called
            from the worker and paho threads, so it must be thread-safe.
        on_connection_change: called with True/False from paho's thread when the broker
            connection comes up or goes down (a refused connect is not "up").

    Raises:
        OSError: the outbox directory, password file or a TLS file cannot be read.
    """

    def __init__(
        self,
        broker: Broker,
        outbox: OutboxSettings,
        publishing: Publishing,
        sw_version: str,
        *,
        stats_fn: StatsFn | None = None,
        on_connection_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._broker = broker
        self._opts = pub = publishing
        self._on_change = on_connection_change
        self.topics = make_topics(pub.topic_prefix, pub.device_id, pub.discovery_prefix)
        self._where = broker.where
        self._outbox = Outbox(outbox.path, outbox.max_events, outbox.max_age_h)
        self._delivery = Delivery(
            self._outbox, self._send,
            retained_copies={self.topics.plate: self.topics.last_plate, self.topics.crop: self.topics.last_crop},
            max_held=outbox.max_held, max_refusals=pub.max_refusals, on_stored_late=self._stored_late)
        self._announcer = Announcer(
            self.topics,
            pub.device_id,
            sw_version,
            qos=pub.qos,
            include_crop=pub.include_crop,
            discovery=pub.discovery,
            stats_fn=stats_fn,
            delivery_stats=self.stats,
            name=pub.device_name,
            configuration_url=pub.configuration_url,
        )

        self._q: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._state_lock = threading.Lock()
        self._started = self._stopping = False
        self._problem: str | None = None  # last connection problem logged, and when, how often since
        self._problem_logged = float("-inf")
        self._problem_count = 0
        self._worker_error: str | None = None
        self._stored_late_events = 0
        self._too_large: set[str] = set()  # announcement topics already reported as too large
        self._refused: list[tuple[int, str]] = []  # worker only: (message id, reason) to settle
        self._stop_requested = False

        self._client = make_client(broker, self._announcer.will())
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._worker = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)

    # ------------------------------------------------------------------ sink interface

    def start(self) -> None:
        """Start the worker and the network thread; connecting happens in the background."""
        with self._state_lock:
            if self._started or self._stopping:
                return
            self._started = True
        self._worker.start()
        log.info(
            "mqtt: connecting to %s as %s (tls %s), outbox %s holds %d message(s)",
            self._where,
            self._broker.client_id,
            "on" if self._broker.tls else "off",
            self._outbox.path,
            self._outbox.depth,
        )
        b = self._broker
        self._client.connect_async(b.host, b.port, keepalive=b.keepalive_s, clean_start=True)
        self._client.loop_start()

    def publish_event(self, event: PlateEvent) -> bool:
        """Commit one plate event to the outbox, then let the worker send it. Never waits for the
        network; waits for one fsync.

        Returns True when the event is on disk; False when it was refused (publisher stopped) or
        the disk refused it (it then waits in memory, is committed as soon as the disk allows and
        logged then; until that line it must not be counted as produced).
        """
        opts = self._opts
        payload = to_json(event_payload(event, opts.device_id, opts.include_crop, self.topics.crop))
        msgs = [NewMessage(self.topics.plate, payload, opts.qos, False)]
        if opts.include_crop == "raw" and event.crop_jpeg:
            msgs.append(NewMessage(self.topics.crop, bytes(event.crop_jpeg), opts.qos, False))
        with self._state_lock:  # stop() cannot close the outbox under this commit
            if self._stopping:
                self._delivery.reject(len(msgs))
                log.warning("mqtt: publisher stopped, event %s not stored", event.event_id)
                return False
            stored = self._delivery.store(msgs)
        self._q.put(("wake", None))
        return stored

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until every event given so far is in the outbox file. False on timeout."""
        if not self._worker.is_alive():
            return self._delivery.held == 0
        done = threading.Event()
        self._q.put(("sync", done))
        return done.wait(timeout) and self._delivery.held == 0

    def stop(self, timeout: float = 5.0) -> bool:
        """Deliver what the broker will take within ``timeout`` s, send the last stats, publish
        ``offline``, disconnect. What is left stays in the outbox for the next start.

        Returns True if the outbox is empty.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._state_lock:
            if self._stopping:
                return self._delivery.queued == 0
            self._stopping = True
            started = self._started
        if started:
            self.sync(max(0.5, deadline - time.monotonic()))
        else:
            try:  # no worker ran: one more try for messages the disk refused earlier
                self._delivery.flush()
            except (sqlite3.Error, OSError) as exc:
                log.debug("mqtt: outbox still not writable at stop: %s", exc)
        if started and self._connected.is_set():
            while self._delivery.queued and self._connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.02)
            try:
                self._publish(self._announcer.stats())
                info = self._publish(self._announcer.offline())
                if info is not None:
                    info.wait_for_publish(max(0.2, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.debug("mqtt: could not publish the last stats and offline status: %s", exc)
        if started:
            self._client.disconnect()
            self._client.loop_stop()
            self._q.put(("stop", None))
            self._worker.join(max(1.0, deadline - time.monotonic()))
        left, held = self._outbox.depth, self._delivery.held
        self._outbox.close()
        if held:
            log.error("mqtt: stopped with %d message(s) the outbox never took (%s): lost, they were in memory only",
                      held, self._delivery.disk_error)
        if left:
            log.warning(
                "mqtt: stopped with %d message(s) undelivered; kept in %s for the next start", left, self._outbox.path
            )
        elif not held:
            log.info("mqtt: stopped, everything delivered")
        return left + held == 0

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection."""
        return self._connected.is_set()

    def stats(self) -> dict[str, int | bool]:
        """Counters since construction: published (handed to the broker), acked, queued
        (waiting for an ack, in memory or in the outbox), inflight, dropped, connected; held (in
        memory now, the disk refusing them), store_failures (commits the disk refused), refused
        (publishes the broker refused), dead_lettered, stored_late (plate events the disk took
        only after refusing them: produced then, not counted by the pipeline). The retained last-plate and last-crop
        copies are not counted."""
        d = self._delivery
        return {
            "connected": self._connected.is_set(),
            "published": d.published,
            "acked": d.acked,
            "queued": d.queued,
            "inflight": d.inflight,
            "dropped": d.dropped,
            "held": d.held,
            "store_failures": d.store_failures,
            "refused": d.refusals,
            "dead_lettered": d.dead_lettered,
            "stored_late": self._stored_late_events,
        }

    def _stored_late(self, messages: list[NewMessage]) -> None:
        # Events that waited in memory are produced now: the one line per event that says so.
        for msg in messages:
            if msg.topic == self.topics.plate:
                self._stored_late_events += 1
                ev = json.loads(msg.payload)
                log.info("event %s stored late (event_id %s): the outbox refused it at first",
                         ev.get("text"), ev.get("event_id"))

    # ------------------------------------------------------------------ client adapter

    def _publish(self, msg: NewMessage) -> paho.MQTTMessageInfo | None:
        # Announcements are not stored, so a broker's size limit cannot dead-letter them: skipped
        # (sending one would make the broker drop the connection at every connect).
        size, limit = packet_size(msg.topic, msg.payload, msg.qos), self._delivery.max_packet
        if limit is not None and size > limit:
            if msg.topic not in self._too_large:
                log.error("mqtt: %s not sent: %d bytes, larger than the broker's maximum packet size (%d bytes)",
                          msg.topic, size, limit)
                self._too_large.add(msg.topic)
            return None
        return self._client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool) -> int | None:
        # Delivery's view of paho: the message id when paho took the message, None when not.
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        queued_by_paho = info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not queued_by_paho:
            return None
        return int(info.mid)

    # ------------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:
            # Not connected: paho closes the socket and retries with back-off.
            if fall_back_to_311(client, reason):
                log.warning("mqtt: broker %s does not speak MQTT 5 (%s); using 3.1.1, which cannot report "
                            "refused publishes", self._where, reason)
                return
            self._report_problem(f"broker {self._where} refused the connection: {reason}")
            self._refresh_credentials()
            return
        self._problem, self._problem_count = None, 0
        # MQTT 5: what the broker takes; a larger message would make it drop the connection, forever.
        self._delivery.max_packet = getattr(props, "MaximumPacketSize", None)
        if self._stopping:
            return  # a connect that raced stop(): announcing "online" now would outlive us
        log.info("mqtt: connected to %s", self._where)
        for topic in self._announcer.subscriptions:
            client.subscribe(topic, qos=1)
        discovery = self._announcer.discovery()
        if discovery is not None:
            self._publish(discovery)
        for msg in self._announcer.cleared():
            self._publish(msg)
        self._publish(self._announcer.online())
        self._connected.set()
        self._q.put(("connected", None))  # the worker sends stats, then the backlog
        self._notify(True)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError`, so the exception is still current.
        self._report_problem(connect_problem(self._where, sys.exc_info()[1]))
        self._refresh_credentials()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._q.put(("disconnected", None))
        if not self._stopping:
            self._refresh_credentials()
        if not was_connected:
            return
        if self._stopping:
            log.info("mqtt: disconnected from %s", self._where)
        else:
            log.warning(
                "mqtt: lost connection to %s (%s); messages stay in the outbox, reconnecting", self._where, reason
            )
        self._notify(False)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:  # MQTT 5: the broker did not take it (ACL, quota, size)
            self._q.put(("refused", (mid, f"{reason} (reason code 0x{reason.value:02X})")))
        else:
            self._q.put(("ack", mid))

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if self._announcer.is_ha_birth(msg.topic, bytes(msg.payload)):
            log.info("mqtt: Home Assistant came online, re-sending discovery and stats")
            discovery = self._announcer.discovery()
            if discovery is not None:
                self._publish(discovery)
            self._q.put(("stats", None))

    def _report_problem(self, problem: str) -> None:
        # Every refusal is a warning, but a broker that keeps refusing gets one line a minute.
        self._problem_count += 1
        now = time.monotonic()
        if problem == self._problem and now - self._problem_logged < _PROBLEM_EVERY_S:
            return
        again = f" ({self._problem_count} attempts so far)" if problem == self._problem else ""
        log.warning("mqtt: %s%s; retrying with back-off", problem, again)
        self._problem, self._problem_logged = problem, now

    def _refresh_credentials(self) -> None:
        # Before paho's next attempt: a password or certificate fixed on disk is used at once.
        try:
            refresh_credentials(self._client, self._broker)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._report_problem(f"cannot re-read the password or TLS files: {exc}")

    def _notify(self, up: bool) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(up)
        except Exception:
            log.exception("mqtt: on_connection_change hook failed")

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        interval = self._opts.stats_interval_s
        self._next_stats = time.monotonic() + interval
        self._next_prune = time.monotonic() + _PRUNE_INTERVAL_S
        syncs: list[threading.Event] = []
        while not self._stop_requested:
            wait = max(0.0, min(self._next_stats, self._next_prune) - time.monotonic())
            try:
                batch = [self._q.get(timeout=wait)]
            except queue.Empty:
                batch = []
            while batch and len(batch) < 1000:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            send_stats = self._take(batch, syncs)
            # Each step on its own: what is on disk goes out even while new messages cannot be stored.
            failed = self._step(self._settle)
            if self._connected.is_set():
                failed = self._step(lambda: self._delivery.pump(self._connected.is_set)) or failed
            failed = self._step(functools.partial(self._periodic, send_stats)) or failed
            if failed:  # the worker must outlive a full disk or a locked file: retry shortly
                time.sleep(0.5)
                self._q.put(("retry", None))
            else:
                self._worker_error = None
            if not self._delivery.held:
                for done in syncs:
                    done.set()
                syncs.clear()
        for done in syncs:
            done.set()

    def _periodic(self, send_stats: bool) -> None:
        now = time.monotonic()
        if send_stats or now >= self._next_stats:
            if self._connected.is_set():
                self._publish(self._announcer.stats())
            self._next_stats = now + self._opts.stats_interval_s
        if now >= self._next_prune:
            self._outbox.prune()
            self._next_prune = now + _PRUNE_INTERVAL_S

    def _settle(self) -> None:
        # Refusals first (each may move a message to the dead-letter table), then commit and delete.
        while self._refused:
            mid, reason = self._refused[0]
            self._delivery.refused(mid, reason)
            self._refused.pop(0)
        self._delivery.flush()

    def _step(self, fn: Callable[[], None]) -> bool:
        """Run one worker step; True if it failed (logged)."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - see _report_worker_error
            return self._report_worker_error(exc)
        return False

    def _report_worker_error(self, exc: Exception) -> bool:
        # A held message the disk refused is reported by Delivery itself (rate-limited, with the cause).
        if isinstance(exc, OSError) and self._delivery.held:
            return True
        if str(exc) != self._worker_error:
            log.error("mqtt: outbox worker error, retrying: %s: %s", type(exc).__name__, exc)
            self._worker_error = str(exc)
        return True

    def _take(self, batch: list[tuple[str, Any]], syncs: list[threading.Event]) -> bool:
        """Fold a batch of commands into the worker's state. Returns True to send stats now.

        No I/O here, so a failing disk cannot lose an acknowledgement or a stop request.
        """
        send_stats = False
        for kind, arg in batch:
            if kind == "ack":
                self._delivery.ack(arg)
            elif kind == "refused":
                self._refused.append(arg)
            elif kind in ("connected", "stats"):
                send_stats = True
            elif kind == "disconnected":
                self._delivery.link_lost()
            elif kind == "sync":
                syncs.append(arg)
            elif kind == "stop":
                self._stop_requested = True
        return send_stats
