"""The one reading core: plates from an image, the same way for every entry point.

find (localiser within the ROI) or take fixed boxes (ROI polygons, or the whole image as one
crop) -> drop plates cut by the frame edge -> recognise with region-aware decoding (only the
characters the enabled regions can hold, the formats' decoder patterns with the beam decoder)
-> normalise with the format rules. The daemon's ``Pipeline``, ``still.StillReader``
(``/api/ocr``), ``edge-ocr tune`` and ``edge-ocr recognize`` all read through ``PlateReader``;
where they differ (the live pipeline does not re-read unsure crops and skips plates cut by the
edge; stills re-read unsure crops) it is a named parameter of ``read``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from ..capture.grey import to_grey
from ..capture.roi import Roi
from ..find.detector import LearntLocalizer
from ..find.localize import Candidate, Localizer, fixed_candidates
from ..types import Box, Reading
from .formats import FormatRules
from .recognizer import Recognizer
from .tworow import find_rows, join_rows, valley_rows

log = logging.getLogger(__name__)

Where = Literal["find", "fixed", "crop"]
Verdict = Literal["accept", "unsure", "no format"]

# A crop shaped like a two-row plate whose rows ``tworow.find_rows`` could not tell apart (a
# tight crop: characters touching the border or each other) reads as its bottom row, unsure.
# Such a crop read below SPLIT_BELOW is read again cut at its emptiest middle row, and that
# reading replaces the first only when it is at least SPLIT_SURE and fits an accepted format.
# Chosen on the dev crops' train split: 4 of its 6 such two-row crops fixed, none of its 586
# one-row crops of that shape (2:1 US, tight BR) changed.
SPLIT_BELOW = 0.7
SPLIT_SURE = 0.9


@dataclass(frozen=True)
class PlateRead:
    """One plate read from an image.

    ``reading.text`` is normalised by the format rules when it fits one (look-alikes fixed);
    ``format_ok`` says whether it did (always True with formats disabled), ``region`` is the
    region of the format it fits. ``crop`` is what the recogniser read, cut from the
    full-resolution image; ``score`` the localiser's (1.0 for fixed boxes and whole crops).
    """

    box: Box
    reading: Reading
    format_ok: bool
    region: str | None
    score: float = 1.0
    crop: npt.NDArray[np.uint8] | None = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.reading.text

    @property
    def confidence(self) -> float:
        return self.reading.confidence


class PlateReader:
    """Reads plates from images with one recogniser, localiser and set of format rules.

    Args:
        recognizer: the loaded model.
        localizer: finds plates in a frame.
        formats: accepted formats; also give the decoder's allowed characters
            (``FormatRules.charset``) and, with ``use_patterns``, its per-position patterns.
        use_patterns: constrain the beam decoder to the formats' strict layouts
            (``recognizer.decoder: beam``).
        retry_below: still images re-read crops less confident than this (``recognizer.retry_below``).
    """

    def __init__(self, recognizer: Recognizer, localizer: Localizer | LearntLocalizer, formats: FormatRules,
                 use_patterns: bool, retry_below: float) -> None:
        self.recognizer = recognizer
        self.localizer = localizer
        self.formats = formats
        self.patterns = formats.decoder_patterns(strict_only=True) if use_patterns else None
        self.allowed = formats.charset()
        self.retry_below = retry_below

    def read(
        self,
        image: npt.NDArray[np.uint8],
        *,
        where: Where = "find",
        roi: Roi | None = None,
        search: npt.NDArray[np.uint8] | None = None,
        drop_edge_cut: bool = False,
    ) -> list[PlateRead]:
        """Every plate candidate of ``image`` with its reading, best candidate first.

        Args:
            image: the full-resolution image (BGR or grey); crops are cut from it.
            where: ``find`` localises plates (inside ``roi``), ``fixed`` takes each ROI polygon
                as a plate (gate cameras), ``crop`` reads the whole image as one plate.
            roi: where to look (``find``) or the plates (``fixed``); ``None`` = the whole image.
            search: a grey plane of the same scene to localise on (the frame record's grey or
                picamera2's lores plane; boxes still come back in ``image`` pixels).
            drop_edge_cut: skip found plates within one plate height of the image border: a plate
                cut by the frame edge reads as a plausible shorter plate ("5AN" for "RK115AN"),
                and the localiser's box ends at the last whole character, a little inside the
                edge; a live camera waits for the frames where the plate is whole.

        Returns:
            One ``PlateRead`` per candidate, empty readings included (the caller decides what
            to keep).
        """
        h, w = image.shape[:2]
        if where == "crop":
            cands = [_whole(image)]
        elif where == "fixed":
            cands = fixed_candidates(image, (roi or Roi.full()).with_frame_size((w, h)))
        else:
            if search is not None:
                cands = self.localizer.find(search, roi or Roi.full(), full=image)
            else:
                cands = self.localizer.find(image, roi or Roi.full())
            if drop_edge_cut:
                cands = [c for c in cands if not _near_edge(c.box, w, h)]
        reads = self.read_crops([c.crop for c in cands], [c.box for c in cands])
        out = [PlateRead(c.box, r.reading, r.format_ok, r.region, c.score, c.crop) for c, r in zip(cands, reads)]
        return drop_stacked(out) if where == "find" else out

    def with_retry(self, retry_below: float) -> PlateReader:
        """This reader with another re-read threshold (same model, localiser and formats): the
        live pipeline's (0 unless ``recognizer.retry_live``: frames vote instead)."""
        other = copy.copy(self)
        other.retry_below = retry_below
        return other

    def read_crops(self, crops: Sequence[npt.NDArray], boxes: Sequence[Box] | None = None) -> list[PlateRead]:
        """Plate crops -> one ``PlateRead`` each, in order. ``boxes``: where each crop was cut
        (default the whole crop). The crop's own shape (the plate cut out upright) breaks ties
        between regions sharing a layout."""
        if not crops:
            return []
        readings = self._split_unsure(crops, self.recognizer.recognize(crops, self.patterns, self.retry_below,
                                                                        allowed=self.allowed))
        out = []
        for i, (crop, r) in enumerate(zip(crops, readings)):
            box = boxes[i] if boxes is not None else (0, 0, int(crop.shape[1]), int(crop.shape[0]))
            fixed = self.formats.normalize(r.text, r.char_confidences) if r.text else None
            if fixed is not None and fixed != r.text and len(fixed) == len(r.text):
                r = Reading(fixed, r.confidence, r.char_confidences)
            region = self.formats.region_of(r.text, plate_aspect(crop, box)) if fixed is not None else None
            out.append(PlateRead(box, r, fixed is not None, region, 1.0, crop))
        return out

    def _split_unsure(self, crops: Sequence[npt.NDArray], readings: list[Reading]) -> list[Reading]:
        """``readings`` with unsure two-row-shaped crops read again as two rows (SPLIT_BELOW)."""
        idx, joined = [], []
        for i, (crop, r) in enumerate(zip(crops, readings, strict=True)):
            if r.confidence >= SPLIT_BELOW:
                continue
            grey = to_grey(crop)
            rows = valley_rows(grey)
            if rows is not None and find_rows(grey) is None:  # find_rows' rows were read already
                idx.append(i)
                joined.append(join_rows(grey, rows))
        if not idx:
            return readings
        out = list(readings)
        for i, s in zip(idx, self.recognizer.recognize(joined, self.patterns, 0.0, allowed=self.allowed), strict=True):
            if (s.text and s.confidence >= SPLIT_SURE and s.confidence > out[i].confidence
                    and self.formats.normalize(s.text, s.char_confidences) is not None):
                log.debug("two-row split: %r %.3f -> %r %.3f", out[i].text, out[i].confidence, s.text, s.confidence)
                out[i] = s
        return out


def verdict(p: PlateRead, min_confidence: float) -> Verdict:
    """The one rule after a read, for the daemon and ``/api/ocr`` alike: ``accept`` (text of an
    accepted format, at least ``min_confidence``: the daemon votes with it, /api/ocr lists it first),
    ``unsure`` (no text, or below ``min_confidence``) or ``no format`` (confident, but no accepted
    plate format fits it: the daemon counts it as rejected)."""
    if not p.text or p.confidence < min_confidence:
        return "unsure"
    return "accept" if p.format_ok else "no format"


def ranked(reads: Sequence[PlateRead], min_confidence: float) -> list[PlateRead]:
    """The readings with text, accepted ones first, each group most confident first."""
    return sorted((p for p in reads if p.text), key=lambda p: (verdict(p, min_confidence) == "accept", p.confidence),
                  reverse=True)


def view_sharpness(crop: npt.NDArray[np.uint8] | None, height: int = 32) -> float | None:
    """How sharp a plate crop is at the recogniser's input height: the variance of its
    Laplacian there (motion blur and defocus lower it; a plate seen large is shrunk, so its
    detail counts, not its size). ``None`` for no crop."""
    if crop is None or crop.size == 0 or crop.shape[0] < 2 or crop.shape[1] < 2:
        return None
    grey = to_grey(crop)
    w = max(2, round(grey.shape[1] * height / grey.shape[0]))
    small = cv2.resize(grey, (w, height), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_32F).var())


