"""Multi-frame voting with scripted sequences of readings and a scripted clock."""

from __future__ import annotations

import random

import numpy as np
import pytest

from edge_ocr.config import ConfigError, VotingConfig, parse_config
from edge_ocr.decide.fusion import fuse
from edge_ocr.decide.tracks import Observation, view_weights
from edge_ocr.decide.voting import Voter, VoteResult
from edge_ocr.read.textdist import edit_distance, similarity
from edge_ocr.stages import voter as make_voter
from edge_ocr.types import Reading

ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def reading(text: str, conf: float = 0.9, confs: tuple[float, ...] | None = None) -> Reading:
    c = confs if confs is not None else (conf,) * len(text)
    return Reading(text, min(c) if c else 0.0, c)


def noisy(rng: random.Random, text: str) -> Reading:
    """A reading as a recogniser gives them: mostly right, sometimes one character wrong or
    missing (with a lower confidence there), now and then a doubled character."""
    chars = list(text)
    confs = [rng.uniform(0.8, 0.99) for _ in chars]
    r = rng.random()
    if r < 0.35:
        i = rng.randrange(len(chars))
        chars[i] = rng.choice([c for c in ALPHABET if c != chars[i]])
        confs[i] = rng.uniform(0.3, 0.7)
    elif r < 0.45:
        i = rng.randrange(len(chars))
        del chars[i], confs[i]
    elif r < 0.5:
        i = rng.randrange(len(chars))
        chars.insert(i, chars[i])
        confs.insert(i, rng.uniform(0.4, 0.8))
    return Reading("".join(chars), min(confs), tuple(confs))


def run(voter: Voter, script: list[tuple[float, list[Observation]]], end: float) -> list[VoteResult]:
    out = []
    for t, obs in script:
        out += voter.update(t, obs)
    out += voter.tick(end)
    return out


def test_thirty_noisy_readings_of_one_car_give_one_event() -> None:
    rng = random.Random(7)
    voter = make_voter(VotingConfig(window_s=3.0, min_votes=3, min_confidence=0.7))
    script = []
    for i in range(30):
        box = (100 + 15 * i, 400 - 3 * i, 120, 40)  # the car drives across
        script.append((i * 0.1, [Observation(noisy(rng, "ABC1234"), box, payload=i)]))
    results = run(voter, script, end=10.0)
    assert len(results) == 1
    r = results[0]
    assert r.text == "ABC1234"
    assert r.confidence >= 0.7 and len(r.char_confidences) == 7
    assert r.votes >= 3 and r.readings >= r.votes
    assert voter.active_tracks == 0


def test_early_publish_once_then_nothing_more() -> None:
    voter = make_voter(VotingConfig(window_s=2.0, min_votes=2, min_confidence=0.7))
    box = (10, 10, 100, 30)
    assert voter.update(0.0, [Observation(reading("XYZ987"), box)]) == []
    first = voter.update(0.1, [Observation(reading("XYZ987", 0.95), box, payload="best crop")])
    assert [r.text for r in first] == ["XYZ987"]
    assert first[0].reason == "votes" and first[0].votes == 2
    assert first[0].payload == "best crop" and first[0].box == box  # of the most confident reading
    later = [voter.update(0.2 + 0.1 * i, [Observation(reading("XYZ987"), box)]) for i in range(10)]
    assert all(x == [] for x in later)
    assert voter.tick(10.0) == []  # the ending track was already published


def test_one_off_misreads_are_outvoted() -> None:
    voter = make_voter(VotingConfig(min_votes=5))
    texts = ["ABC1234"] * 4 + ["A8C1234"] + ["ABC1234"] * 3 + ["ABC12J4"]
    results = run(voter, [(0.1 * i, [Observation(reading(t), (50, 50, 90, 30))]) for i, t in enumerate(texts)], 9.0)
    assert [r.text for r in results] == ["ABC1234"]


