"""The one edit distance (edge_ocr.textdist) used by the voter, the benchmarks and evaluate.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ocr.read.textdist import align, edit_distance, edit_path, similarity

TEXT = st.text(alphabet="AB01O", max_size=10)


def _distance_by_rows(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@settings(deadline=None)  # the machine may be busy: no timing
@given(TEXT, TEXT)
def test_the_path_turns_a_into_b_at_the_distance(a: str, b: str) -> None:
    dist, path = edit_path(a, b)
    assert dist == _distance_by_rows(a, b) == edit_distance(b, a)
    assert [i for i, _ in path if i is not None] == list(range(len(a)))
    assert [j for _, j in path if j is not None] == list(range(len(b)))
    assert "".join(b[j] for _, j in path if j is not None) == b
    cost = sum(1 for i, j in path if i is None or j is None or a[i] != b[j])
    assert cost == dist
    assert align(a, b) == [(i, j) for i, j in path if i is not None and j is not None]


def test_known_values() -> None:
    assert edit_distance("ABC1234", "ABC234") == 1 and edit_distance("", "ABC") == 3
    assert align("AB12", "AB2") == [(0, 0), (1, 1), (3, 2)]
    assert similarity("", "") == 1.0 and similarity("AB", "CD") == 0.0 and similarity("ABCD", "ABCE") == 0.75
