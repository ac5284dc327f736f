"""Vote results -> plate events: the one place an event is made (its id, the crop as JPEG, the
model, the region the reader found for the text and the known plate it matches). Built once per
stage set (``stages.Stages.events``) from plain values. The event's JSON is
``mqtt_contract.event_payload``'s alone (it rounds the confidences), for MQTT and ``/api/events``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import cv2

from .decide.known_plates import KnownPlates
from .decide.voting import VoteResult
from .publish.mqtt_contract import utc_iso
from .read.formats import FormatRules
from .read.reading import plate_aspect
from .types import EventSource, PlateEvent


class EventMaker:
    """Makes the ``PlateEvent`` of a vote result.

    Args:
        camera: the camera's name (``camera.name``).
        model, model_version: the recogniser model's, from its metadata.
        with_crop: encode the crop as JPEG into the event (``mqtt.include_crop`` is not ``off``).
        formats: the enabled plate formats, which say the region of a fused text no reading had.
        known: the known plates an event is matched against.
    """

    def __init__(self, camera: str, model: str, model_version: str, with_crop: bool, formats: FormatRules,
                 known: KnownPlates) -> None:
        self.camera = camera
        self.model = model
        self.model_version = model_version
        self.with_crop = with_crop
        self.formats = formats
        self.known = known

    def event(self, r: VoteResult, wall_clock: Callable[[], float]) -> PlateEvent:
        """The event of ``r``; ``wall_clock`` dates it when its frame's time is unknown."""
        src = r.payload if isinstance(r.payload, EventSource) else EventSource(None, wall_clock(), (0, 0))
        crop_jpeg = None
        if self.with_crop and src.crop is not None:
            ok, buf = cv2.imencode(".jpg", src.crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
            crop_jpeg = buf.tobytes() if ok else None
        return PlateEvent(
            event_id=uuid.uuid4().hex,
            text=r.text,
            confidence=float(r.confidence),
            char_confidences=tuple(float(c) for c in r.char_confidences),
            camera=self.camera,
            time_utc=utc_iso(src.wall),
            frame_size=src.frame_size,
            box=tuple(int(v) for v in (r.box or (0, 0, 0, 0))),  # type: ignore[arg-type]
            model=self.model,
            model_version=self.model_version,
            votes=r.votes,
            # the reader's region, carried with the agreeing reading; a fused text that no reading
            # had (no votes: fused character by character) is matched to a format here, once
            region=r.region if r.votes else self.formats.region_of(r.text, plate_aspect(src.crop, r.box)),
            crop_jpeg=crop_jpeg,
            known=self.known.match(r.text),
        )
