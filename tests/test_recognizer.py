"""The shipped models through the runtime: dynamic width gives the same readings as full padding."""

import numpy as np

from edge_ocr.config import RecognizerConfig
from edge_ocr.read.recognizer import DEFAULT_MODEL, Recognizer
from edge_ocr.stages import load_recognizer

from . import scenes


def test_trimmed_inputs_read_like_padded_ones_and_mixed_batches_line_up() -> None:
    crops = [scenes.clean_plate("7ABC123", "us", 60), scenes.clean_plate("RK115AN", "eu", 30),
             scenes.clean_plate("PJC4903", "br", 40)]
    cfg = RecognizerConfig(batch_size=1)
    trimmed = load_recognizer(cfg)
    padded = Recognizer(DEFAULT_MODEL, cfg.threads, cfg.graph_optimization, cfg.decoder, cfg.beam_width, cfg.batch_size,
                        trim=False, format_margin=cfg.format_margin)
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
    from edge_ocr.stages import format_rules

    rec = load_recognizer(RecognizerConfig())
    cs = rec.charset
    br = format_rules(FormatsConfig(regions=["br"])).decoder_patterns(strict_only=True)
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
    assert load_recognizer(RecognizerConfig(format_margin=5.0)).decode(p, br).text == "NYI3834"


def test_unsure_crops_are_reread_from_recut_copies_and_only_those() -> None:
    from edge_ocr.read.preprocess import recut_variants

    plate = scenes.clean_plate("7ABC123", "us", 60)
    assert [v.shape for v in recut_variants(plate)] == [
        (60, 120 + 2 * 4), (60, int(120 * 1.12)), (60, 120 - 2 * 4), (60, 108), (60 - 2 * 3, 120)]
    assert len(recut_variants(np.zeros((6, 9), np.uint8))) == 2  # too small to cut: only pad and stretch

    rec = load_recognizer(RecognizerConfig(batch_size=8))
    seen: list[int] = []
    probabilities = rec.probabilities
    rec.probabilities = lambda crops: (seen.append(len(crops)), probabilities(crops))[1]  # counts what is read
    noise = np.random.default_rng(3).integers(0, 256, (40, 140, 3), dtype=np.uint8)
    once = load_recognizer(RecognizerConfig(batch_size=8)).recognize([plate, noise])
    assert once[0].confidence >= 0.6 > once[1].confidence
    again = rec.recognize([plate, noise], retry_below=0.6)
    assert seen == [2, 5]  # the confident plate is read once, the unsure crop five more times
    assert again[0] == once[0]
    # the kept reading's confidence is discounted by the share of the six reads agreeing with it,
    # and stays the product of its character confidences (0 when no read found any text)
    r = again[1]
    assert abs(r.confidence - (float(np.prod(r.char_confidences)) if r.text else 0.0)) < 1e-6
    seen.clear()
    assert rec.recognize([plate, noise], retry_below=0.0) == once and seen == [2]


def test_the_most_confident_read_is_discounted_by_disagreement() -> None:
    from edge_ocr.read.recognizer import _most_confident_discounted
    from edge_ocr.types import Reading

    reads = [Reading("AB12", 0.5, (0.9, 0.9, 0.8, 0.77)), Reading("A812", 0.8, (0.95, 0.94, 0.95, 0.94)),
             Reading("A812", 0.6, (0.9, 0.9, 0.9, 0.82)), Reading("AB12", 0.4, (0.8, 0.8, 0.8, 0.78))]
    best = _most_confident_discounted(reads)
    assert best.text == "A812"
    assert abs(best.confidence - 0.95 * 0.94 * 0.95 * 0.94 * 2 / 4) < 1e-6
    assert abs(best.confidence - float(np.prod(best.char_confidences))) < 1e-9
    same = [Reading("A812", 0.8, (0.95, 0.94, 0.95, 0.94))] * 3
    assert _most_confident_discounted(same) == same[0]  # all agree: nothing to discount


