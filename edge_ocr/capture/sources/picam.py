"""Raspberry Pi camera through picamera2: a ``main`` RGB stream to read plates from and a small
``lores`` YUV420 stream for motion and localisation, as the picamera2 manual recommends for
computer vision (the ISP scales for free; nothing is converted on the CPU).

The ``Picamera2`` object is used through a handful of calls only (``create_video_configuration``,
``configure``, ``start``, ``capture_request`` -> ``make_array``/``release``, ``stop``,
``close``), so tests can pass a small fake in ``factory``. picamera2 is imported only when this
source is built without a factory.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_ocr.capture.sources.base import FrameSource, SourceError, SourceUnavailable, as_bgr
from edge_ocr.types import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoresFrame(Frame):
    """A ``Frame`` that also carries the lores stream's luma (Y) plane, HxW uint8, captured with
    the same request as ``image``."""

    lores: npt.NDArray[np.uint8] | None = None


def _import_picamera2() -> Callable[[], Any]:
    try:
        from picamera2 import Picamera2  # optional, Raspberry Pi only: imported when configured
    except ImportError as exc:
        raise SourceUnavailable(
            "camera.type picamera2 needs the picamera2 package: on Raspberry Pi OS "
            "`sudo apt install python3-picamera2` (or `pip install edge-ocr[pi]`)"
        ) from exc
    return Picamera2


class Picamera2Source(FrameSource):
    """Frames from a Raspberry Pi camera.

    Args:
        width, height: main stream size (the frames' ``image``).
        fps: requested frame rate.
        lores_size: (width, height) of the lores stream; default three quarters of the main
            size (960x540 for 1280x720: the localiser works at 960 px wide, and loses small
            plates at 640).
        name, reconnect_min_s, reconnect_max_s, rng: see ``FrameSource``.
        factory: makes the camera object; default ``picamera2.Picamera2``.

    Raises:
        SourceUnavailable: picamera2 is not installed (and no ``factory`` was given).
    """

    kind = "picamera2"

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        lores_size: tuple[int, int] | None = None,
        *,
        name: str,
        reconnect_min_s: float,
        reconnect_max_s: float,
        rng: random.Random | None = None,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(name, reconnect_min_s, reconnect_max_s, pace_fps=None, rng=rng)
        self.factory = factory if factory is not None else _import_picamera2()
        self.size = (width, height)
        self.fps = fps
        lw, lh = lores_size or (width * 3 // 4, height * 3 // 4)
        # YUV420 planes need even sizes
        self.lores_size = (max(2, lw - lw % 2), max(2, lh - lh % 2))
        self._cam: Any = None

    def _open(self) -> None:
        cam = self.factory()
        try:
            config = cam.create_video_configuration(
                main={"size": self.size, "format": "RGB888"},  # RGB888 is B, G, R in memory: OpenCV order
                lores={"size": self.lores_size, "format": "YUV420"},
                controls={"FrameRate": float(self.fps)},
            )
            cam.configure(config)
            cam.start()
        except Exception:
            _close_quietly(cam)
            raise
        self._cam = cam

    def _read(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        if self._cam is None:
            raise SourceError("camera not open")
        request = self._cam.capture_request()
        try:
            main = request.make_array("main")
            lores = request.make_array("lores")
        finally:
            # the buffers go back to the camera at once, or it stalls for want of them
            request.release()
        lw, lh = self.lores_size
        # YUV420 arrives as (h * 3 / 2, stride): the first h rows are the Y plane
        y = np.ascontiguousarray(lores[:lh, :lw])
        return as_bgr(main), y

    def _frame(self, capture: Any, ts: float, wall: float, index: int) -> Frame:
        main, lores = capture
        return LoresFrame(ts, wall, main, index, lores)

    def _close(self) -> None:
        if self._cam is not None:
            cam, self._cam = self._cam, None
            _close_quietly(cam)


def _close_quietly(cam: Any) -> None:
    for method in ("stop", "close"):
        try:
            getattr(cam, method)()
        except Exception as exc:  # noqa: BLE001 - a camera that failed may fail to stop too
            log.debug("picamera2 %s raised %r", method, exc)
