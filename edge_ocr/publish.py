"""MQTT sink: plate events, availability, stats and Home Assistant discovery, through an outbox.

Threads, and why there are three:

* the caller (the pipeline) only serialises the event and puts it on an in-memory queue, so a
  publish costs well under a millisecond there;
* the ``mqtt-outbox`` worker writes queued messages to the SQLite outbox (an fsync per batch),
  hands stored messages to paho in order while connected, deletes them when paho reports the
  broker's acknowledgement (``on_publish``), and sends the periodic stats;
* paho's own network thread (``loop_start``) connects, reconnects with back-off and runs the
  callbacks, which only set flags and post to the worker's queue.

Delivery is at least once: a message is deleted from the outbox only after its PUBACK, so a crash
between the broker receiving it and the outbox forgetting it resends it. Subscribers de-duplicate
on ``event_id``. Paho keeps unacknowledged QoS 1/2 messages across reconnects and resends them
first, so the worker never hands the same message to paho twice within one process.

Knows nothing of OCR beyond the :class:`PlateEvent` record.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .config import MqttConfig, OutboxConfig
from .mqtt_contract import (
    OFFLINE,
    ONLINE,
    STATS_SENSORS,
    discovery_payload,
    event_payload,
    make_topics,
    utc_iso,
)
from .outbox import NewMessage, Outbox
from .types import PlateEvent

log = logging.getLogger(__name__)

_WINDOW = 100  # outbox messages handed to paho at a time; the rest wait on disk, not in RAM
_PRUNE_INTERVAL_S = 60.0

StatsFn = Callable[[], Mapping[str, Any]]


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ----------------------------------------------------------------------------- publisher


class MqttPublisher:
    """Publishes plate events over MQTT with an on-disk outbox. The pipeline's sink.

    Args:
        mqtt: the ``mqtt`` config section (``enabled`` is the caller's business).
        outbox: the ``outbox`` config section.
        device_id: part of every topic and of the Home Assistant ids.
        sw_version: reported in discovery.
        stats_fn: returns the pipeline's stats (see :data:`STATS_SENSORS`); called from the
            worker thread every ``mqtt.stats_interval_s``, so it must be thread-safe.
        on_connection_change: called with True/False from paho's thread when the broker
            connection comes up or goes down (a refused connect is not "up").
        reconnect_min_s, reconnect_max_s: back-off between connection attempts.

    Raises:
        OSError: the outbox directory, password file or a TLS file cannot be read.
    """

    def __init__(
        self,
        mqtt: MqttConfig,
        outbox: OutboxConfig,
        device_id: str,
        sw_version: str,
        *,
        stats_fn: StatsFn | None = None,
        on_connection_change: Callable[[bool], None] | None = None,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
    ) -> None:
        self._cfg = mqtt
        self._device_id = device_id
        self._sw_version = sw_version
        self._stats_fn = stats_fn
        self._on_change = on_connection_change
        self.topics = make_topics(mqtt.topic_prefix, device_id, mqtt.discovery.prefix)
        self._where = f"{mqtt.host}:{mqtt.port}"
        self._outbox = Outbox.from_config(outbox)

        self._q: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._state_lock = threading.Lock()
        self._started = self._stopping = False
        self._problem: str | None = None  # last connection problem logged, to log each only once
        self._worker_error: str | None = None
        # Counters. Only the worker writes them, except _accepted/_rejected (callers, under the lock).
        self._accepted = self._stored = self._published = self._acked = self._rejected = 0
        # Worker-thread state: paho mid -> (outbox seq, qos), and how far the outbox was read.
        self._inflight: dict[int, tuple[int, int]] = {}
        self._inflight_seqs: set[int] = set()
        self._cursor = 0
        self._unsaved: list[NewMessage] = []
        self._acks: list[int] = []
        self._stop_requested = False

        self._client_id = mqtt.client_id or f"edge-ocr-{device_id}"
        self._client = self._make_client(reconnect_min_s, reconnect_max_s)
        self._worker = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)

    def _make_client(self, reconnect_min_s: float, reconnect_max_s: float) -> paho.Client:
        cfg = self._cfg
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.resolved_password())
        if cfg.tls.enabled:
            client.tls_set(
                ca_certs=cfg.tls.ca_file,
                certfile=cfg.tls.cert_file,
                keyfile=cfg.tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if cfg.tls.insecure:
                client.tls_insecure_set(True)
        client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

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
            self._client_id,
            "on" if self._cfg.tls.enabled else "off",
            self._outbox.path,
            self._outbox.depth,
        )
        self._client.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        self._client.loop_start()

    def publish_event(self, event: PlateEvent) -> None:
        """Queue one plate event for delivery. Never blocks on disk or network."""
        payload = _json(event_payload(event, self._device_id, self._cfg.include_crop, self.topics.crop))
        msgs = [NewMessage(self.topics.plate, payload, self._cfg.qos, False)]
        if self._cfg.include_crop == "raw" and event.crop_jpeg:
            msgs.append(NewMessage(self.topics.crop, bytes(event.crop_jpeg), self._cfg.qos, False))
        with self._state_lock:
            if self._stopping:
                self._rejected += len(msgs)
                log.warning("mqtt: publisher stopped, event %s not queued", event.event_id)
                return
            self._accepted += len(msgs)
            self._q.put(("msgs", msgs))

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until every event queued so far is in the outbox file. False on timeout."""
        if not self._worker.is_alive():
            return self._accepted == self._stored
        done = threading.Event()
        self._q.put(("sync", done))
        return done.wait(timeout) and self._accepted == self._stored

    def stop(self, timeout: float = 5.0) -> bool:
        """Deliver what the broker will take within ``timeout`` s, publish ``offline``, disconnect.

        What is left stays in the outbox for the next start. Returns True if the outbox is empty.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._state_lock:
            if self._stopping:
                return self._outbox.depth == 0
            self._stopping = True
            started = self._started
        if not started:
            self._worker.start()  # only to store events queued before start()
        self.sync(max(0.5, deadline - time.monotonic()))
        if started and self._connected.is_set():
            while self._outbox.depth and self._connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.02)
            try:
                info = self._client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
                info.wait_for_publish(max(0.2, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.debug("mqtt: could not publish offline status: %s", exc)
        if started:
            self._client.disconnect()
            self._client.loop_stop()
        self._q.put(("stop", None))
        self._worker.join(max(1.0, deadline - time.monotonic()))
        left = self._outbox.depth + len(self._unsaved)
        self._outbox.close()
        if left:
            log.warning(
                "mqtt: stopped with %d message(s) undelivered; kept in %s for the next start", left, self._outbox.path
            )
        else:
            log.info("mqtt: stopped, everything delivered")
        return left == 0

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection."""
        return self._connected.is_set()

    def stats(self) -> dict[str, int | bool]:
        """Counters since construction: published (handed to the broker), acked, queued
        (waiting for an ack, in memory or in the outbox), inflight, dropped, connected."""
        return {
            "connected": self._connected.is_set(),
            "published": self._published,
            "acked": self._acked,
            "queued": self._outbox.depth + (self._accepted - self._stored),
            "inflight": len(self._inflight),
            "dropped": self._outbox.dropped_total + self._rejected,
        }

    # ------------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:
            # Not connected: paho closes the socket and retries with back-off.
            self._report_problem(f"broker {self._where} refused the connection: {reason}")
            return
        self._problem = None
        if self._stopping:
            return  # a connect that raced stop(): announcing "online" now would outlive us
        log.info("mqtt: connected to %s", self._where)
        if self._cfg.discovery.enabled:
            client.subscribe(self.topics.ha_status, qos=1)
            self._publish_discovery()
        client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        self._connected.set()
        self._q.put(("connected", None))
        self._notify(True)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError`, so the exception is still current.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError):
            self._report_problem(f"TLS handshake with {self._where} failed: {exc}")
        else:
            self._report_problem(f"cannot connect to {self._where}: {exc or 'connection failed'}")

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
        self._q.put(("ack", mid))

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.topics.ha_status and msg.payload.strip().lower() == ONLINE.encode():
            log.info("mqtt: Home Assistant came online, re-sending discovery")
            self._publish_discovery()
            self._q.put(("stats", None))

    def _report_problem(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("mqtt: %s; retrying with back-off", problem)
            self._problem = problem
        else:
            log.debug("mqtt: %s", problem)

    def _notify(self, up: bool) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(up)
        except Exception:
            log.exception("mqtt: on_connection_change hook failed")

    def _publish_discovery(self) -> None:
        payload = discovery_payload(
            self.topics, self._device_id, self._sw_version, self._cfg.qos, self._cfg.include_crop
        )
        self._client.publish(self.topics.discovery, _json(payload), qos=1, retain=True)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        interval = self._cfg.stats_interval_s
        next_stats = time.monotonic() + interval
        next_prune = time.monotonic() + _PRUNE_INTERVAL_S
        syncs: list[threading.Event] = []
        while not self._stop_requested:
            wait = max(0.0, min(next_stats, next_prune) - time.monotonic())
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
            try:
                self._write()
                if self._connected.is_set():
                    self._pump()
                now = time.monotonic()
                if send_stats or now >= next_stats:
                    self._publish_stats()
                    next_stats = now + interval
                if now >= next_prune:
                    self._outbox.prune()
                    next_prune = now + _PRUNE_INTERVAL_S
                self._worker_error = None
            except Exception as exc:  # the worker must outlive a full disk or a locked file
                if str(exc) != self._worker_error:
                    log.exception("mqtt: outbox worker error, retrying")
                    self._worker_error = str(exc)
                self._trim_unsaved()
                time.sleep(0.5)
                self._q.put(("retry", None))
            if not self._unsaved:
                for done in syncs:
                    done.set()
                syncs.clear()
        for done in syncs:
            done.set()

    def _take(self, batch: list[tuple[str, Any]], syncs: list[threading.Event]) -> bool:
        """Fold a batch of commands into the worker's state. Returns True to send stats now.

        No I/O here, so a failing disk cannot lose an acknowledgement or a stop request.
        """
        send_stats = False
        for kind, arg in batch:
            if kind == "msgs":
                self._unsaved.extend(arg)
            elif kind == "ack":
                entry = self._inflight.pop(arg, None)
                if entry is not None:
                    self._inflight_seqs.discard(entry[0])
                    self._acks.append(entry[0])
            elif kind in ("connected", "stats"):
                send_stats = True
            elif kind == "disconnected":
                self._forget_qos0()
            elif kind == "sync":
                syncs.append(arg)
            elif kind == "stop":
                self._stop_requested = True
        return send_stats

    def _trim_unsaved(self) -> None:
        # While the disk refuses writes, what waits in memory is bounded like the file would be.
        excess = len(self._unsaved) - self._outbox.max_events
        if excess > 0:
            del self._unsaved[:excess]
            self._stored += excess
            self._rejected += excess
            log.warning("mqtt: outbox not writable, dropped %d message(s) held in memory", excess)

    def _write(self) -> None:
        if self._unsaved:
            self._outbox.add_many(self._unsaved)
            self._stored += len(self._unsaved)
            self._unsaved = []
        if self._acks:
            self._outbox.remove(self._acks)
            self._acked += len(self._acks)
            self._acks = []

    def _forget_qos0(self) -> None:
        # Paho drops unsent QoS 0 packets on disconnect (QoS 1/2 it keeps and resends), so those
        # go back to the outbox's pending range to be handed over again after reconnecting.
        lost = [(mid, seq) for mid, (seq, qos) in self._inflight.items() if qos == 0]
        for mid, seq in lost:
            del self._inflight[mid]
            self._inflight_seqs.discard(seq)
        if lost:
            self._cursor = min(self._cursor, min(seq for _, seq in lost) - 1)

    def _pump(self) -> None:
        """Hand stored messages to paho, oldest first, keeping at most _WINDOW unacknowledged."""
        while self._connected.is_set():
            room = _WINDOW - len(self._inflight)
            if room <= 0:
                return
            rows = self._outbox.peek(after_seq=self._cursor, limit=room)
            if not rows:
                return
            for row in rows:
                if row.seq in self._inflight_seqs:
                    self._cursor = row.seq
                    continue
                info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
                queued_by_paho = info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and row.qos > 0
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not queued_by_paho:
                    return  # not taken; the next wake-up tries again from the same place
                self._inflight[info.mid] = (row.seq, row.qos)
                self._inflight_seqs.add(row.seq)
                self._cursor = row.seq
                self._published += 1

    def _publish_stats(self) -> None:
        if not self._connected.is_set():
            return
        data: dict[str, Any] = {s.key: None for s in STATS_SENSORS}
        if self._stats_fn is not None:
            try:
                data.update(self._stats_fn())
            except Exception:
                log.exception("mqtt: stats callable failed")
        mine = self.stats()
        data.update(
            outbox_depth=mine["queued"],
            outbox_dropped=mine["dropped"],
            mqtt_published=mine["published"],
            mqtt_acked=mine["acked"],
            time_utc=utc_iso(),
        )
        self._client.publish(self.topics.stats, _json(data), qos=0, retain=False)
