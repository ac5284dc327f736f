"""Shared records passed between stages. Data only; no logic."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


@dataclass(frozen=True)
class KnownMatch:
    """The entry a text matched. ``plate`` is the entry's plate or pattern as configured;
    ``distance`` the edits beyond look-alike swaps (0 unless ``kind`` is ``near``)."""

    name: str
    plate: str
    kind: str
    distance: int


@dataclass(frozen=True)
class Frame:
    """One captured image. ``ts`` is time.monotonic(); ``wall`` is time.time() at capture."""

    ts: float
    wall: float
    image: npt.NDArray[np.uint8]  # BGR, HxWx3
    index: int = 0


@dataclass(frozen=True)
class FrameRecord:
    """What the stages need of one frame, computed once (``frames.frame_record``).

    ``image`` is the full-resolution BGR frame that crops are cut from; ``grey`` is the plane the
    motion gate and the localiser work on: picamera2's lores Y plane when the source delivered
    one (smaller, and free), otherwise ``image`` converted to grey once.
    """

    ts: float
    wall: float
    image: npt.NDArray[np.uint8]
    grey: npt.NDArray[np.uint8]
    index: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of ``image``."""
        return self.image.shape[1], self.image.shape[0]


@dataclass(frozen=True)
class EventSource:
    """What an event needs of the frame its best reading came from. The voter holds one per
    reading, so it must stay small: the crop, never the frame."""

    crop: npt.NDArray[np.uint8] | None
    wall: float
    frame_size: tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Reading:
    """The recogniser's output for one crop."""

    text: str
    confidence: float  # overall: the product of the character confidences (edge_ocr.ctc)
    char_confidences: tuple[float, ...] = ()


@dataclass(frozen=True)
class PlateEvent:
    """One published plate: the voted result of a track of readings."""

    event_id: str
    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    camera: str
    time_utc: str  # ISO-8601, e.g. 2026-11-25T20:13:29.123Z
    frame_size: tuple[int, int]  # (width, height)
    box: Box
    model: str
    model_version: str
    votes: int = 1
    region: str | None = None
    crop_jpeg: bytes | None = field(default=None, repr=False)
    known: KnownMatch | None = None  # the known_plates entry it matched
