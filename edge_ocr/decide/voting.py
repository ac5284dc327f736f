"""Multi-frame voting: many noisy readings of one passing plate -> one event.

Readings are grouped into tracks (one per plate in view) by text similarity, and by place (box
overlap with where the track's motion puts it now) for misread frames and plate pieces seen
shortly after the track's last reading; a plate that left is never joined by the next car's
reading at the same spot.
Each track fuses its readings per character position, weighted by the characters'
confidences; readings of another length than the winning one are aligned to it by edit
distance, so a dropped or doubled character still votes for the others. A track publishes once:
as soon as ``min_votes`` readings agree with the fused text and the fused confidence reaches
``min_confidence``, or, failing that, when it ends (unseen for ``window_s``) if the fused
confidence reaches ``min_confidence`` by then and it was read in ``min_seen`` frames or more. A
text just published is not published again until it has been out of sight for ``repeat_after_s``. A text that is a piece of a plate in view at
the same time (half a plate entering the frame, or half of it found by the localiser) is never
published on its own.

The clock is passed in (``now``, seconds, e.g. ``Frame.ts``); nothing here sees images or MQTT.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_ocr.types import Box, Reading

from ..capture.quad import iou
from ..read.textdist import align, edit_distance, part_similarity, similarity

log = logging.getLogger(__name__)


_MAX_READINGS = 100  # per undecided track; beyond, the least confident reading is dropped
# A reading joins a track by place alone (a misread frame, a piece of the plate) only this soon
# after the track's last reading: later, the same spot holds the next car.
_LINK_GAP_S = 0.8
_PIECE_SIMILARITY = 0.8  # part_similarity at which a shorter text counts as a piece of a plate
# share of the fused length's votes a longer reading holding the fused text whole needs to win
_WHOLE_SHARE = 0.5


@dataclass(frozen=True)
class Observation:
    """One reading of one plate in one frame.

    ``payload`` is carried untouched (e.g. the crop and frame for the event): voting keeps the
    one of the most confident observation and hands it back with the result.
    """

    reading: Reading
    box: Box | None = None
    payload: Any = field(default=None, repr=False, compare=False)
    score: float = 1.0  # the localiser's plate score (1.0 for fixed boxes)
    sharpness: float | None = None  # of the crop at the model's height (``view_sharpness``); None = unknown


@dataclass(frozen=True)
class VoteResult:
    """A fused plate, ready to become a ``PlateEvent``.

    ``votes`` counts the readings that agree with ``text`` exactly, ``readings`` all readings of
    the track. ``box`` and ``payload`` come from the most confident agreeing observation.
    ``reason`` is ``"votes"`` (published while in view) or ``"ended"`` (published as it left).
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    votes: int
    readings: int
    first_seen: float
    last_seen: float
    box: Box | None
    payload: Any = field(repr=False, compare=False)
    reason: str = "votes"


@dataclass
class _Track:
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


