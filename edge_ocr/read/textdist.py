"""Edit distance between two texts, and the alignment behind it: one implementation for the
voter (linking and fusing readings), the benchmarks and the evaluation tool."""

from __future__ import annotations

# (i in a, j in b): a match or substitution; (i, None): a[i] deleted; (None, j): b[j] inserted
Step = tuple[int | None, int | None]


def _table(a: str, b: str, free_start: bool = False) -> list[list[int]]:
    """d[i][j]: the distance from a[:i] to b[:j], or with ``free_start`` to any stretch of b
    ending at j (skipping b's start costs nothing)."""
    d = [[0] * (len(b) + 1) if free_start else list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        prev, cur = d[-1], [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        d.append(cur)
    return d


def edit_path(a: str, b: str) -> tuple[int, list[Step]]:
    """Levenshtein distance from ``a`` to ``b`` (insertions, deletions, substitutions, each 1)
    and one optimal path, in text order.

    Where several paths are optimal, the one found walking back from the ends preferring a
    match/substitution, then a deletion, then an insertion: fixed, so the same texts always align
    the same way.
    """
    d = _table(a, b)
    n, m = len(a), len(b)
    steps: list[Step] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            i, j = i - 1, j - 1
            steps.append((i, j))
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            i -= 1
            steps.append((i, None))
        else:
            j -= 1
            steps.append((None, j))
    return d[n][m], steps[::-1]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    return _table(a, b)[-1][-1]


def align(a: str, b: str) -> list[tuple[int, int]]:
    """Index pairs (i in a, j in b) of matched or substituted characters on a minimal edit path."""
    return [(i, j) for i, j in edit_path(a, b)[1] if i is not None and j is not None]


def similarity(a: str, b: str) -> float:
    """1 - edit distance / longer length: 1 for equal texts, 0 for nothing in common."""
    if not a and not b:
        return 1.0
    return 1.0 - edit_distance(a, b) / max(len(a), len(b))


def part_distance(part: str, whole: str) -> int:
    """Fewest edits that turn ``part`` into some stretch of ``whole`` (any start, any end): 0
    when ``part`` is a piece of ``whole``. A plate half in view reads as such a piece."""
    return min(_table(part, whole, free_start=True)[-1])  # and end anywhere: free trailing skip


def part_similarity(part: str, whole: str) -> float:
    """1 - part_distance / len(part): 1 when ``part`` is a piece of ``whole``; 0 for an empty part."""
    if not part:
        return 0.0
    return 1.0 - part_distance(part, whole) / len(part)