def test_still_images_retry_and_the_live_pipeline_only_when_asked() -> None:
    from edge_ocr.config import parse_config
    from edge_ocr.stages import Stages

    rec = load_recognizer(RecognizerConfig())
    seen: list[int] = []
    probabilities = rec.probabilities
    rec.probabilities = lambda crops: (seen.append(len(crops)), probabilities(crops))[1]
    cfg = parse_config("mqtt: {enabled: false}")
    noise = np.random.default_rng(3).integers(0, 256, (40, 140, 3), dtype=np.uint8)
    stages = Stages.from_config(cfg, rec)
    stages.still.read(noise, crop=True)
    assert seen == [1, 5]
    assert stages.live_reader.retry_below == 0.0
    live = parse_config("mqtt: {enabled: false}\nrecognizer: {retry_live: true, retry_below: 0.5}")
    assert Stages.from_config(live, rec).live_reader.retry_below == 0.5


def test_region_aware_decoding_never_emits_a_character_the_regions_cannot_hold() -> None:
    """A crop whose first column the model reads as a Hanzi (the failure seen on a new
    Brazilian camera) reads as the Latin letter underneath once ``cn`` is not enabled."""
    from edge_ocr.read.formats import FormatRules

    rec = load_recognizer(RecognizerConfig())
    cs = rec.charset
    # frame 1: the model is torn between 贵 and A; then S, D, 6, 7, 2, 7
    frames = [{"贵": 0.55, "A": 0.4}, {"": 0.9}, {"S": 0.9}, {"D": 0.9}, {"": 0.9}, {"6": 0.9}, {"7": 0.9},
              {"2": 0.9}, {"": 0.9}, {"7": 0.9}]
    p = _probs(cs, frames)
    assert rec._reading(p, None).text == "贵SD6727"
    latin = FormatRules(["us", "eu", "br"]).charset()
    assert latin is not None and not any(c in latin for c in "贵京皖警")
    mask = rec.class_mask(latin)
    masked = rec._reading(p, None, mask)
    assert masked.text == "ASD6727"
    assert 0.0 < masked.char_confidences[0] <= 1.0
    # with cn enabled the Hanzi stays possible; with formats disabled nothing is restricted
    assert "贵" in FormatRules(["cn"]).charset()
    assert FormatRules(enabled=False).charset() is None and rec.class_mask(None) is None
    # the real model on a real rendering: the same text with and without the mask
    crop = scenes.clean_plate("PJC4903", "br", 40)
    assert rec.recognize([crop], allowed=latin)[0].text == "PJC4903"
    assert rec.recognize([crop], allowed=frozenset("0123456789"))[0].text.isdigit()


def test_the_calibrated_temperature_lowers_confidence_but_never_changes_the_text(tmp_path) -> None:
    """The shipped files carry ``edge_ocr.temperature`` (tools/calibrate.py); the runtime divides
    the logits by it, so a crop reads the same text as at temperature 1, less sure; a file
    without the key reads at 1.0, a nonsense value is refused naming the file and the key."""
    import shutil

    import pytest

    from edge_ocr.stages import StartupError
    from tools.calibrate import write_temperature

    shipped = load_recognizer(RecognizerConfig())
    assert shipped.info.temperature > 1.0  # the network is overconfident: the fit spreads it out
    import onnx

    m = onnx.load(str(DEFAULT_MODEL))  # an older file, written before calibration
    kept = [p for p in m.metadata_props if p.key != "edge_ocr.temperature"]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    plain = tmp_path / "t1.onnx"
    onnx.save(m, str(plain))
    at_one = load_recognizer(RecognizerConfig(model=str(plain)))
    assert at_one.info.temperature == 1.0
    crops = [scenes.clean_plate("7ABC123", "us", 60), scenes.clean_plate("RK115AN", "eu", 16),
             np.random.default_rng(3).integers(0, 256, (40, 140, 3), dtype=np.uint8)]
    a, b = shipped.recognize(crops), at_one.recognize(crops)
    assert [r.text for r in a] == [r.text for r in b] and a[0].text == "7ABC123"
    # (an empty reading has confidence 0 at any temperature; a sure one rounds to 1)
    assert all(x.confidence < y.confidence for x, y in zip(a, b) if 0.0 < y.confidence < 1.0)
    assert any(x.confidence < y.confidence for x, y in zip(a, b))
    bad = tmp_path / "bad.onnx"
    shutil.copy(DEFAULT_MODEL, bad)
    write_temperature(bad, 0.0)
    with pytest.raises(StartupError, match="recognizer.model: .*bad.onnx.*edge_ocr.temperature"):
        load_recognizer(RecognizerConfig(model=str(bad)))