def _near_edge(box: Box, w: int, h: int) -> bool:
    x, y, bw, bh = box
    m = max(2, bh)  # a character is about as wide as half the plate's height: one height is 2
    return x < m or y < 2 or x + bw > w - m or y + bh > h - 2


def drop_stacked(reads: list[PlateRead]) -> list[PlateRead]:
    """Drop text lines that sit just above or below a plate of taller characters: the city band
    of an old Brazilian plate, a dealer's frame, a state name or slogan. A plate's own characters
    are the tallest text on it, so a smaller line stacked on a plate that was read (fits a format)
    is part of the plate's surroundings, never a second plate."""
    plates = [p for p in reads if p.format_ok and p.text]
    return [p for p in reads if not any(q is not p and _stacked_on(p.box, q.box) for q in plates)]


def _stacked_on(a: Box, plate: Box) -> bool:
    """Box ``a`` holds smaller characters than ``plate`` and sits just above or below it."""
    x, y, w, h = a
    px, py, pw, ph = plate
    overlap = min(x + w, px + pw) - max(x, px)
    return h <= 0.8 * ph and overlap >= 0.5 * min(w, pw) and abs((y + h / 2) - (py + ph / 2)) <= 2.5 * ph


def box_aspect(box: Box | None) -> float | None:
    """Width/height of a plate box: the evidence ``FormatRules.region_of`` weighs when several
    regions share the reading's layout."""
    return box[2] / box[3] if box is not None and box[3] > 0 else None


def plate_aspect(crop: npt.NDArray[np.uint8] | None, box: Box | None) -> float | None:
    """Width/height of the plate itself: its upright crop's (the margin is the same share of
    width and height), else its box's. A tilted plate's axis-aligned box is taller than the
    plate: a Brazilian 3.1:1 plate rolled a few degrees boxes like a 2.5:1 US one."""
    if crop is not None and crop.ndim >= 2 and crop.shape[0] > 0:
        return crop.shape[1] / crop.shape[0]
    return box_aspect(box)


def _whole(image: npt.NDArray[np.uint8]) -> Candidate:
    h, w = image.shape[:2]
    quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return Candidate((0, 0, w, h), 1.0, 0.0, quad, image, 0)
