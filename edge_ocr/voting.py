"""Multi-frame voting: many noisy readings of one passing plate -> one event.

Readings are grouped into tracks (one per plate in view) by box overlap and text similarity.
Each track fuses its readings per character position, weighted by the characters'
confidences; readings of another length than the winning one are aligned to it by edit
distance, so a dropped or doubled character still votes for the others. A track publishes once:
as soon as ``min_votes`` readings agree with the fused text and the fused confidence reaches
``min_confidence``, or, failing that, when it ends (unseen for ``window_s``) if the fused
confidence reaches ``min_confidence`` by then. A text just published is not published again
until it has been out of sight for ``repeat_after_s``.

The clock is passed in (``now``, seconds, e.g. ``Frame.ts``); nothing here sees images or MQTT.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_ocr.config import VotingConfig
from edge_ocr.types import Box, Reading

from .quad import iou
from .textdist import align, edit_distance, similarity

log = logging.getLogger(__name__)


_MAX_READINGS = 100  # per undecided track; beyond, the least confident reading is dropped


@dataclass(frozen=True)
class Observation:
    """One reading of one plate in one frame.

    ``payload`` is carried untouched (e.g. the crop and frame for the event): voting keeps the
    one of the most confident observation and hands it back with the result.
    """

    reading: Reading
    box: Box | None = None
    payload: Any = field(default=None, repr=False, compare=False)


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

    Raises:
        ValueError: a parameter out of range.
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
    ) -> None:
        if window_s <= 0 or min_votes < 1 or not 0 <= min_confidence <= 1 or repeat_after_s < 0:
            raise ValueError("voting: window_s > 0, min_votes >= 1, 0 <= min_confidence <= 1, repeat_after_s >= 0")
        self.window_s = window_s
        self.min_votes = min_votes
        self.min_confidence = min_confidence
        self.repeat_after_s = repeat_after_s
        self.match_iou = match_iou
        self.match_similarity = match_similarity
        self.repeat_max_distance = repeat_max_distance
        self._tracks: list[_Track] = []
        self._recent: dict[str, float] = {}  # published text -> last time it was seen

    @classmethod
    def from_config(cls, cfg: VotingConfig) -> Voter:
        """Build from the ``voting`` config section."""
        return cls(cfg.window_s, cfg.min_votes, cfg.min_confidence, cfg.repeat_after_s)

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
                s = self._affinity(o, t)
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

    def _affinity(self, o: Observation, t: _Track) -> float:
        """How well an observation fits a track; 0 = not at all."""
        sim = similarity(o.reading.text, t.fused[0])
        ov = iou(o.box, t.last_box) if o.box is not None and t.last_box is not None else 0.0
        if sim >= self.match_similarity:
            return sim + ov
        # a badly misread frame of the same plate: same place, some characters in common
        if ov >= self.match_iou and sim >= 0.3:
            return sim + ov
        return 0.0

    def _add(self, t: _Track, o: Observation, now: float) -> None:
        t.last_seen = now
        if o.box is not None:
            t.last_box = o.box
        if t.published or t.suppressed:
            # decided: the track now only keeps the plate from being published again, and a
            # car standing at a gate for minutes must not make every frame slower
            t.seen_after += 1
            return
        t.observations.append(o)
        if len(t.observations) > _MAX_READINGS:
            t.observations.remove(min(t.observations, key=lambda ob: ob.reading.confidence))
        t.fused = fuse([ob.reading for ob in t.observations])

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
        ready = len(agreeing) >= self.min_votes and conf >= self.min_confidence
        if not ready and not (ended and conf >= self.min_confidence):
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


# ---------------------------------------------------------------------- fusion


def fuse(readings: Sequence[Reading]) -> tuple[str, tuple[float, ...]]:
    """Fuse readings of one plate into one text with a confidence per character.

    The length is chosen by confidence-weighted vote. The most confident reading of that length
    is the reference; every reading is aligned to it by edit distance and each aligned character
    votes for its position with its confidence. A position's fused confidence is the winner's
    share of the votes there times the mean confidence of the winner's votes.

    Args:
        readings: readings of one plate; ``char_confidences`` may be empty (then the reading's
            ``confidence`` is used for every character).

    Returns:
        (text, per-character confidences); ("", ()) for no readings.
    """
    readings = [r for r in readings if r.text]
    if not readings:
        return "", ()
    by_len: dict[int, float] = defaultdict(float)
    for r in readings:
        by_len[len(r.text)] += r.confidence
    length = max(by_len, key=lambda n: (round(by_len[n], 9), n))  # rounded: summation order must not decide
    # ties are broken by the text itself, never by arrival order: the same readings fuse the same
    ref = max((r for r in readings if len(r.text) == length), key=lambda r: (r.confidence, r.text))
    votes: list[dict[str, list[float]]] = [defaultdict(list) for _ in range(length)]
    for r in readings:
        confs = _char_confs(r)
        if len(r.text) == length:
            pairs = list(enumerate(range(length)))
        else:
            pairs = align(r.text, ref.text)
        for i, j in pairs:
            votes[j][r.text[i]].append(confs[i])
    chars = []
    out_confs = []
    for pos in votes:
        if not pos:  # nobody aligned here (cannot happen for the reference's positions)
            chars.append("?")
            out_confs.append(0.0)
            continue
        total = sum(sum(v) for v in pos.values())
        ch, cv = max(pos.items(), key=lambda kv: (round(sum(kv[1]), 9), len(kv[1]), kv[0]))
        chars.append(ch)
        share = sum(cv) / total if total > 0 else 0.0
        out_confs.append(share * (sum(cv) / len(cv)))
    return "".join(chars), tuple(out_confs)


def _char_confs(r: Reading) -> tuple[float, ...]:
    if len(r.char_confidences) == len(r.text):
        return r.char_confidences
    return (r.confidence,) * len(r.text)
