"""Read one still image (an upload, a file; decoded by ``image_io``) -> plates.

The same localiser, recogniser and format rules as the camera pipeline, without motion,
ROI or voting: a still has no neighbours to vote with. Used by the HTTP API's ``/api/ocr``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .formats import FormatRules
from .localize import Localizer
from .recognizer import Recognizer
from .roi import Roi
from .types import Reading


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
