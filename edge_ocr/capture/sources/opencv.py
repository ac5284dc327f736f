"""OpenCV ``VideoCapture`` sources: a USB camera, an RTSP/HTTP stream or a video file."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_ocr.capture.sources.base import FrameSource, SourceError

log = logging.getLogger(__name__)


class VideoCaptureSource(FrameSource):
    """Frames from ``cv2.VideoCapture``.

    Args:
        uri: a device index ("0") or path ("/dev/video0") for ``usb``; a URL for ``rtsp`` (any
            URL FFmpeg reads: rtsp://, http://, ...); a path for ``file``.
        kind: ``usb``, ``rtsp`` or ``file``.
        width, height, fps: requested capture format (``usb`` only; streams and files deliver
            what they carry). For ``file``, ``fps`` paces the reading.
        loop: a file starts again at its end; otherwise the source ends there.
        name, reconnect_min_s, reconnect_max_s, rng: see ``FrameSource``.
        timeout_s: open and read timeout for streams, s (a dead RTSP server must not block the
            thread for long).
    """

    def __init__(
        self,
        uri: str,
        kind: str,
        width: int | None,
        height: int | None,
        fps: float | None,
        loop: bool,
        name: str,
        reconnect_min_s: float,
        reconnect_max_s: float,
        timeout_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        # plain values: ``kind`` is ``camera.type`` (usb, rtsp or file), checked by the schema
        super().__init__(name, reconnect_min_s, reconnect_max_s, pace_fps=fps if kind == "file" else None, rng=rng)
        self.kind = kind
        self.uri = uri
        self.width = width
        self.height = height
        self.fps = fps
        self.loop = loop
        self.timeout_s = timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._pass_frames = 0  # frames read since the file was (re)started

    def _open(self) -> None:
        if self.kind == "file":
            if not Path(self.uri).is_file():
                raise SourceError(f"no such video file: {self.uri}")
            cap = cv2.VideoCapture(self.uri)
        elif self.kind == "usb":
            cap = cv2.VideoCapture(int(self.uri) if self.uri.strip().isdigit() else self.uri)
            if cap.isOpened():
                if self.width and self.height:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                if self.fps:
                    cap.set(cv2.CAP_PROP_FPS, self.fps)
                # we always want the newest frame, not a queue of old ones
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            ms = int(self.timeout_s * 1000)
            cap = cv2.VideoCapture(
                self.uri, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            )
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.kind} {self.uri}")
        self._cap = cap
        self._pass_frames = 0

    def _read(self) -> npt.NDArray[np.uint8] | None:
        if self._cap is None:
            raise SourceError("not open")
        ok, image = self._cap.read()
        if ok and image is not None:
            self._pass_frames += 1
            return np.asarray(image, np.uint8)
        if self.kind != "file":
            raise SourceError(f"{self.kind} {self.uri}: no frame (device gone or stream down)")
        # end of the file (or where a truncated file stops)
        if not self.loop:
            return None
        if self._pass_frames == 0:
            # a file with no readable frame would otherwise loop as fast as the CPU allows
            raise SourceError(f"video file {self.uri} has no readable frame")
        log.debug("%s: %s ended after %d frames, starting again", self.name, self.uri, self._pass_frames)
        self._cap.release()
        self._cap = None
        self._open()
        return self._read()

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
