"""Fusion: many readings of one plate -> one text with a confidence per character."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..read.textdist import align, part_similarity
from ..types import Reading

# share of the fused length's votes a longer reading holding the fused text whole needs to win
_WHOLE_SHARE = 0.5


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
