"""The learnt plate detector: one small ONNX network that takes the grey frame and returns scored
plate quadrilaterals.

The network (``tools/train_detector.py``) is a centre-point detector: at 1/4 of the input
resolution it gives a plate-centre heat map (already through a sigmoid) and, at each cell, the
offsets of the plate's four corners from that cell's centre (in units of ``reg_scale`` px). Pre-
and post-processing here are plain numpy/OpenCV around one onnxruntime session:

- ``prepare``: grey frame -> float32 (1, 1, H, W) at the working width, padded to a multiple of
  the network's stride (the padding is black, and lies outside the frame, so no plate is there);
- ``decode``: local maxima of the heat map above ``min_score`` -> quadrilaterals in frame pixels,
  overlapping ones suppressed (the better score wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from ..capture.grey import to_grey
from ..capture.quad import bounding_box, centre_inside, extent, iou, warp_quad
from ..capture.roi import Roi, search_window
from .localize import CROP_MARGIN, Candidate

STRIDE = 4  # heat-map cell, input px
PAD_TO = 16  # the network halves the input four times
REG_SCALE = 64.0  # corner offsets are predicted in units of this many input px


@dataclass(frozen=True)
class Detection:
    """A plate: ``quad`` (4, 2) corners tl, tr, br, bl in frame pixels, ``score`` 0..1."""

    quad: npt.NDArray[np.float32]
    score: float


def prepare(grey: npt.NDArray[np.uint8], work_width: int) -> tuple[npt.NDArray[np.float32], float]:
    """The network's input for a grey frame, and the factor from frame to input pixels."""
    h, w = grey.shape[:2]
    scale = min(1.0, work_width / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = grey if scale == 1.0 else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    ph, pw = -(-size[1] // PAD_TO) * PAD_TO, -(-size[0] // PAD_TO) * PAD_TO
    x = np.zeros((1, 1, ph, pw), np.float32)
    x[0, 0, : size[1], : size[0]] = small
    x *= np.float32(1 / 255)
    return x, scale


def decode(out: npt.NDArray[np.float32], min_score: float, max_det: int, nms_iou: float = 0.3) -> list[Detection]:
    """Detections from the network's (9, H/4, W/4) output, in input pixels, best first."""
    heat = np.ascontiguousarray(out[0], np.float32)
    peaks = (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat >= min_score)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-heat[ys, xs], kind="stable")[: max_det * 4]
    kept: list[Detection] = []
    boxes: list[tuple[float, float, float, float]] = []
    for i in order:
        y, x = ys[i], xs[i]
        centre = np.array([(x + 0.5) * STRIDE, (y + 0.5) * STRIDE], np.float32)
        quad = centre + out[1:9, y, x].reshape(4, 2) * np.float32(REG_SCALE)
        box = extent(quad)
        if any(iou(box, b) > nms_iou for b in boxes):
            continue
        kept.append(Detection(quad.astype(np.float32), float(heat[y, x])))
        boxes.append(box)
        if len(kept) == max_det:
            break
    return kept


class PlateDetector:
    """Owns the detector's onnxruntime session; ``detect`` takes a grey frame.

    Args:
        model: ONNX file.
        work_width: the frame is scaled down to at most this width before the network.
        min_score: detections below are dropped.
        max_det: most detections returned.
        threads: onnxruntime intra-op threads.
    """

    def __init__(self, model: str | Path, work_width: int, min_score: float, max_det: int, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.work_width = work_width
        self.min_score = min_score
        self.max_det = max_det

    def detect(self, grey: npt.NDArray[np.uint8]) -> list[Detection]:
        """Plates in a grey frame, best first, corners in the frame's pixels."""
        x, scale = prepare(grey, self.work_width)
        out = self.session.run(None, {self.input: x})[0][0]
        found = decode(out, self.min_score, self.max_det)
        return [Detection(d.quad / np.float32(scale), d.score) for d in found]


class LearntLocalizer:
    """The learnt detector behind the localiser's interface (``find`` -> ``Candidate`` list), so
    the reading core takes either.

    Args:
        detector: the loaded network.
        crop_margin: fraction of the plate's width/height added on each side of the crop, as the
            recogniser's training crops have.
    """

    def __init__(self, detector: PlateDetector, crop_margin: float = CROP_MARGIN) -> None:
        self.detector = detector
        self.crop_margin = crop_margin

    @property
    def max_candidates(self) -> int:
        return self.detector.max_det

    def find(self, image: npt.NDArray[np.uint8], roi: Roi | None = None,
             full: npt.NDArray[np.uint8] | None = None) -> list[Candidate]:
        """Plates in ``image`` (BGR or grey; a small copy such as the lores plane may be given,
        with ``full`` the same scene to crop from), inside ``roi``, best first; boxes, quads and
        crops in the pixels of ``full`` (or ``image``)."""
        grey = to_grey(image)
        h, w = grey.shape
        src = full if full is not None else image
        win = search_window(roi, (w, h), (src.shape[1], src.shape[0]))
        if win.w < 16 or win.h < 16:
            return []
        found = self.detector.detect(win.cut(grey))
        out = []
        for d in found:
            if win.plane_mask is not None and not centre_inside(win.in_plane(d.quad), win.plane_mask):
                continue
            q = win.to_source(d.quad)  # the network gives the corners in order: tl, tr, br, bl
            top = q[1] - q[0]
            out.append(Candidate(bounding_box(q, src.shape[1], src.shape[0]), d.score,
                                 math.degrees(math.atan2(float(top[1]), float(top[0]))), q,
                                 warp_quad(src, q, self.crop_margin)))
        return out