def test_two_cars_at_once_give_two_events() -> None:
    rng = random.Random(3)
    voter = make_voter(VotingConfig(min_votes=3))
    script = []
    for i in range(20):
        script.append(
            (
                i * 0.1,
                [
                    Observation(noisy(rng, "ABC1234"), (100 + 10 * i, 300, 120, 40), "left"),
                    Observation(noisy(rng, "XYZ9876"), (900 - 10 * i, 320, 120, 40), "right"),
                ],
            )
        )
    results = run(voter, script, 10.0)
    assert sorted(r.text for r in results) == ["ABC1234", "XYZ9876"]
    assert {r.text: r.payload for r in results} == {"ABC1234": "left", "XYZ9876": "right"}


def test_two_cars_one_after_the_other_in_a_fixed_box() -> None:
    voter = make_voter(VotingConfig(window_s=1.0, min_votes=2, repeat_after_s=30))
    box = (0, 0, 200, 60)  # gate camera: every reading has the ROI box
    script = [(0.1 * i, [Observation(reading("ABC1234"), box)]) for i in range(5)]
    script += [(0.5 + 0.1 * i, [Observation(reading("KLM5678"), box)]) for i in range(5)]  # next car, no gap
    results = run(voter, script, 10.0)
    assert [r.text for r in results] == ["ABC1234", "KLM5678"]


def test_same_plate_returning_is_suppressed_within_the_window_and_published_after() -> None:
    voter = make_voter(VotingConfig(window_s=2.0, min_votes=2, repeat_after_s=30.0))

    def visit(t0: float) -> list[VoteResult]:
        out = []
        for i in range(5):
            out += voter.update(t0 + 0.1 * i, [Observation(reading("ABC1234"), (100, 100, 80, 25))])
        return out

    assert [r.text for r in visit(0.0)] == ["ABC1234"]
    assert voter.tick(5.0) == []
    assert visit(20.0) == []  # back 20 s after it left: the gate already opened for it
    assert voter.tick(25.0) == []
    # last seen at 20.4; back 31 s later: published again (a car that returns must get in)
    assert [r.text for r in visit(51.5)] == ["ABC1234"]
    # another plate is never held back by the first
    assert [r.text for r in visit_other(voter, 52.0)] == ["XYZ987"]


def visit_other(voter: Voter, t0: float) -> list[VoteResult]:
    out = []
    for i in range(3):
        out += voter.update(t0 + 0.1 * i, [Observation(reading("XYZ987"), (600, 100, 80, 25))])
    return out


def test_same_text_twice_in_one_frame_is_one_event() -> None:
    voter = make_voter(VotingConfig(min_votes=2))
    results = []
    for i in range(4):
        results += voter.update(
            0.1 * i,
            [Observation(reading("ABC1234"), (100, 100, 80, 25)), Observation(reading("ABC1234"), (400, 100, 80, 25))],
        )
    results += voter.tick(10.0)
    assert [r.text for r in results] == ["ABC1234"]


def test_low_confidence_is_never_published() -> None:
    voter = make_voter(VotingConfig(min_votes=2, min_confidence=0.7))
    script = [(0.1 * i, [Observation(reading("ABC1234", 0.4), (0, 0, 10, 10))]) for i in range(10)]
    assert run(voter, script, 10.0) == []


def test_a_plate_seen_twice_is_published_when_its_track_ends() -> None:
    voter = make_voter(VotingConfig(window_s=1.0, min_votes=3, min_confidence=0.7))
    assert voter.update(0.0, [Observation(reading("FAST123", 0.95), (0, 0, 10, 10))]) == []
    assert voter.update(0.1, [Observation(reading("FAST123", 0.9), (5, 0, 10, 10))]) == []
    assert voter.tick(1.0) == []  # still within the window
    ended = voter.tick(1.2)
    assert [(r.text, r.reason, r.votes) for r in ended] == [("FAST123", "ended", 2)]


