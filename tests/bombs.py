"""Small files that decode to huge images: what a 1 GB Pi must refuse before decoding."""

from __future__ import annotations

import struct

import cv2
import numpy as np


def jpeg_bomb(side: int = 12000) -> bytes:
    """A 334-byte JPEG that libjpeg decodes to side x side (432 MB at 12000): a 16x16 JPEG whose
    frame header claims ``side`` and has a stray byte in front of it. libjpeg skips the byte (a
    warning), a hand-written marker walk stops at it; the missing scan data decodes as grey."""
    j = bytearray(cv2.imencode(".jpg", np.full((16, 16), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes())
    i = j.index(b"\xff\xc0")
    j[i + 5 : i + 9] = side.to_bytes(2, "big") + side.to_bytes(2, "big")
    j[i:i] = b"\x00"
    return bytes(j)


def bmp_rle8(side: int = 5000) -> bytes:
    """A 1080-byte RLE8 BMP of side x side (75 MB as BGR): the bitmap ends at once, the rest is
    palette entry 0."""
    palette = b"".join(bytes((v, v, v, 0)) for v in range(256))
    pixels = b"\x00\x01"  # RLE8 end of bitmap
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    off = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", off + len(pixels), 0, 0, off) + info + palette + pixels


def encoded(ext: str, side: int) -> bytes:
    """A plain grey side x side image in the container ``ext`` (".png", ".webp", ".tiff")."""
    img = np.zeros((side, side), np.uint8)
    img[side // 3 : side // 2, side // 4 : side // 2] = 255  # something to compress
    return cv2.imencode(ext, img)[1].tobytes()
