"""The shipped models through the runtime: dynamic width gives the same readings as full padding."""

import sys
from pathlib import Path

import numpy as np

from edge_ocr.recognizer import DEFAULT_MODEL, Recognizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_demo_video  # noqa: E402


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
