"""CTC decoding on hand-built probability matrices."""

import numpy as np
import pytest

from edge_ocr.read.ctc import beam_search, greedy_decode, softmax

CHARSET = "AB"  # class 1 = A, class 2 = B, class 0 = blank


def frames(*rows: tuple[float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def peaked(seq: str, p: float = 0.9) -> np.ndarray:
    """One frame per symbol of seq ('-' = blank), the symbol with probability p."""
    idx = {"-": 0, "A": 1, "B": 2}
    out = np.full((len(seq), 3), (1 - p) / 2, dtype=np.float32)
    for t, ch in enumerate(seq):
        out[t, idx[ch]] = p
    return out


@pytest.mark.parametrize(
    "seq,text",
    [("AAB", "AB"), ("A-A", "AA"), ("AA", "A"), ("---", ""), ("A", "A"), ("-AB-BA-", "ABBA"), ("B", "B")],
)
def test_greedy_collapses_repeats_and_drops_blanks(seq: str, text: str) -> None:
    assert greedy_decode(peaked(seq), CHARSET).text == text


def test_greedy_char_confidence_is_max_over_its_frames_and_overall_is_product() -> None:
    p = frames((0.1, 0.7, 0.2), (0.1, 0.8, 0.1), (0.9, 0.05, 0.05), (0.2, 0.2, 0.6))
    d = greedy_decode(p, CHARSET)
    assert d.text == "AB"
    assert d.char_confidences == pytest.approx((0.8, 0.6))
    assert d.confidence == pytest.approx(0.48)


def test_all_blank_and_empty_give_empty_reading_with_zero_confidence() -> None:
    assert greedy_decode(peaked("----"), CHARSET).confidence == 0.0
    assert greedy_decode(np.zeros((0, 3), np.float32), CHARSET).text == ""


def test_wrong_class_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="probs must be"):
        greedy_decode(np.zeros((4, 5), np.float32), CHARSET)


@pytest.mark.parametrize("seq", ["AAB", "A-A", "-AB-BA-", "B--B", "A"])
def test_beam_agrees_with_greedy_on_peaked_input(seq: str) -> None:
    p = peaked(seq, 0.95)
    g, b = greedy_decode(p, CHARSET), beam_search(p, CHARSET, beam_width=4)
    assert b.text == g.text
    assert b.char_confidences == pytest.approx(g.char_confidences)


def test_beam_beats_greedy_when_many_alignments_share_a_prefix() -> None:
    # per frame blank 0.6 > A 0.4, so greedy reads nothing; but P("A") = 1 - 0.6**2 = 0.64
    p = frames((0.6, 0.4, 0.0), (0.6, 0.4, 0.0))
    assert greedy_decode(p, CHARSET).text == ""
    b = beam_search(p, CHARSET, beam_width=4)
    assert b.text == "A"
    assert np.exp(b.log_prob) == pytest.approx(0.64, abs=1e-6)


def test_pattern_excludes_impossible_characters_and_fixes_length() -> None:
    # frame 2 slightly prefers A, but the format says position 2 must be B
    p = frames((0.05, 0.9, 0.05), (0.05, 0.5, 0.45), (0.9, 0.05, 0.05))
    assert beam_search(p, CHARSET, 8).text == "A"  # "AA" impossible without a blank between
    d = beam_search(p, CHARSET, 8, pattern=["A", "B"])
    assert d.text == "AB"
    assert d.char_confidences[1] == pytest.approx(0.45)
    assert beam_search(p, CHARSET, 8, pattern=["B", "B", "B", "B"]).text == ""


def test_softmax_rows_sum_to_one_and_survive_large_logits() -> None:
    x = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    s = softmax(x)
    assert np.allclose(s.sum(-1), 1.0)
    assert s[0, 0] == pytest.approx(1.0)
    assert not np.isnan(s).any()
