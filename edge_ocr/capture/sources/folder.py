"""A folder of images as a camera: files in name order, at a set rate."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_ocr.capture.image_io import ImageError, read_image
from edge_ocr.capture.sources.base import FrameSource, SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class FolderSource(FrameSource):
    """Images from a folder, sorted by name, ``fps`` per second.

    Unreadable, corrupt or oversized files (``image_io.read_image``'s rules) are skipped and counted in
    ``stats().skipped``; they never stop the source. At the end the folder is listed again and
    read anew if ``loop``, else the source ends. A missing or empty folder is a failure retried
    with back-off (files may arrive later).

    Args:
        path: the folder.
        fps: images per second.
        loop: start again at the end.
        name, reconnect_min_s, reconnect_max_s, rng: see ``FrameSource``.
    """

    kind = "folder"

    def __init__(
        self,
        path: str | Path,
        fps: float,
        loop: bool,
        name: str,
        reconnect_min_s: float,
        reconnect_max_s: float,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name, reconnect_min_s, reconnect_max_s, pace_fps=fps, rng=rng)
        self.path = Path(path)
        self.loop = loop
        self._files: list[Path] = []
        self._pos = 0
        self._good_this_pass = 0

    def _list(self) -> list[Path]:
        if not self.path.is_dir():
            raise SourceError(f"no such folder: {self.path}")
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise SourceError(f"no images in {self.path}")
        return files

    def _open(self) -> None:
        self._files = self._list()
        self._pos = 0
        self._good_this_pass = 0

    def _read(self) -> npt.NDArray[np.uint8] | None:
        while True:
            if self._pos >= len(self._files):
                if not self.loop:
                    return None
                if self._good_this_pass == 0:
                    raise SourceError(f"no readable image in {self.path}")
                self._open()  # list again: files may have come or gone
            path = self._files[self._pos]
            self._pos += 1
            image = self._load(path)
            if image is not None:
                self._good_this_pass += 1
                return image

    def _load(self, path: Path) -> npt.NDArray[np.uint8] | None:
        try:
            return read_image(path)
        except ImageError as exc:  # unreadable, corrupt, cut short or over the size limit
            self._skip(path.name, str(exc))
            return None
