"""Property tests of the pure parts: CTC decoding, preprocessing, voting.

Budgets are fixed so CI stays fast; EDGE_OCR_FUZZ_EXAMPLES=5000 runs the long mode.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_ocr.config import VotingConfig
from edge_ocr.decide.fusion import fuse
from edge_ocr.decide.tracks import Observation
from edge_ocr.read.ctc import beam_search, greedy_decode
from edge_ocr.read.preprocess import PreprocessSpec, preprocess, preprocess_batch
from edge_ocr.stages import voter as make_voter
from edge_ocr.types import Reading

N = int(os.environ.get("EDGE_OCR_FUZZ_EXAMPLES", "150"))
CFG = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHARSET = "ABC0123"
C = len(CHARSET) + 1
SPEC = PreprocessSpec()


def collapse(path: list[int]) -> str:
    out, prev = [], -1
    for k in path:
        if k != prev and k != 0:
            out.append(CHARSET[k - 1])
        prev = k
    return "".join(out)


def peaked(path: list[int], rest: float) -> np.ndarray:
    """(T, C) probabilities whose argmax follows ``path``; ``rest`` spread over the others."""
    p = np.full((len(path), C), rest / (C - 1), np.float64)
    p[np.arange(len(path)), path] = 1.0 - rest
    return p


paths = st.lists(st.integers(0, C - 1), min_size=1, max_size=40)
dists = st.integers(1, 30).flatmap(lambda t: hnp.arrays(np.float64, (t, C), elements=st.floats(0.001, 1.0)))


@CFG
@given(paths, st.floats(0.0, 0.3))
def test_greedy_collapses_repeats_and_drops_blanks(path: list[int], rest: float) -> None:
    d = greedy_decode(peaked(path, rest), CHARSET)
    assert d.text == collapse(path)
    assert len(d.char_confidences) == len(d.text)


@CFG
@given(paths, st.floats(0.0, 0.1))
def test_beam_of_width_one_equals_greedy_on_confident_frames(path: list[int], rest: float) -> None:
    p = peaked(path, rest)
    assert beam_search(p, CHARSET, beam_width=1).text == greedy_decode(p, CHARSET).text


@CFG
@given(dists)
def test_confidences_are_probabilities(raw: np.ndarray) -> None:
    p = raw / raw.sum(1, keepdims=True)
    for d in (greedy_decode(p, CHARSET), beam_search(p, CHARSET, beam_width=4)):
        assert 0.0 <= d.confidence <= 1.0 + 1e-9
        assert all(0.0 <= c <= 1.0 + 1e-9 for c in d.char_confidences)
        assert len(d.char_confidences) == len(d.text)


@CFG
@given(dists, st.lists(st.sampled_from(["AB", "C", "0123", "A0", "B"]), min_size=1, max_size=6))
def test_a_format_pattern_is_always_respected(raw: np.ndarray, pattern: list[str]) -> None:
    p = raw / raw.sum(1, keepdims=True)
    d = beam_search(p, CHARSET, beam_width=4, pattern=pattern)
    assert d.text == "" or (len(d.text) == len(pattern) and all(c in s for c, s in zip(d.text, pattern)))


images = st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64]),
               st.tuples(st.integers(1, 80), st.integers(1, 400))),
    hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.float32]),
               st.tuples(st.integers(1, 60), st.integers(1, 300), st.sampled_from([1, 2, 3, 4, 5]))),
)


@CFG
@given(images)
def test_preprocess_gives_the_model_shape_and_range_or_a_clear_error(img: np.ndarray) -> None:
    try:
        x = preprocess(img, SPEC)
    except ValueError as exc:
        assert "not an image" in str(exc)
        return
    assert x.shape == (1, SPEC.height, SPEC.width) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= -1.0 and x.max() <= 1.0


def test_extreme_aspect_ratios() -> None:
    for shape in ((1, 100000), (100000, 1), (1, 1), (2, 3, 4)):
        x = preprocess(np.full(shape, 200, np.uint8), SPEC)
        assert x.shape == (1, 32, 160)
    x = preprocess_batch([np.zeros((1, 100000), np.uint8)], SPEC, trim=8)
    assert x.shape == (1, 1, 32, 160)


texts = st.sampled_from(["ABC123", "ABC128", "ABD123", "AB123", "XBC123"])


@CFG
@given(st.lists(st.tuples(texts, st.sampled_from([0.6, 0.9])), min_size=1, max_size=7))
def test_fusion_does_not_depend_on_the_order_of_readings(items: list[tuple[str, float]]) -> None:
    readings = [Reading(t, c, (c,) * len(t)) for t, c in items]
    results = {(text, tuple(round(c, 9) for c in confs))  # summation order moves the last bits only
               for text, confs in (fuse(list(p)) for p in itertools.islice(itertools.permutations(readings), 24))}
    assert len(results) == 1, results


@CFG
@given(st.lists(st.tuples(st.floats(0.05, 2.5), texts), min_size=1, max_size=40), st.integers(1, 4))
def test_a_plate_never_fires_twice_inside_the_repeat_window(frames: list[tuple[float, str]], votes: int) -> None:
    voter = make_voter(VotingConfig(window_s=3.0, min_votes=votes, min_confidence=0.5, repeat_after_s=1000.0))
    now, published = 0.0, []
    for gap, text in frames:
        now += gap
        obs = [Observation(Reading(text, 0.95, (0.95,) * len(text)), (100, 100, 120, 30))]
        published += [r.text for r in voter.update(now, obs)]
    published += [r.text for r in voter.flush(now + 10.0)]
    assert len(published) == len(set(published)), published


@pytest.mark.parametrize("order", [0, 1])
def test_ended_track_result_is_order_free_for_equal_confidences(order: int) -> None:
    texts_ = ["ABC123", "ABC128", "ABC123", "ABC128"]
    seq = texts_ if order == 0 else texts_[::-1]
    voter = make_voter(VotingConfig(window_s=1.0, min_votes=100, min_confidence=0.1))
    for i, t in enumerate(seq):
        voter.update(i * 0.1, [Observation(Reading(t, 0.9, (0.9,) * 6), (0, 0, 100, 20))])
    (res,) = voter.flush(10.0)
    assert res.text == "ABC128"  # a tie at the last position is broken by character, not by arrival
