"""Read one still image (an upload, a file): bytes -> decoded image -> plates.

The same reading core as the camera pipeline (``reading.PlateReader``), without motion, ROI or
voting: a still has no neighbours to vote with. Used by the HTTP API's ``/api/ocr``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .config import Config
from .mqtt_contract import ocr_payload, plate_payload
from .reading import PlateReader
from .recognizer import Recognizer

# An image larger than this is refused rather than decoded: a 30 kB JPEG can claim
# 60000 x 60000 pixels and would take gigabytes to decode.
MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """Bytes that are not a whole, decodable image; the message says what is wrong."""


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode_image(data: bytes) -> npt.NDArray[np.uint8]:
    """Encoded bytes (JPEG, PNG, BMP, WebP, TIFF...) -> BGR image.

    Raises:
        ImageError: empty, not an image, truncated (JPEG without its end marker, PNG without
            IEND), or larger than MAX_PIXELS.
    """
    if not data:
        raise ImageError("empty image")
    if data[:2] == b"\xff\xd8":
        if b"\xff\xd9" not in data[-4096:]:
            raise ImageError("truncated JPEG: the end-of-image marker is missing")
        size = _jpeg_size(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-64:]:
            raise ImageError("truncated PNG: the IEND chunk is missing")
        size = _png_size(data)
    else:
        size = None
    if size and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"image too large: {size[0]}x{size[1]} pixels (limit {MAX_PIXELS:,})")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ImageError(f"not a decodable image ({len(data)} bytes starting {data[:8]!r})")
    return img


@dataclass
class StillReader:
    """Finds and reads plates in one image through the reading core (``reading.PlateReader``).
    Thread-safe: one image at a time (a still costs tens of milliseconds and the device has few
    cores; a queue is kinder than contention)."""

    reader: PlateReader
    min_confidence: float = 0.0  # plates below it (or of no known format) are listed after the others

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Config, recognizer: Recognizer) -> StillReader:
        """Build from the config, as the daemon's HTTP API reads uploads."""
        return cls(PlateReader.from_config(cfg, recognizer), cfg.recognizer.min_confidence)

    def read(self, image: npt.NDArray[np.uint8], crop: bool = False) -> dict[str, Any]:
        """-> the ``/api/ocr`` answer (``mqtt_contract.ocr_payload``) for the best plate.

        ``crop=True`` reads the whole image as one plate. Otherwise plates are localised; if none
        is found the whole image is tried as a crop (people often upload a tight plate photo).
        Unsure crops are re-read (``recognizer.retry_below``): a still has no frames to vote with.
        """
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        mode = "crop" if crop else "frame"
        with self._lock:
            reads = self.reader.read(image, where="crop" if crop else "find")
            if not reads and not crop:
                reads, mode = self.reader.read(image, where="crop"), "frame, no plate found: read as a crop"
        reads = sorted((p for p in reads if p.text),
                       key=lambda p: (p.format_ok and p.confidence >= self.min_confidence, p.confidence), reverse=True)
        plates = [plate_payload(p.reading, p.box, p.format_ok, p.region) for p in reads]
        return ocr_payload(plates, (time.perf_counter() - t0) * 1000, mode, (w, h))