class Voter:
    """Fuses readings across frames into one result per passing plate.

    Args:
        window_s: a track ends once unseen this long, s.
        min_votes: readings that must agree with the fused text before publishing early.
        min_confidence: fused confidence needed to publish (0..1).
        repeat_after_s: the same text is published again only after it has been out of sight
            this long (measured from the end of the track that published it), s.
        match_iou: box overlap that links a reading to a track whose text differs.
        match_similarity: text similarity (1 - edit distance / longer length) that links a
            reading to a track wherever its box is.
        repeat_max_distance: a text within this edit distance of a recently published one
            counts as the same plate for ``repeat_after_s`` (0: only the identical text).
        min_seen: a track read in fewer frames is never published, not even when it ends: a
            one-frame glimpse is mostly a sign, a sticker or a misread (1: publish it).

    Plain values: the ranges are the ``voting`` config section's, checked once there (``config.py``).
    """

    def __init__(
        self,
        window_s: float = 3.0,
        min_votes: int = 2,
        min_confidence: float = 0.7,
        repeat_after_s: float = 30.0,
        match_iou: float = 0.3,
        match_similarity: float = 0.6,
        repeat_max_distance: int = 0,
        min_seen: int = 2,
    ) -> None:
        self.window_s = window_s
        self.min_votes = min_votes
        self.min_confidence = min_confidence
        self.repeat_after_s = repeat_after_s
        self.match_iou = match_iou
        self.match_similarity = match_similarity
        self.repeat_max_distance = repeat_max_distance
        self.min_seen = min_seen
        self._tracks: list[_Track] = []
        self._recent: dict[str, float] = {}  # published text -> last time it was seen

    @property
    def active_tracks(self) -> int:
        """Plates currently being followed."""
        return len(self._tracks)

    def update(self, now: float, observations: Sequence[Observation]) -> list[VoteResult]:
        """Add one frame's readings (possibly none) and return what is ready to publish.

        Ends tracks unseen for ``window_s`` first, then matches each observation to at most one
        track (and each track takes at most one observation per frame: two plates in one frame
        are two tracks). Readings with empty text are ignored.

        Args:
            now: the frame's time, s (monotonic).
            observations: this frame's readings.

        Returns:
            Results to publish, in no particular order; usually empty.
        """
        out = self._expire(now)
        obs = [o for o in observations if o.reading.text]
        pairs = []
        for oi, o in enumerate(obs):
            for ti, t in enumerate(self._tracks):
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
            self._add(self._tracks[ti], obs[oi], now)
        for oi, o in enumerate(obs):
            if oi not in taken_o:
                t = _Track(first_seen=now, last_seen=now)
                self._tracks.append(t)
                self._add(t, o, now)
        for t in self._tracks:
            if t.last_seen == now and not t.beside and not (t.published or t.suppressed):
                t.beside = self._plate_beside(t, now) or ""
        for t in self._tracks:
            r = self._maybe_publish(t, now, ended=False)
            if r is not None:
                out.append(r)
        return out

    def tick(self, now: float) -> list[VoteResult]:
        """End tracks unseen for ``window_s``; call this when a frame brings no readings (or no
        frame comes). Returns results of ending tracks that qualify."""
        return self._expire(now)

    def carry_over(self, old: Voter) -> None:
        """Take over what ``old`` remembers of published plates (call after ``old.flush``): a
        voter built by a config reload must not publish again the car that is still in view."""
        for text, seen in old._recent.items():
            self._recent[text] = max(self._recent.get(text, seen), seen)

    def flush(self, now: float) -> list[VoteResult]:
        """End every track now (shutdown, reload); returns the results that qualify."""
        out = []
        for t in self._tracks:
            r = self._maybe_publish(t, now, ended=True)
            if r is not None:
                out.append(r)
            self._remember(t)
        self._tracks = []
        return out

    # ------------------------------------------------------------------ internals

    def _affinity(self, o: Observation, t: _Track, now: float) -> float:
        """How well an observation fits a track; 0 = not at all."""
        text, ref = o.reading.text, t.text
        sim = similarity(text, ref)
        gap = now - t.last_seen
        ov = 0.0
        pred = t.predicted_box(now)
        if o.box is not None and pred is not None and t.last_box is not None and gap <= _LINK_GAP_S:
            ov = max(iou(o.box, pred), iou(o.box, t.last_box))
        if sim == 1.0:
            return sim + ov  # the same text: the same plate, wherever and whenever it is seen
        if o.box is None or pred is None:  # no place to go by: the text alone
            return sim if sim >= self.match_similarity else 0.0
        if gap > _LINK_GAP_S:
            # similar text later is another plate of the same series (RK161AG after RK101AO):
            # joining it to that plate's track would lose it
            return 0.0
        if sim >= self.match_similarity and _near(o.box, pred, t.moves):
            return sim + ov
        # a piece of the same plate, where the plate is (its centre inside the plate's box)
        if min(len(text), len(ref)) >= 2 and _centre_in(o.box, pred) and (
                part_similarity(text, ref) >= _PIECE_SIMILARITY or part_similarity(ref, text) >= _PIECE_SIMILARITY):
            return 0.5 + ov
        # a badly misread frame of the same plate: same place, some characters in common
        if ov >= self.match_iou and sim >= 0.3:
            return sim + ov
        return 0.0

    def _add(self, t: _Track, o: Observation, now: float) -> None:
        if o.box is not None:
            if t.last_box is not None and now > t.last_seen:
                dx, dy = _offset(o.box, t.last_box)
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

    def _expire(self, now: float) -> list[VoteResult]:
        out = []
        keep = []
        for t in self._tracks:
            if now - t.last_seen > self.window_s:
                r = self._maybe_publish(t, now, ended=True)
                if r is not None:
                    out.append(r)
                self._remember(t)
            else:
                keep.append(t)
        self._tracks = keep
        # forget suppressed texts that have been gone long enough
        self._recent = {k: v for k, v in self._recent.items() if now - v <= self.repeat_after_s}
        return out

    def _remember(self, t: _Track) -> None:
        # a published (or suppressed) plate stays suppressed until out of sight for the window
        if t.published or t.suppressed:
            text = t.decided_text
            self._recent[text] = max(self._recent.get(text, t.last_seen), t.last_seen)

    def _maybe_publish(self, t: _Track, now: float, ended: bool) -> VoteResult | None:
        if t.published or t.suppressed:
            return None
        text, confs = t.fused
        if not text:
            return None
        conf = min(confs) if confs else 0.0
        agreeing = [o for o in t.observations if o.reading.text == text]
        ready = len(agreeing) >= self.min_votes and conf >= self.min_confidence and not _has_whole(t, text)
        if not ready and not (ended and conf >= self.min_confidence and len(t.observations) >= self.min_seen):
            return None
        t.decided_text = text
        # earlier tracks of this text: ended ones remembered, and live ones (the same plate
        # read twice in one frame, or a track that split) that already published
        seen = [v for old, v in self._recent.items() if edit_distance(old, text) <= self.repeat_max_distance]
        seen += [
            o.last_seen
            for o in self._tracks
            if o is not t
            and (o.published or o.suppressed)
            and edit_distance(o.decided_text, text) <= self.repeat_max_distance
        ]
        last = max(seen, default=None)
        if last is not None and t.first_seen - last <= self.repeat_after_s:
            t.suppressed = True
            log.debug("suppressed repeat of %s (last seen %.1f s before)", text, t.first_seen - last)
            return None
        whole = self._whole_plate_of(t, text) or t.beside
        if whole:
            t.suppressed = True
            log.debug("suppressed %s: a piece of %s or text beside it, in view at the same time", text, whole)
            return None
        t.published = True
        best = max(agreeing or t.observations, key=lambda o: o.reading.confidence)
        log.debug(
            "publishing %s conf %.2f votes %d/%d (%s)",
            text,
            conf,
            len(agreeing),
            len(t.observations),
            "ended" if ended else "votes",
        )
        return VoteResult(
            text,
            conf,
            confs,
            len(agreeing),
            len(t.observations),
            t.first_seen,
            t.last_seen,
            best.box,
            best.payload,
            "ended" if ended else "votes",
        )

    def _whole_plate_of(self, t: _Track, text: str) -> str | None:
        """The longer plate, in view while ``t`` was, that ``text`` is a piece of (if any)."""
        for o in self._tracks:
            if o is t or o.last_seen < t.first_seen - _LINK_GAP_S or o.first_seen > t.last_seen + _LINK_GAP_S:
                continue
            if _is_piece(text, o.text):
                return o.text
        for other, seen in self._recent.items():
            if t.first_seen - seen <= _LINK_GAP_S and _is_piece(text, other):
                return other
        return None

    def _plate_beside(self, t: _Track, now: float) -> str | None:
        """A more plate-like track moving with ``t``, close to it: then ``t`` is other text on the
        same vehicle (a sticker, a dealer's frame, a slogan, a van's lettering), not a second
        plate. More plate-like: a clearly better localiser score (a plate's background ends in
        edges all round, lettering's does not), or taller characters at a score as good."""
        if t.last_box is None:
            return None
        h = t.last_box[3]
        for o in self._tracks:
            if o is t or o.last_box is None or o.last_seen < now - _LINK_GAP_S:
                continue
            if not (o.score >= t.score + 0.1 or (o.last_box[3] >= 1.25 * h and o.score >= t.score - 0.05)):
                continue
            there = o.predicted_box(now)
            assert there is not None
            dx, dy = _offset(t.last_box, there)
            if abs(dx) > 4.0 * there[2] or abs(dy) > 4.0 * there[3]:
                continue  # farther than a vehicle's width from the plate
            if t.moves and o.moves:
                dvx, dvy = t.velocity[0] - o.velocity[0], t.velocity[1] - o.velocity[1]
                speed = max(abs(o.velocity[0]), abs(o.velocity[1]))
                if max(abs(dvx), abs(dvy)) > max(30.0, 0.35 * speed):
                    continue  # not on the same vehicle
            return o.text
        return None


