"""Tracking: which readings of successive frames belong to one plate in view.

A reading joins a track by text similarity, and by place (box overlap with where the track's
motion puts it now) for misread frames and plate pieces seen shortly after the track's last
reading; a plate that left is never joined by the next car's reading at the same spot. Each
track keeps its readings fused (``fusion.fuse``). What is published, and when, is the voter's
business (``voting``); nothing here decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..capture.quad import iou
from ..read.textdist import part_similarity, similarity
from ..types import Box, Reading
from .fusion import fuse

_MAX_READINGS = 100  # per undecided track; beyond, the least confident reading is dropped
# A reading joins a track by place alone (a misread frame, a piece of the plate) only this soon
# after the track's last reading: later, the same spot holds the next car.
LINK_GAP_S = 0.8
PIECE_SIMILARITY = 0.8  # part_similarity at which a shorter text counts as a piece of a plate


@dataclass(frozen=True)
class Observation:
    """One reading of one plate in one frame.

    ``payload`` is carried untouched (e.g. the crop and frame for the event): voting keeps the
    one of the most confident observation and hands it back with the result, with its ``region``
    (the reader's, ``PlateRead.region``: the region of the format the text fits).
    """

    reading: Reading
    box: Box | None = None
    payload: Any = field(default=None, repr=False, compare=False)
    score: float = 1.0  # the localiser's plate score (1.0 for fixed boxes)
    sharpness: float | None = None  # of the crop at the model's height (``view_sharpness``); None = unknown
    region: str | None = None


@dataclass
class Track:
    """One plate in view: its readings (fused), where it was and how it moves, and whether
    (and as what) it was decided."""

    first_seen: float
    last_seen: float
    observations: list[Observation] = field(default_factory=list)
    last_box: Box | None = None
    published: bool = False
    suppressed: bool = False
    decided_text: str = ""  # the text published or suppressed
    seen_after: int = 0  # readings after the decision (not fused)
    fused: tuple[str, tuple[float, ...]] = ("", ())
    velocity: tuple[float, float] = (0.0, 0.0)  # of the box centre, px/s
    score_sum: float = 0.0  # localiser scores of every reading, decided or not
    scored: int = 0
    moves: int = 0  # velocity measurements so far
    beside: str = ""  # the plate this text was seen moving with (then it is not a plate)

    @property
    def score(self) -> float:
        return self.score_sum / self.scored if self.scored else 0.0

    @property
    def text(self) -> str:
        return self.decided_text or self.fused[0]

    def predicted_box(self, now: float) -> Box | None:
        """Where the plate should be now, moving as it did between its last two readings."""
        if self.last_box is None:
            return None
        dt = now - self.last_seen
        x, y, w, h = self.last_box
        return (int(round(x + self.velocity[0] * dt)), int(round(y + self.velocity[1] * dt)), w, h)


class Tracker:
    """The tracks of the plates in view, and the rule that matches a frame's readings to them.

    Args:
        match_iou: box overlap that links a reading to a track whose text differs.
        match_similarity: text similarity (1 - edit distance / longer length) that links a
            reading to a track wherever its box is.
    """

    def __init__(self, match_iou: float, match_similarity: float) -> None:
        self.match_iou = match_iou
        self.match_similarity = match_similarity
        self.tracks: list[Track] = []

    def match(self, now: float, obs: Sequence[Observation]) -> None:
        """Add one frame's readings: each to at most one track (and each track takes at most one
        reading per frame: two plates in one frame are two tracks); the rest start new tracks."""
        pairs = []
        for oi, o in enumerate(obs):
            for ti, t in enumerate(self.tracks):
                s = self._affinity(o, t, now)
                if s > 0:
                    pairs.append((s, oi, ti))
        pairs.sort(reverse=True)
        taken_o: set[int] = set()
        taken_t: set[int] = set()
        for _, oi, ti in pairs:
            if oi in taken_o or ti in taken_t:
                continue
            taken_o.add(oi)
            taken_t.add(ti)
            self._add(self.tracks[ti], obs[oi], now)
        for oi, o in enumerate(obs):
            if oi not in taken_o:
                t = Track(first_seen=now, last_seen=now)
                self.tracks.append(t)
                self._add(t, o, now)

    def unseen_for(self, now: float, window_s: float) -> list[Track]:
        """The tracks not read for more than ``window_s`` (still held until ``drop``)."""
        return [t for t in self.tracks if now - t.last_seen > window_s]

    def drop(self, ended: Sequence[Track]) -> None:
        gone = {id(t) for t in ended}
        self.tracks = [t for t in self.tracks if id(t) not in gone]

    def _affinity(self, o: Observation, t: Track, now: float) -> float:
        """How well an observation fits a track; 0 = not at all."""
        text, ref = o.reading.text, t.text
        sim = similarity(text, ref)
        gap = now - t.last_seen
        ov = 0.0
        pred = t.predicted_box(now)
        if o.box is not None and pred is not None and t.last_box is not None and gap <= LINK_GAP_S:
            ov = max(iou(o.box, pred), iou(o.box, t.last_box))
        if sim == 1.0:
            return sim + ov  # the same text: the same plate, wherever and whenever it is seen
        if o.box is None or pred is None:  # no place to go by: the text alone
            return sim if sim >= self.match_similarity else 0.0
        if gap > LINK_GAP_S:
            # similar text later is another plate of the same series (RK161AG after RK101AO):
            # joining it to that plate's track would lose it
            return 0.0
        if sim >= self.match_similarity and _near(o.box, pred, t.moves):
            return sim + ov
        # a piece of the same plate, where the plate is (its centre inside the plate's box)
        if min(len(text), len(ref)) >= 2 and _centre_in(o.box, pred) and (
                part_similarity(text, ref) >= PIECE_SIMILARITY or part_similarity(ref, text) >= PIECE_SIMILARITY):
            return 0.5 + ov
        # a badly misread frame of the same plate: same place, some characters in common
        if ov >= self.match_iou and sim >= 0.3:
            return sim + ov
        return 0.0

    def _add(self, t: Track, o: Observation, now: float) -> None:
        if o.box is not None:
            if t.last_box is not None and now > t.last_seen:
                dx, dy = offset(o.box, t.last_box)
                v = (dx / (now - t.last_seen), dy / (now - t.last_seen))
                # a piece's box is off-centre: weigh each later step by half, the motion stays smooth
                t.velocity = v if not t.moves else ((t.velocity[0] + v[0]) / 2, (t.velocity[1] + v[1]) / 2)
                t.moves += 1
            t.last_box = o.box
        t.last_seen = now
        t.score_sum += o.score
        t.scored += 1
        if t.published or t.suppressed:
            # decided: the track now only keeps the plate from being published again, and a
            # car standing at a gate for minutes must not make every frame slower
            t.seen_after += 1
            return
        t.observations.append(o)
        if len(t.observations) > _MAX_READINGS:
            t.observations.remove(min(t.observations, key=lambda ob: ob.reading.confidence))
        t.fused = fuse([ob.reading for ob in t.observations], view_weights(t.observations))


def _near(a: Box, pred: Box, moves: int) -> bool:
    """Whether box ``a`` is where a plate predicted at ``pred`` can be: within one and a half
    plate widths of the prediction once the track's motion is known, three before (a car moves
    up to a plate width or two between frames)."""
    reach = (1.5 if moves else 3.0) * max(pred[2], a[2])
    dx, dy = offset(a, pred)
    return abs(dx) <= reach and abs(dy) <= reach


def offset(a: Box, b: Box) -> tuple[float, float]:
    """Centre of box ``a`` minus centre of box ``b``."""
    return a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2


def _centre_in(a: Box, b: Box) -> bool:
    """Whether the centre of box ``a`` lies inside box ``b``."""
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


def view_weights(observations: Sequence[Observation]) -> list[float]:
    """How much each reading of a track counts: its view's size and sharpness against the
    track's best view (a plate close to the camera and still reads better than the same plate
    far away or smeared by motion), each factor at least 0.25 so no reading is ignored."""
    hs = [o.box[3] if o.box is not None else 0 for o in observations]
    ss = [o.sharpness or 0.0 for o in observations]
    top_h, top_s = max(hs, default=0), max(ss, default=0.0)
    out = []
    for h, sh in zip(hs, ss, strict=True):
        wh = max(0.25, h / top_h) if top_h > 0 and h > 0 else 1.0
        ws = max(0.25, sh / top_s) if top_s > 0 and sh > 0 else 1.0
        out.append(wh * ws)
    return out
