"""Read one still image (an upload, a file): bytes -> decoded image -> plates.

The same localiser, recogniser and format rules as the camera pipeline, without motion,
ROI or voting: a still has no neighbours to vote with. Used by the HTTP API's ``/api/ocr``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .formats import FormatRules
from .localize import Localizer
from .recognizer import Recognizer
from .roi import Roi
from .types import Reading

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


def _chars(r: Reading) -> list[dict[str, Any]]:
    return [{"char": c, "confidence": round(float(p), 4)} for c, p in zip(r.text, r.char_confidences)]


@dataclass
class StillReader:
    """Finds and reads plates in one image. Thread-safe: one image at a time (a still costs
    tens of milliseconds and the device has few cores; a queue is kinder than contention)."""

    recognizer: Recognizer
    localizer: Localizer
    formats: FormatRules
    min_confidence: float = 0.0
    retry_below: float = 0.0  # recognizer.retry_below: re-read unsure crops from re-cut copies

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def read(self, image: npt.NDArray[np.uint8], crop: bool = False) -> dict[str, Any]:
        """-> {"text", "confidence", "chars", "ms", "mode", "plates": [...]} for the best plate.

        ``crop=True`` reads the whole image as one plate. Otherwise plates are localised; if none
        is found the whole image is tried as a crop (people often upload a tight plate photo).
        """
        t0 = time.perf_counter()
        with self._lock:
            h, w = image.shape[:2]
            mode = "crop"
            if crop:
                boxes, crops = [(0, 0, w, h)], [image]
            else:
                cands = self.localizer.find(image, Roi.full().with_frame_size((w, h)))
                boxes, crops = [c.box for c in cands], [c.crop for c in cands]
                mode = "frame"
                if not cands:
                    boxes, crops, mode = [(0, 0, w, h)], [image], "frame, no plate found: read as a crop"
            readings = self.recognizer.recognize(crops, retry_below=self.retry_below)
        plates = []
        for box, r in zip(boxes, readings):
            if not r.text:
                continue
            fixed = self.formats.normalize(r.text)
            text = fixed if fixed is not None and len(fixed) == len(r.text) else r.text
            plates.append({"text": text, "confidence": round(float(r.confidence), 4), "chars": _chars(r),
                           "box": [int(v) for v in box], "format_ok": fixed is not None,
                           "region": self.formats.region_of(text, box[2] / box[3] if box[3] else None)})
        plates.sort(key=lambda p: (p["format_ok"] and p["confidence"] >= self.min_confidence, p["confidence"]),
                    reverse=True)
        best = plates[0] if plates else {"text": "", "confidence": 0.0, "chars": []}
        return {"text": best["text"], "confidence": best["confidence"], "chars": best["chars"],
                "ms": round((time.perf_counter() - t0) * 1000, 2), "mode": mode, "image_size": [w, h],
                "plates": plates}