def _has_whole(t: _Track, text: str) -> bool:
    """Whether a reading of ``t`` is a longer plate that ``text`` is a piece of: then the box
    that gave ``text`` missed a character or two in some frames, and the track waits (until it
    ends) for the frames to settle which it is."""
    return any(_is_piece(text, o.reading.text) for o in t.observations)


def _is_piece(text: str, other: str) -> bool:
    """Whether ``text`` is a piece of the longer ``other`` (a plate half in view or half boxed)."""
    return len(other) > len(text) and part_similarity(text, other) >= _PIECE_SIMILARITY


def _near(a: Box, pred: Box, moves: int) -> bool:
    """Whether box ``a`` is where a plate predicted at ``pred`` can be: within one and a half
    plate widths of the prediction once the track's motion is known, three before (a car moves
    up to a plate width or two between frames)."""
    reach = (1.5 if moves else 3.0) * max(pred[2], a[2])
    dx, dy = _offset(a, pred)
    return abs(dx) <= reach and abs(dy) <= reach


def _offset(a: Box, b: Box) -> tuple[float, float]:
    """Centre of box ``a`` minus centre of box ``b``."""
    return a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2


def _centre_in(a: Box, b: Box) -> bool:
    """Whether the centre of box ``a`` lies inside box ``b``."""
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


