"""Frame sources: picamera2, OpenCV ``VideoCapture`` (USB, RTSP/HTTP, file) and image folders.

``stages.open_source(camera_config)`` builds the configured one; every source runs in its own thread
and hands over only its newest frame (see ``FrameSource``).
"""

from __future__ import annotations

from edge_ocr.capture.sources.base import Backoff, FrameSource, LatestSlot, SourceError, SourceStats, SourceUnavailable
from edge_ocr.capture.sources.folder import FolderSource
from edge_ocr.capture.sources.opencv import VideoCaptureSource
from edge_ocr.capture.sources.picam import LoresFrame, Picamera2Source

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
]
