"""Known plates: which named entry of ``known_plates`` a published plate is, and how closely.

A gate opens for ``our car`` even when the voter's text is one look-alike or one character off
(``PJB739Z`` for ``PJB7392``): a camera misreads those far more often than two different cars
carry plates that close (measured by ``tools/eval_known_plates.py``, figures in the README).

Both sides are compared in upper case without spaces, dashes or dots; with ``lookalikes`` each
character is first folded to the representative of its look-alike group (``O`` -> ``0``), so a
look-alike swap costs nothing; then plain plates allow ``max_edits`` insertions, deletions or
substitutions (``textdist.edit_distance``, the voter's own). Patterns (``*``, ``?``, shell
style) match with look-alikes but no edits: a pattern already says which characters may vary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..read.textdist import edit_distance
from ..types import KnownMatch

# each group's first character stands for the group; a letter and a digit a camera confuses
LOOKALIKE_GROUPS = ("0OQD", "1I", "2Z", "5S", "6G", "8B")
_FOLD = {c: g[0] for g in LOOKALIKE_GROUPS for c in g}
_SEPARATORS = re.compile(r"[\s\-.]")

# how a match was made, best first: the order that ranks two entries a text matches equally far
KINDS = ("exact", "lookalike", "pattern", "near")


def normalise(text: str) -> str:
    """Upper case, without the spaces, dashes and dots that plates print but readings lack."""
    return _SEPARATORS.sub("", text).upper()


def fold(text: str) -> str:
    """Every look-alike replaced by its group's representative (``PJB739Z`` -> ``PJ87392``)."""
    return "".join(_FOLD.get(c, c) for c in text)


@dataclass(frozen=True)
class _Plate:
    name: str
    written: str
    bare: str  # normalised
    folded: str  # normalised, and folded when look-alikes are on
    pattern: bool


class KnownPlates:
    """Named plates (and patterns), ready to match readings against.

    Args:
        entries: (name, plates or patterns) in the order a tie is broken by.
        max_edits: edits beyond look-alike swaps a plain plate allows.
        lookalikes: fold look-alikes before comparing.
    """

    def __init__(self, entries: Sequence[tuple[str, Sequence[str]]], max_edits: int, lookalikes: bool) -> None:
        self.max_edits = max_edits
        self.lookalikes = lookalikes
        self._plates = [self._prepare(name, p) for name, plates in entries for p in plates]

    def _prepare(self, name: str, written: str) -> _Plate:
        bare = normalise(written)
        return _Plate(name, written, bare, fold(bare) if self.lookalikes else bare, any(c in bare for c in "*?"))

    def __len__(self) -> int:
        return len(self._plates)

    def match(self, text: str) -> KnownMatch | None:
        """The closest entry ``text`` matches (the first listed on a tie), or None."""
        found = self.matches(text)
        return found[0] if found else None

    def matches(self, text: str) -> list[KnownMatch]:
        """Every configured plate ``text`` matches, closest first (in config order on a tie)."""
        bare = normalise(text)
        if not bare:
            return []
        folded = fold(bare) if self.lookalikes else bare
        found = [m for m in (self._one(p, bare, folded) for p in self._plates) if m is not None]
        return sorted(found, key=lambda m: (m.distance, KINDS.index(m.kind)))

    def _one(self, p: _Plate, bare: str, folded: str) -> KnownMatch | None:
        if p.pattern:
            ok = fnmatchcase(folded, p.folded)
            return KnownMatch(p.name, p.written, "pattern", 0) if ok else None
        if bare == p.bare:
            return KnownMatch(p.name, p.written, "exact", 0)
        if folded == p.folded:
            return KnownMatch(p.name, p.written, "lookalike", 0)
        if self.max_edits and abs(len(folded) - len(p.folded)) <= self.max_edits:
            d = edit_distance(folded, p.folded)
            if d <= self.max_edits:
                return KnownMatch(p.name, p.written, "near", d)
        return None