# ---------------------------------------------------------------------- fusion


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


def fuse(readings: Sequence[Reading], weights: Sequence[float] | None = None) -> tuple[str, tuple[float, ...]]:
    """Fuse readings of one plate into one text with a confidence per character.

    The length is chosen by confidence-weighted vote. The most confident reading of that length
    is the reference; every reading is aligned to it by edit distance and each aligned character
    votes for its position with its confidence. A position's fused confidence is the winner's
    share of the votes there times the mean confidence of the winner's votes. ``weights``
    (e.g. ``view_weights``) scale each reading's votes; they do not change the confidences.

    Args:
        readings: readings of one plate; ``char_confidences`` may be empty (then the reading's
            ``confidence`` is used for every character).
        weights: one per reading, > 0; ``None`` = all 1.

    Returns:
        (text, per-character confidences); ("", ()) for no readings.
    """
    if weights is None:
        weights = [1.0] * len(readings)
    pairs_rw = [(r, w) for r, w in zip(readings, weights, strict=True) if r.text]
    if not pairs_rw:
        return "", ()
    by_len: dict[int, float] = defaultdict(float)
    for r, w in pairs_rw:
        by_len[len(r.text)] += r.confidence * w
    length = max(by_len, key=lambda n: (round(by_len[n], 9), n))  # rounded: summation order must not decide

    def best_of(n: int) -> Reading:
        # ties are broken by the text itself, never by arrival order: the same readings fuse the same
        return max((r for r, _ in pairs_rw if len(r.text) == n), key=lambda r: (r.confidence, r.text))

    ref = best_of(length)
    # a box that cut off an end character gives a piece of the plate, often read confidently;
    # a longer reading that holds it whole, with a fair share of the votes, is the plate
    for n in sorted((n for n in by_len if n > length), reverse=True):
        if by_len[n] >= _WHOLE_SHARE * by_len[length]:
            longer = best_of(n)
            if part_similarity(ref.text, longer.text) >= 1.0:
                length, ref = n, longer
                break
    votes: list[dict[str, list[tuple[float, float]]]] = [defaultdict(list) for _ in range(length)]
    for r, w in pairs_rw:
        confs = _char_confs(r)
        if len(r.text) == length:
            pairs = list(enumerate(range(length)))
        else:
            pairs = align(r.text, ref.text)
        for i, j in pairs:
            votes[j][r.text[i]].append((confs[i], w))
    chars = []
    out_confs = []
    for pos in votes:
        if not pos:  # nobody aligned here (cannot happen for the reference's positions)
            chars.append("?")
            out_confs.append(0.0)
            continue
        total = sum(c * w for v in pos.values() for c, w in v)
        ch, cv = max(pos.items(), key=lambda kv: (round(sum(c * w for c, w in kv[1]), 9), len(kv[1]), kv[0]))
        chars.append(ch)
        share = sum(c * w for c, w in cv) / total if total > 0 else 0.0
        out_confs.append(share * (sum(c for c, _ in cv) / len(cv)))
    return "".join(chars), tuple(out_confs)


def _char_confs(r: Reading) -> tuple[float, ...]:
    if len(r.char_confidences) == len(r.text):
        return r.char_confidences
    return (r.confidence,) * len(r.text)
