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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..read.textdist import edit_distance, part_similarity
from ..types import Box
from .tracks import LINK_GAP_S, PIECE_SIMILARITY, Observation, Track, Tracker, offset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoteResult:
    """A fused plate, ready to become a ``PlateEvent``.

    ``votes`` counts the readings that agree with ``text`` exactly, ``readings`` all readings of
    the track. ``box``, ``payload`` and ``region`` come from the most confident agreeing
    observation; ``region`` is None when no reading agrees (``votes`` 0: the fused text is no
    single reading's, so no reader said its region).
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
    region: str | None = None


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
        window_s: float,
        min_votes: int,
        min_confidence: float,
        repeat_after_s: float,
        match_iou: float = 0.3,
        match_similarity: float = 0.6,
        repeat_max_distance: int = 0,
        *,
        min_seen: int,
    ) -> None:
        self.window_s = window_s
        self.min_votes = min_votes
        self.min_confidence = min_confidence
        self.repeat_after_s = repeat_after_s
        self.repeat_max_distance = repeat_max_distance
        self.min_seen = min_seen
        self._tracker = Tracker(match_iou, match_similarity)
        self._recent: dict[str, float] = {}  # published text -> last time it was seen

    @property
    def _tracks(self) -> list[Track]:
        return self._tracker.tracks

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
        self._tracker.match(now, [o for o in observations if o.reading.text])
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
        return self._end(list(self._tracks), now)

    def _expire(self, now: float) -> list[VoteResult]:
        out = self._end(self._tracker.unseen_for(now, self.window_s), now)
        # forget suppressed texts that have been gone long enough
        self._recent = {k: v for k, v in self._recent.items() if now - v <= self.repeat_after_s}
        return out

    def _end(self, ended: list[Track], now: float) -> list[VoteResult]:
        """Decide the ``ended`` tracks (each seeing the others still held), then let them go."""
        out = []
        for t in ended:
            r = self._maybe_publish(t, now, ended=True)
            if r is not None:
                out.append(r)
            self._remember(t)
        self._tracker.drop(ended)
        return out

    def _remember(self, t: Track) -> None:
        # a published (or suppressed) plate stays suppressed until out of sight for the window
        if t.published or t.suppressed:
            text = t.decided_text
            self._recent[text] = max(self._recent.get(text, t.last_seen), t.last_seen)

    def _maybe_publish(self, t: Track, now: float, ended: bool) -> VoteResult | None:
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
            best.region if agreeing else None,
        )

    def _whole_plate_of(self, t: Track, text: str) -> str | None:
        """The longer plate, in view while ``t`` was, that ``text`` is a piece of (if any)."""
        for o in self._tracks:
            if o is t or o.last_seen < t.first_seen - LINK_GAP_S or o.first_seen > t.last_seen + LINK_GAP_S:
                continue
            if _is_piece(text, o.text):
                return o.text
        for other, seen in self._recent.items():
            if t.first_seen - seen <= LINK_GAP_S and _is_piece(text, other):
                return other
        return None

    def _plate_beside(self, t: Track, now: float) -> str | None:
        """A more plate-like track moving with ``t``, close to it: then ``t`` is other text on the
        same vehicle (a sticker, a dealer's frame, a slogan, a van's lettering), not a second
        plate. More plate-like: a clearly better localiser score (a plate's background ends in
        edges all round, lettering's does not), or taller characters at a score as good."""
        if t.last_box is None:
            return None
        h = t.last_box[3]
        for o in self._tracks:
            if o is t or o.last_box is None or o.last_seen < now - LINK_GAP_S:
                continue
            if not (o.score >= t.score + 0.1 or (o.last_box[3] >= 1.25 * h and o.score >= t.score - 0.05)):
                continue
            there = o.predicted_box(now)
            assert there is not None
            dx, dy = offset(t.last_box, there)
            if abs(dx) > 4.0 * there[2] or abs(dy) > 4.0 * there[3]:
                continue  # farther than a vehicle's width from the plate
            if t.moves and o.moves:
                dvx, dvy = t.velocity[0] - o.velocity[0], t.velocity[1] - o.velocity[1]
                speed = max(abs(o.velocity[0]), abs(o.velocity[1]))
                if max(abs(dvx), abs(dvy)) > max(30.0, 0.35 * speed):
                    continue  # not on the same vehicle
            return o.text
        return None


def _has_whole(t: Track, text: str) -> bool:
    """Whether a reading of ``t`` is a longer plate that ``text`` is a piece of: then the box
    that gave ``text`` missed a character or two in some frames, and the track waits (until it
    ends) for the frames to settle which it is."""
    return any(_is_piece(text, o.reading.text) for o in t.observations)


def _is_piece(text: str, other: str) -> bool:
    """Whether ``text`` is a piece of the longer ``other`` (a plate half in view or half boxed)."""
    return len(other) > len(text) and part_similarity(text, other) >= PIECE_SIMILARITY
