"""Read one still image (an upload, a file; decoded by ``image_io``) -> plates.

The same reading core as the camera pipeline (``reading.PlateReader``), without motion, ROI or
voting: a still has no neighbours to vote with. Used by the HTTP API's ``/api/ocr``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..publish.mqtt_contract import ocr_payload, plate_payload
from ..read.reading import PlateReader, ranked, verdict


@dataclass
class StillReader:
    """Finds and reads plates in one image through the reading core (``reading.PlateReader``).
    Thread-safe: one image at a time (a still costs tens of milliseconds and the device has few
    cores; a queue is kinder than contention)."""

    reader: PlateReader
    min_confidence: float = 0.0  # plates below it (or of no known format) are listed after the others, never the answer

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

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
        reads = ranked(reads, self.min_confidence)
        plates = [plate_payload(p.reading, p.box, p.format_ok, p.region) for p in reads]
        # a photo with no plate still has text-like things in it; only a plate the daemon would
        # publish is the answer
        return ocr_payload(plates, (time.perf_counter() - t0) * 1000, mode, (w, h),
                           bool(reads) and verdict(reads[0], self.min_confidence) == "accept")
