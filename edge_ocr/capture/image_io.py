"""The one image decoder for every input: HTTP uploads, folder frames, ``edge-ocr recognize``.

Bytes -> BGR image, or ``ImageError`` saying why not. The size limit is OpenCV's own
(``OPENCV_IO_MAX_IMAGE_PIXELS``, set by ``edge_ocr/__init__.py`` before cv2 loads): each OpenCV
decoder checks the size it has just read from the header before allocating anything, so a JPEG
with a stray byte before its size marker, a WebP, TIFF, BMP or PNG are all held to the same limit
without a hand-written parser per format that could disagree with the decoder.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

MAX_PIXELS = int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"])  # validated by edge_ocr/__init__.py
# A file larger than this is not read at all: even uncompressed 16-bit RGBA at MAX_PIXELS fits.
MAX_FILE_BYTES = max(8 * MAX_PIXELS, 1 << 20)


class ImageError(ValueError):
    """Bytes that are not a whole, decodable image; the message says what is wrong."""


class ImageTooLarge(ImageError):
    """An image (or file) over the size limit; refused before decoding."""


def _png_without_pixels(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _limit_in_force() -> bool:
    """True if the cv2 in this process refuses an image one row over MAX_PIXELS.

    False when cv2 was imported before ``edge_ocr`` (its limit then is OpenCV's 1 gigapixel).
    The probe is a PNG with a header and no pixels: refused from the header, nothing allocated.
    """
    side = math.isqrt(MAX_PIXELS) + 1  # square: libpng itself refuses a side over 1,000,000
    try:
        cv2.imdecode(np.frombuffer(_png_without_pixels(side, side), np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:
        return "CV_IO_MAX_IMAGE_PIXELS" in str(exc)
    return False


LIMIT_IN_FORCE = _limit_in_force()
if not LIMIT_IN_FORCE:
    log.warning("cv2 was imported before edge_ocr: its pixel limit is not %d, so image decoding is refused "
                "(import edge_ocr first, or set OPENCV_IO_MAX_IMAGE_PIXELS before cv2 loads)", MAX_PIXELS)


def decode_image(data: bytes) -> npt.NDArray[np.uint8]:
    """Encoded bytes (JPEG, PNG, BMP, WebP, TIFF...) -> 8-bit BGR image (EXIF orientation applied).

    Raises:
        ImageTooLarge: more than MAX_PIXELS pixels (or a side over OpenCV's 2^20).
        ImageError: empty, not an image, truncated (JPEG without its end marker, PNG without IEND).
        RuntimeError: cv2 was loaded before ``edge_ocr``, so the pixel limit is not in force.
    """
    if not LIMIT_IN_FORCE:
        raise RuntimeError("image decoding refused: cv2 was imported before edge_ocr, so OpenCV's pixel limit "
                           f"is not {MAX_PIXELS:,} (import edge_ocr first)")
    if not data:
        raise ImageError("empty image")
    # libjpeg and libpng decode a file cut short with a grey lower part and only a warning
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        raise ImageError("truncated JPEG: the end-of-image marker is missing")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise ImageError("truncated PNG: the IEND chunk is missing")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE" in str(exc):  # the pixel count or one side over OpenCV's limits
            raise ImageTooLarge(f"image too large: over {MAX_PIXELS:,} pixels (OPENCV_IO_MAX_IMAGE_PIXELS)") from None
        detail = str(exc).strip().splitlines()[-1]
        raise ImageError(f"not a decodable image ({len(data)} bytes starting {data[:8]!r}): {detail}") from None
    if img is None or img.size == 0:
        raise ImageError(f"not a decodable image ({len(data)} bytes starting {data[:8]!r})")
    return np.asarray(img, np.uint8)


def read_image(path: str | Path) -> npt.NDArray[np.uint8]:
    """An image file -> 8-bit BGR image, with the same rules as ``decode_image``.

    Raises:
        ImageTooLarge: the file is over MAX_FILE_BYTES, or the image over MAX_PIXELS.
        ImageError: the file cannot be read, or is not a whole image.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size <= MAX_FILE_BYTES:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat
            size = len(data)
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    if size > MAX_FILE_BYTES:
        raise ImageTooLarge(f"file too large: over {MAX_FILE_BYTES:,} bytes")
    if not data:
        raise ImageError("empty file")
    return decode_image(data)