def test_a_one_frame_glimpse_is_published_only_with_min_seen_1() -> None:
    for min_seen, expected in ((2, []), (1, ["2015"])):
        voter = make_voter(VotingConfig(window_s=1.0, min_votes=3, min_confidence=0.7, min_seen=min_seen))
        assert voter.update(0.0, [Observation(reading("2015", 0.95), (0, 0, 10, 10))]) == []
        assert [r.text for r in voter.tick(1.1) + voter.flush(5.0)] == expected
    with pytest.raises(ConfigError, match="voting.min_seen"):
        parse_config("voting: {min_seen: 0}")


def test_flush_publishes_pending_tracks() -> None:
    voter = make_voter(VotingConfig(window_s=5.0, min_votes=3))
    voter.update(0.0, [Observation(reading("ABC1234", 0.9), (0, 0, 10, 10))])
    voter.update(0.1, [Observation(reading("ABC1234", 0.9), (0, 0, 10, 10))])
    assert [r.text for r in voter.flush(0.5)] == ["ABC1234"]
    assert voter.active_tracks == 0


def test_readings_of_different_lengths_are_fused() -> None:
    readings = [reading("ABC1234", 0.9)] * 4 + [reading("ABC234", 0.9)] * 3 + [reading("ABBC1234", 0.8)] * 2
    text, confs = fuse(readings)
    assert text == "ABC1234"
    assert len(confs) == 7
    # the readings missing the "1" still vote for the other characters: those are surer
    assert confs[0] > confs[3]
    assert fuse([]) == ("", ())


def test_fuse_weighs_by_character_confidence() -> None:
    sure = Reading("ABC1234", 0.95, (0.95,) * 7)
    unsure = [Reading("ABC1Z34", 0.3, (0.9, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9))] * 2
    text, confs = fuse([sure, *unsure])
    assert text == "ABC1234"  # one confident 2 beats two unsure Zs
    assert confs[4] < 0.7 < confs[0]


def test_fuse_without_char_confidences_uses_the_reading_confidence() -> None:
    text, confs = fuse([Reading("AB12", 0.8), Reading("AB12", 0.6)])
    assert text == "AB12" and confs == pytest.approx((0.7,) * 4)


def test_the_region_travels_with_the_most_confident_agreeing_reading() -> None:
    voter = make_voter(VotingConfig(min_votes=2))
    box = (10, 10, 80, 20)
    voter.update(0.0, [Observation(reading("ABC1234", 0.8), box, "weaker", region="us")])
    (r,) = voter.update(0.1, [Observation(reading("ABC1234", 0.9), box, "best", region="br")])
    assert (r.votes, r.payload, r.region) == (2, "best", "br")
    # a text fused character by character that no reading had: no reader said its region
    voter = make_voter(VotingConfig(min_votes=2))
    hi, lo = 0.95, 0.3
    voter.update(0.0, [Observation(reading("AXC1234", confs=(hi, lo) + (hi,) * 5), box, region="eu")])
    voter.update(0.1, [Observation(reading("ABC1239", confs=(hi,) * 6 + (lo,)), box, region="eu")])
    (r,) = voter.flush(5.0)
    assert (r.text, r.votes, r.region) == ("ABC1234", 0, None)


def test_the_event_takes_the_carried_region_and_finds_one_for_a_fused_text() -> None:
    from edge_ocr.config import FormatsConfig, KnownPlatesConfig
    from edge_ocr.decide.voting import VoteResult
    from edge_ocr.events import EventMaker
    from edge_ocr.stages import format_rules, known_plates
    from edge_ocr.types import EventSource

    maker = EventMaker("gate", "m", "1", False, format_rules(FormatsConfig()), known_plates(KnownPlatesConfig()))
    crop = np.zeros((20, 62, 3), np.uint8)  # a Brazilian plate's 3.1:1, which PJC4903's layout alone cannot say
    src = EventSource(crop, 0.0, (640, 480))

    def result(votes: int, region: str | None) -> VoteResult:
        return VoteResult("PJC4903", 0.9, (0.9,) * 7, votes, 2, 0.0, 1.0, (0, 0, 62, 20), src, "ended", region)

    assert maker.event(result(2, "us"), lambda: 0.0).region == "us"  # the reader's, not worked out again
    assert maker.event(result(0, None), lambda: 0.0).region == "br"  # no reading had it: from the plate's shape


