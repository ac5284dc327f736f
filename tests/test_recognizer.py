"""The shipped models through the runtime: dynamic width gives the same readings as full padding."""

import sys
from pathlib import Path

import numpy as np

from edge_ocr.recognizer import DEFAULT_MODEL, Recognizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_demo_video


def test_trimmed_inputs_read_like_padded_ones_and_mixed_batches_line_up() -> None:
    crops = [make_demo_video.clean_plate("7ABC123", "us", 60), make_demo_video.clean_plate("RK115AN", "eu", 30),
             make_demo_video.clean_plate("PJC4903", "br", 40)]
    trimmed = Recognizer(DEFAULT_MODEL, batch_size=1)
    padded = Recognizer(DEFAULT_MODEL, batch_size=1, trim=False)
    assert trimmed.trim == 8 and padded.trim == 0
    a, b = trimmed.recognize(crops), padded.recognize(crops)
    assert [r.text for r in a] == ["7ABC123", "RK115AN", "PJC4903"]
    assert [r.text for r in b] == [r.text for r in a]
    # batches of different widths are filled with blanks to one length and decode the same
    probs = trimmed.probabilities(crops)
    steps = [trimmed.probabilities([c]).shape[1] for c in crops]
    assert steps[0] < steps[1] <= 80  # the 2:1 plate ran at its own, narrower width
    assert probs.shape[:2] == (3, max(steps))
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-4)
    assert np.all(probs[0, steps[0]:, 0] == 1.0)  # the steps it did not compute are certain blanks


def _probs(charset: str, frames: list[dict[str, float]]) -> np.ndarray:
    """(T, C) probabilities: each frame's dict gives characters ('' = blank) and their mass."""
    p = np.full((len(frames), len(charset) + 1), 1e-6)
    for t, f in enumerate(frames):
        for ch, v in f.items():
            p[t, 0 if ch == "" else charset.index(ch) + 1] = v
    return p / p.sum(1, keepdims=True)


def test_formats_mend_a_look_alike_but_do_not_force_a_vanity_plate() -> None:
    from edge_ocr.config import FormatsConfig
    from edge_ocr.formats import FormatRules

    rec = Recognizer(DEFAULT_MODEL)
    cs = rec.charset
    br = FormatRules.from_config(FormatsConfig(regions=["br"])).decoder_patterns(strict_only=True)
    frames = []
    for ch in "NY?3834":
        frames += [{"1": 0.55, "I": 0.45} if ch == "?" else {ch: 1.0}, {"": 1.0}]
    p = _probs(cs, frames)
    assert rec.decode(p).text == "NY13834"  # the model's own best: not a Brazilian plate
    assert rec.decode(p, br).text == "NYI3834"  # LLL9999: the letter was nearly as likely
    vanity = []
    for ch in "CEMENT0":
        vanity += [{ch: 1.0}, {"": 1.0}]
    p = _probs(cs, vanity)
    assert rec.decode(p, br).text == "CEMENT0"  # no format reading is close: the free one stays
    frames[4] = {"1": 0.97, "I": 0.03}  # now the letter is 30x less likely: beyond the default margin
    p = _probs(cs, frames)
    assert rec.decode(p, br).text == "NY13834"
    assert Recognizer(DEFAULT_MODEL, format_margin=5.0).decode(p, br).text == "NYI3834"
