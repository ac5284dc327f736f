"""Frame sources: picamera2, OpenCV ``VideoCapture`` (USB, RTSP/HTTP, file) and image folders.

``open_source(camera_config)`` builds the configured one; every source runs in its own thread
and hands over only its newest frame (see ``FrameSource``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from edge_ocr.capture.sources.base import Backoff, FrameSource, LatestSlot, SourceError, SourceStats, SourceUnavailable
from edge_ocr.capture.sources.folder import FolderSource
from edge_ocr.capture.sources.opencv import VideoCaptureSource
from edge_ocr.capture.sources.picam import LoresFrame, Picamera2Source
from edge_ocr.config import CameraConfig

__all__ = [
    "Backoff",
    "FolderSource",
    "FrameSource",
    "LatestSlot",
    "LoresFrame",
    "Picamera2Source",
    "SourceError",
    "SourceStats",
    "SourceUnavailable",
    "VideoCaptureSource",
    "open_source",
]


def open_source(
    cfg: CameraConfig,
    rng: random.Random | None = None,
    picamera2_factory: Callable[[], Any] | None = None,
) -> FrameSource:
    """Build (not start) the source the ``camera`` config section describes.

    Args:
        cfg: the camera section.
        rng: random source for back-off jitter (tests).
        picamera2_factory: makes the ``Picamera2`` object (tests); default imports picamera2.

    Raises:
        SourceUnavailable: picamera2 configured but not installed.
    """
    common: dict[str, Any] = {
        "name": cfg.name,
        "reconnect_min_s": cfg.reconnect_min_s,
        "reconnect_max_s": cfg.reconnect_max_s,
        "rng": rng,
    }
    if cfg.type == "picamera2":
        return Picamera2Source(cfg.width, cfg.height, cfg.fps, factory=picamera2_factory, **common)
    if cfg.type == "folder":
        return FolderSource(cfg.uri, cfg.fps, cfg.loop, **common)
    return VideoCaptureSource(cfg.uri, cfg.type, cfg.width, cfg.height, cfg.fps, cfg.loop, **common)