def test_empty_readings_are_ignored() -> None:
    voter = make_voter(VotingConfig())
    assert voter.update(0.0, [Observation(Reading("", 0.0))]) == []
    assert voter.active_tracks == 0


def test_from_config_and_validation() -> None:
    v = make_voter(VotingConfig(window_s=4, min_votes=5, min_confidence=0.8, repeat_after_s=60, min_seen=3))
    assert (v.window_s, v.min_votes, v.min_confidence, v.repeat_after_s, v.min_seen) == (4, 5, 0.8, 60, 3)
    with pytest.raises(ConfigError, match="voting.min_votes"):  # the ranges are checked once, by the schema
        parse_config("voting: {min_votes: 0}")


def test_text_helpers() -> None:
    assert edit_distance("ABC1234", "ABC234") == 1
    assert edit_distance("", "ABC") == 3
    assert similarity("ABC1234", "ABC1234") == 1.0
    assert similarity("ABC1234", "XYZ9876") == 0.0
    assert similarity("ABCD", "ABCE") == 0.75


def test_a_car_standing_for_minutes_is_one_event_and_stays_cheap() -> None:
    import time

    rng = random.Random(5)
    voter = make_voter(VotingConfig(min_votes=3))
    t0 = time.perf_counter()
    results = []
    for i in range(3000):  # five minutes at 10 fps
        results += voter.update(0.1 * i, [Observation(noisy(rng, "GATE123"), (300, 300, 100, 30))])
    results += voter.tick(1000.0)
    assert [r.text for r in results] == ["GATE123"]
    assert time.perf_counter() - t0 < 5.0


def moving(x0: float, speed: float, t: float, y: int = 430, w: int = 100, h: int = 25) -> tuple[int, int, int, int]:
    """The box of a plate moving across the frame at ``speed`` px/s, at time ``t``."""
    return (int(x0 + speed * t), y, w, h)


def test_the_next_car_where_the_last_one_left_is_its_own_event() -> None:
    # the first car drives off to the right; 1.2 s later the next one pulls up slowly at the
    # same spot (a similar plate: four of seven characters in common)
    voter = make_voter(VotingConfig(window_s=3.0, min_votes=2))
    script = [(0.1 * i, [Observation(reading("RK161AG"), moving(300, 600, 0.1 * i))]) for i in range(15)]
    script += [(2.6 + 0.1 * i, [Observation(reading("RK185AP"), moving(1140, -50, 0.1 * i))]) for i in range(15)]
    results = run(voter, script, 20.0)
    assert [r.text for r in results] == ["RK161AG", "RK185AP"]


def test_a_plate_half_in_view_is_not_an_event_of_its_own() -> None:
    # the plate enters the frame: its right half is read first, then the whole plate
    voter = make_voter(VotingConfig(min_votes=2))
    script = [(0.1 * i, [Observation(reading("5472"), (0, 430, 50, 25))]) for i in range(1)]
    script += [(0.1 + 0.1 * i, [Observation(reading("Y5472"), (10, 430, 60, 25))]) for i in range(1)]
    script += [(0.2 + 0.1 * i, [Observation(reading("PJY5472"), moving(20, 500, 0.1 * i))]) for i in range(10)]
    # and as it leaves, the localiser finds only its left half for a few frames, beside the whole
    script += [(1.2 + 0.1 * i, [Observation(reading("PJY5472"), moving(620, 500, 0.1 * i)),
                                Observation(reading("PJY5", 0.95), moving(620, 500, 0.1 * i, w=55))])
               for i in range(4)]
    results = run(voter, script, 20.0)
    assert [r.text for r in results] == ["PJY5472"]


