"""Motion gate: run the expensive stages only while something moves inside the ROI.

Each frame is shrunk to ``width`` px wide grey (or the picamera2 lores Y plane is used as it
is), blurred a little against sensor noise, and compared with the previous one: pixels inside
the ROI that changed by more than ``pixel_delta`` grey levels are "moving". The gate opens when
their share of the ROI reaches ``min_area``, and stays open ``hold_s`` after the last motion
so a car that stops in front of the camera is still read.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import numpy.typing as npt

from edge_ocr.capture.grey import to_grey
from edge_ocr.capture.roi import Roi

log = logging.getLogger(__name__)


class MotionGate:
    """Decides per frame whether anything moved inside the ROI.

    Args:
        enabled: ``False`` opens the gate for every frame.
        pixel_delta: grey-level change (1..255) that counts a pixel as moving.
        min_area: fraction of ROI pixels (0..1) that must move to open the gate.
        width: frames are scaled to this width for the check, px.
        hold_s: the gate stays open this long after the last motion, s.
        roi: where to look; ``None`` = the whole frame. A pixel-unit ROI without a
            ``frame_size`` is taken to be in the pixels of the first frame checked; give it the
            main stream's size when checking a smaller (lores) stream.

    Plain values: the ranges are the ``motion`` config section's, checked once there (``config.py``).
    """

    def __init__(
        self,
        enabled: bool,
        pixel_delta: int,
        min_area: float,
        width: int,
        hold_s: float,
        roi: Roi | None = None,
    ) -> None:
        self.enabled = enabled
        self.pixel_delta = pixel_delta
        self.min_area = min_area
        self.width = width
        self.hold_s = hold_s
        self.roi = roi
        self._prev: npt.NDArray[np.uint8] | None = None
        self._last_motion: float | None = None
        self._open = False
        self.last_fraction = 0.0
        """Share of ROI pixels that moved in the last frame checked."""
        self.last_mask: npt.NDArray[np.uint8] | None = None
        """The moving pixels (255) of the last frame checked, at the check size (for ``tune``)."""

    def reset(self) -> None:
        """Forget the previous frame (after a source reconnect the scene may have jumped)."""
        self._prev = None
        self._last_motion = None
        self._open = False

    def update(self, image: npt.NDArray[np.uint8], now: float) -> bool:
        """Check one frame; True if the later stages should run on it.

        Args:
            image: BGR or grey frame of any size (e.g. the picamera2 lores Y plane).
            now: the frame's time, s (monotonic).

        Returns:
            True while motion is seen or was seen within ``hold_s``; always True when disabled.
            The first frame after start or ``reset`` has nothing to compare with and returns
            True, so a plate already standing in view is read once.
        """
        if not self.enabled:
            return True
        if self.roi is not None and self.roi.frame_size is None:
            # pixel coordinates are those of the first frame seen (the camera's frame size)
            self.roi = self.roi.with_frame_size((image.shape[1], image.shape[0]))
        small = self._prepare(image)
        prev, self._prev = self._prev, small
        if prev is None or prev.shape != small.shape:
            self._last_motion = now
            self.last_fraction = 0.0
            self.last_mask = np.zeros_like(small)
            return self._set(True)
        diff = cv2.absdiff(small, prev)
        moving = (diff > self.pixel_delta).astype(np.uint8) * 255
        mask = self._mask(small.shape)
        if mask is not None:
            moving &= mask
            area = max(1, int(np.count_nonzero(mask)))
        else:
            area = moving.size
        self.last_mask = moving
        self.last_fraction = np.count_nonzero(moving) / area
        if self.last_fraction >= self.min_area and self.last_fraction > 0:
            self._last_motion = now
        held = self._last_motion is not None and now - self._last_motion <= self.hold_s
        return self._set(held)

    def _set(self, state: bool) -> bool:
        if state != self._open:
            log.debug("motion gate %s (moving %.3f of ROI)", "open" if state else "closed", self.last_fraction)
            self._open = state
        return state

    def _prepare(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        grey = to_grey(image)
        h, w = grey.shape
        if w > self.width:
            size = (self.width, max(1, round(h * self.width / w)))
            grey = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), np.uint8)
        # a light blur so sensor noise and JPEG artefacts do not count as motion
        return np.asarray(cv2.GaussianBlur(grey, (5, 5), 0), np.uint8)

    def _mask(self, shape: tuple[int, ...]) -> npt.NDArray[np.uint8] | None:
        if self.roi is None:
            return None
        h, w = shape[:2]
        if self.roi.covers_all(w, h):
            return None
        return self.roi.mask(w, h)
