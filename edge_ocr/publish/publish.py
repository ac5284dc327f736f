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
worker never hands the same message to paho twice within one process.

Knows nothing of OCR beyond the :class:`PlateEvent` record.
"""

from __future__ import annotations

import logging
import queue
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from paho.mqtt import client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..config import Config, HttpConfig, MqttConfig, OutboxConfig
from ..types import PlateEvent
from .announce import Announcer, StatsFn, to_json
from .delivery import Delivery
from .mqtt_client import connect_problem, make_client
from .mqtt_contract import event_payload, make_topics
from .outbox import NewMessage, Outbox

log = logging.getLogger(__name__)

_PRUNE_INTERVAL_S = 60.0
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def configuration_url(http: HttpConfig, override: str | None = None) -> str | None:
    """The web page's address for Home Assistant's device page: ``override`` if given, else
    ``http://<host>:<port>/`` when the HTTP API is on (this machine's name for a wildcard bind),
    else None. None too for ``http.port: 0``, whose port is only known once bound."""
    if override:
        return override
    if not http.enabled or http.port == 0:
        return None
    host = socket.gethostname() if http.host in _WILDCARD_HOSTS else http.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http.port}/"


class MqttPublisher:
    """Publishes plate events over MQTT with an on-disk outbox. The pipeline's sink.

    Args:
        mqtt: the ``mqtt`` config section (``enabled`` is the caller's business).
        outbox: the ``outbox`` config section.
        device_id: part of every topic and of the Home Assistant ids.
        sw_version: reported in discovery.
        stats_fn: returns the pipeline's stats (see ``mqtt_contract.STATS_SENSORS``); called
            from the worker and paho threads, so it must be thread-safe.
        on_connection_change: called with True/False from paho's thread when the broker
            connection comes up or goes down (a refused connect is not "up").
        reconnect_min_s, reconnect_max_s: back-off between connection attempts.
        configuration_url: linked from Home Assistant's device page (see :func:`configuration_url`).

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
        configuration_url: str | None = None,
    ) -> None:
        self._cfg = mqtt
        self._device_id = device_id
        self._on_change = on_connection_change
        self.topics = make_topics(mqtt.topic_prefix, device_id, mqtt.discovery.prefix)
        self._where = f"{mqtt.host}:{mqtt.port}"
        self._outbox = Outbox.from_config(outbox)
        self._delivery = Delivery(self._outbox, self._send, retained_copies={
            self.topics.plate: self.topics.last_plate, self.topics.crop: self.topics.last_crop})
        self._announcer = Announcer(
            self.topics,
            device_id,
            sw_version,
            qos=mqtt.qos,
            include_crop=mqtt.include_crop,
            discovery=mqtt.discovery.enabled,
            stats_fn=stats_fn,
            delivery_stats=self.stats,
            name=mqtt.discovery.device_name,
            configuration_url=configuration_url,
        )

        self._q: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._state_lock = threading.Lock()
        self._started = self._stopping = False
        self._problem: str | None = None  # last connection problem logged, to log each only once
        self._worker_error: str | None = None
        self._stop_requested = False

        self._client_id = mqtt.client_id or f"edge-ocr-{device_id}"
        self._client = make_client(mqtt, self._client_id, self._announcer.will(), reconnect_min_s, reconnect_max_s)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._worker = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)

    @classmethod
    def from_config(
        cls, cfg: Config, sw_version: str, *, stats_fn: StatsFn | None = None, **kwargs: Any
    ) -> MqttPublisher:
        """A publisher for the whole config: ``mqtt``, ``outbox``, ``device_id``, and ``http`` for
        the device page link. ``kwargs`` go to the constructor."""
        url = configuration_url(cfg.http, cfg.mqtt.discovery.configuration_url)
        return cls(cfg.mqtt, cfg.outbox, cfg.device_id, sw_version, stats_fn=stats_fn, configuration_url=url,
                   **kwargs)

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

    def publish_event(self, event: PlateEvent) -> bool:
        """Commit one plate event to the outbox, then let the worker send it. Never waits for the
        network; waits for one fsync.

        Returns True when the event is on disk; False when it was refused (publisher stopped) or
        the disk refused it (it then waits in memory and is retried; logged).
        """
        payload = to_json(event_payload(event, self._device_id, self._cfg.include_crop, self.topics.crop))
        msgs = [NewMessage(self.topics.plate, payload, self._cfg.qos, False)]
        if self._cfg.include_crop == "raw" and event.crop_jpeg:
            msgs.append(NewMessage(self.topics.crop, bytes(event.crop_jpeg), self._cfg.qos, False))
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
                info.wait_for_publish(max(0.2, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.debug("mqtt: could not publish the last stats and offline status: %s", exc)
        if started:
            self._client.disconnect()
            self._client.loop_stop()
            self._q.put(("stop", None))
            self._worker.join(max(1.0, deadline - time.monotonic()))
        left = self._delivery.queued
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
        (waiting for an ack, in memory or in the outbox), inflight, dropped, connected.
        The retained last-plate and last-crop copies are not counted."""
        d = self._delivery
        return {
            "connected": self._connected.is_set(),
            "published": d.published,
            "acked": d.acked,
            "queued": d.queued,
            "inflight": d.inflight,
            "dropped": d.dropped,
        }

    # ------------------------------------------------------------------ client adapter

    def _publish(self, msg: NewMessage) -> paho.MQTTMessageInfo:
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
            self._report_problem(f"broker {self._where} refused the connection: {reason}")
            return
        self._problem = None
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
        if self._announcer.is_ha_birth(msg.topic, bytes(msg.payload)):
            log.info("mqtt: Home Assistant came online, re-sending discovery and stats")
            discovery = self._announcer.discovery()
            if discovery is not None:
                self._publish(discovery)
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
                self._delivery.flush()
                if self._connected.is_set():
                    self._delivery.pump(self._connected.is_set)
                now = time.monotonic()
                if send_stats or now >= next_stats:
                    if self._connected.is_set():
                        self._publish(self._announcer.stats())
                    next_stats = now + interval
                if now >= next_prune:
                    self._outbox.prune()
                    next_prune = now + _PRUNE_INTERVAL_S
                self._worker_error = None
            except Exception as exc:  # the worker must outlive a full disk or a locked file
                if str(exc) != self._worker_error:
                    log.exception("mqtt: outbox worker error, retrying")
                    self._worker_error = str(exc)
                time.sleep(0.5)
                self._q.put(("retry", None))
            if not self._delivery.held:
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
            if kind == "ack":
                self._delivery.ack(arg)
            elif kind in ("connected", "stats"):
                send_stats = True
            elif kind == "disconnected":
                self._delivery.link_lost()
            elif kind == "sync":
                syncs.append(arg)
            elif kind == "stop":
                self._stop_requested = True
        return send_stats