def test_a_box_cutting_off_the_first_character_does_not_win() -> None:
    # in some frames the localiser's box misses the P (blurred into the plate's edge) and the
    # piece reads as confidently as the whole plate; it must neither be published early nor
    # outvote the whole plate read as often
    voter = make_voter(VotingConfig(min_votes=2))
    script = []
    for i, whole in enumerate([1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0]):  # as read from a real video
        text, w, conf = ("PJB7392", 100, 0.97) if whole else ("JB7392", 75, 0.99)
        script.append((0.1 * i, [Observation(reading(text, conf), moving(1000, -750, 0.1 * i, w=w))]))
    results = run(voter, script, 20.0)
    assert [r.text for r in results] == ["PJB7392"]


def test_fuse_prefers_the_whole_plate_over_a_piece_with_a_fair_share_of_votes() -> None:
    piece, whole = reading("JB7392", 0.95), reading("PJB7392", 0.95)
    assert fuse([piece, piece, whole])[0] == "PJB7392"
    assert fuse([piece, piece, piece, whole])[0] == "JB7392"  # a lone longer reading is the odd one out
    assert fuse([reading("ABC123", 0.99)] * 2 + [reading("XBC1239", 0.9)])[0] == "ABC123"  # not a whole of it


def test_lettering_moving_with_a_plate_is_not_a_plate() -> None:
    # a van: "CARPET" painted above the plate, as tall, moving with it, but its box has no
    # plate edges around it (a lower localiser score); and a parked car's plate far away
    voter = make_voter(VotingConfig(min_votes=2))
    script = []
    for i in range(15):
        t = 0.1 * i
        script.append((t, [
            Observation(reading("CDK575"), moving(100, 740, t, y=210, h=55), score=1.0),
            Observation(reading("CARPET0", 0.95), moving(-130, 740, t, y=115, w=215, h=58), score=0.72),
            Observation(reading("XYZ9876"), (1100, 600, 100, 30), score=0.7),
        ]))
    results = run(voter, script, 20.0)
    assert sorted(r.text for r in results) == ["CDK575", "XYZ9876"]


def test_the_sharpest_largest_views_outvote_more_numerous_poor_ones() -> None:
    # a car far away and smeared: three confident misreads (B for 8); then two close, sharp views
    def box(i: int) -> tuple[int, int, int, int]:  # coming closer: growing, drifting left and down
        return (300 - 15 * i, 300 + 5 * i, 60 + 22 * i, 14 + 6 * i)

    far = [Observation(reading("AB12C3B", 0.9), box(i), sharpness=40.0) for i in range(3)]
    near = [Observation(reading("AB12C38", 0.95), box(3 + i), sharpness=400.0) for i in range(2)]
    voter = make_voter(VotingConfig(min_votes=10))  # no early publishing: the track decides when it ends
    results = run(voter, [(0.1 * i, [o]) for i, o in enumerate(far + near)], 10.0)
    assert [r.text for r in results] == ["AB12C38"]
    # counted equally, the three poor views would have won
    assert fuse([o.reading for o in far + near])[0] == "AB12C3B"


def test_view_weights_are_relative_to_the_tracks_best_view() -> None:
    obs = [Observation(reading("AB1"), (0, 0, 100, 40), sharpness=200.0),
           Observation(reading("AB1"), (0, 0, 50, 20), sharpness=100.0),
           Observation(reading("AB1"), (0, 0, 10, 4), sharpness=1.0),
           Observation(reading("AB1"), None, sharpness=None)]
    assert view_weights(obs) == [1.0, 0.25, 0.25 * 0.25, 1.0]
