"""What the device says about itself: Home Assistant discovery, availability, stats.

Builds messages only; the publisher decides when to send them (see ``publish.MqttPublisher``):
on connect discovery, then ``online``, then stats; when Home Assistant announces itself on
``homeassistant/status`` discovery and stats again; on a clean stop a last stats, then
``offline``. Stats are retained, so a Home Assistant that subscribes after they were sent (it
subscribes to state topics only once discovery made the entities) still gets them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .mqtt_contract import OFFLINE, ONLINE, STATS_SENSORS, Topics, discovery_payload, utc_iso
from .outbox import NewMessage

log = logging.getLogger(__name__)

StatsFn = Callable[[], Mapping[str, Any]]


def to_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON, the encoding of every JSON message."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Announcer:
    """Discovery, availability and stats messages of one device.

    Args:
        topics: the device's topics.
        device_id: part of the Home Assistant ids.
        sw_version: reported in discovery.
        qos: QoS of the plate entities.
        include_crop: ``raw`` adds the image entity; anything else removes it.
        discovery: send Home Assistant discovery at all.
        stats_fn: the pipeline's stats (keys of :data:`STATS_SENSORS` and any others); called
            from the publisher's threads, so it must be thread-safe.
        delivery_stats: the publisher's own counters (queued, dropped, published, acked).
        name: device name in Home Assistant (default ``mqtt_contract.device_name``).
        configuration_url: the web page, linked from Home Assistant's device page.
    """

    def __init__(
        self,
        topics: Topics,
        device_id: str,
        sw_version: str,
        *,
        qos: int,
        include_crop: str,
        discovery: bool,
        stats_fn: StatsFn | None = None,
        delivery_stats: Callable[[], Mapping[str, Any]] | None = None,
        name: str | None = None,
        configuration_url: str | None = None,
    ) -> None:
        self.topics = topics
        self._device_id = device_id
        self._sw_version = sw_version
        self._qos = qos
        self._include_crop = include_crop
        self.discovery_enabled = discovery
        self._stats_fn = stats_fn
        self._delivery_stats = delivery_stats
        self._name = name
        self._configuration_url = configuration_url
        # A timestamp, not only an uptime: Home Assistant shows "started 3 hours ago" and keeps it
        # meaningful across its own restarts.
        self.started_at = utc_iso()

    @property
    def subscriptions(self) -> list[str]:
        """Topics to subscribe to after each connect."""
        return [self.topics.ha_status] if self.discovery_enabled else []

    def will(self) -> NewMessage:
        """The Last Will: ``offline``, retained."""
        return NewMessage(self.topics.status, OFFLINE.encode(), 1, True)

    def online(self) -> NewMessage:
        return NewMessage(self.topics.status, ONLINE.encode(), 1, True)

    def offline(self) -> NewMessage:
        return self.will()

    def discovery(self) -> NewMessage | None:
        """The retained device discovery message, or None when discovery is off."""
        if not self.discovery_enabled:
            return None
        payload = discovery_payload(
            self.topics,
            self._device_id,
            self._sw_version,
            self._qos,
            self._include_crop,
            name=self._name,
            configuration_url=self._configuration_url,
        )
        return NewMessage(self.topics.discovery, to_json(payload), 1, True)

    def cleared(self) -> list[NewMessage]:
        """Retained messages to delete at connect: the last crop unless ``include_crop`` is
        ``raw``, so that a plate image does not stay on the broker once crops are switched off."""
        if self._include_crop == "raw":
            return []
        return [NewMessage(self.topics.last_crop, b"", 1, True)]

    def is_ha_birth(self, topic: str, payload: bytes) -> bool:
        """True for Home Assistant's ``online`` on its status topic (it has just (re)started)."""
        return self.discovery_enabled and topic == self.topics.ha_status and payload.strip().lower() == ONLINE.encode()

    def stats(self) -> NewMessage:
        """The stats message now: every announced key (null when unknown), the pipeline's own,
        the publisher's counters, ``started_at`` and ``time_utc``. Retained, QoS 0."""
        data: dict[str, Any] = {s.key: None for s in STATS_SENSORS}
        data["started_at"] = self.started_at
        if self._stats_fn is not None:
            try:
                data.update(self._stats_fn())
            except Exception:
                log.exception("mqtt: stats callable failed")
        if self._delivery_stats is not None:
            mine = self._delivery_stats()
            data.update(
                outbox_depth=mine["queued"],
                outbox_dropped=mine["dropped"],
                mqtt_published=mine["published"],
                mqtt_acked=mine["acked"],
                outbox_held=mine.get("held", 0),
                dead_lettered=mine.get("dead_lettered", 0),
            )
        data["time_utc"] = utc_iso()
        return NewMessage(self.topics.stats, to_json(data), 0, True)
