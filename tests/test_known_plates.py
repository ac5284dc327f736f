"""Known plates: the matcher (edge_ocr/known_plates.py), its config, the event field on a real
broker, and the evaluation tool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ocr.config import ConfigError, KnownPlatesConfig, parse_config
from edge_ocr.decide.known_plates import KnownPlates, fold
from edge_ocr.stages import known_plates
from edge_ocr.types import KnownMatch

from .helpers import PLATES, run_and_collect

ROOT = Path(__file__).resolve().parents[1]


def known(yaml_entries: str, **settings: object) -> KnownPlates:
    extra = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in settings.items())
    return known_plates(parse_config(f"known_plates:\n{extra}  entries:\n{yaml_entries}").known_plates)


LIST = """\
    - name: our car
      plates: [PJB7392, "PJB 7393"]
    - name: delivery van
      plates: [RK-115AN]
    - name: fleet
      plates: ["FLT??1*"]
"""


@pytest.mark.parametrize(("text", "want"), [
    ("PJB7392", KnownMatch("our car", "PJB7392", "exact", 0)),
    ("PJB739Z", KnownMatch("our car", "PJB7392", "lookalike", 0)),  # the issue's own example
    ("PJ87392", KnownMatch("our car", "PJB7392", "lookalike", 0)),
    ("PJB7393", KnownMatch("our car", "PJB 7393", "exact", 0)),  # spaces and dashes are not read
    ("JB7392", KnownMatch("our car", "PJB7392", "near", 1)),  # a character lost at the edge
    ("PJB7397", KnownMatch("our car", "PJB7392", "near", 1)),  # ties with PJB7393: the first listed
    ("rk115an", KnownMatch("delivery van", "RK-115AN", "exact", 0)),
    ("RK11SAN", KnownMatch("delivery van", "RK-115AN", "lookalike", 0)),
    ("FLTAB1", KnownMatch("fleet", "FLT??1*", "pattern", 0)),
    ("FLTAB1XYZ", KnownMatch("fleet", "FLT??1*", "pattern", 0)),
    ("FLTABI9", KnownMatch("fleet", "FLT??1*", "pattern", 0)),  # look-alikes apply to patterns too
    ("FLTA1", None),  # ? is exactly one character, and patterns allow no edits
    ("PJB73", None),  # two characters off
    ("7ABC123", None),
    ("", None),
])
def test_match(text: str, want: KnownMatch | None) -> None:
    assert known(LIST).match(text) == want


def test_closest_entry_wins_over_order() -> None:
    k = known("    - name: near\n      plates: [ABC1234]\n    - name: exact\n      plates: [ABC1235]\n")
    assert k.match("ABC1235") == KnownMatch("exact", "ABC1235", "exact", 0)
    assert [m.name for m in k.matches("ABC1235")] == ["exact", "near"]


def test_tolerance_settings() -> None:
    assert known(LIST, max_edits=0).match("JB7392") is None
    assert known(LIST, max_edits=0).match("PJB739Z") == KnownMatch("our car", "PJB7392", "lookalike", 0)
    # without look-alikes a swap is an ordinary edit: still within one, two swaps are not
    assert known(LIST, lookalikes=False).match("PJB739Z") == KnownMatch("our car", "PJB7392", "near", 1)
    assert known(LIST, lookalikes=False).match("PJ8739Z") is None
    assert known(LIST, max_edits=2).match("PJB73") == KnownMatch("our car", "PJB7392", "near", 2)
    assert fold("O0QD I1 Z2 S5 G6 B8") == "0000 11 22 55 66 88"


def test_empty_list_matches_nothing() -> None:
    assert len(known_plates(KnownPlatesConfig())) == 0
    assert known_plates(KnownPlatesConfig()).match("PJB7392") is None


@pytest.mark.parametrize(("text", "problem"), [
    ("known_plates:\n  entries:\n    - name: x\n      plates: ['AB[12]']\n", "known_plates.entries.0.plates: bad plate"),
    ("known_plates:\n  entries:\n    - name: x\n      plates: ['--']\n", "known_plates.entries.0.plates: bad plate"),
    ("known_plates:\n  entries:\n    - name: x\n      plates: []\n", "known_plates.entries.0.plates:"),
    ("known_plates:\n  entries:\n    - plates: [AB1]\n", "known_plates.entries.0.name: required"),
    ("known_plates:\n  max_edits: 3\n", "known_plates.max_edits: must be 0..2, got 3"),
    ("known_plates:\n  tolerance: 1\n", "known_plates.tolerance: unknown key"),
])
def test_bad_config_names_the_key(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems


def test_events_carry_the_entry_they_matched(tmp_path: Path, video: Path, mosquitto) -> None:
    """The daemon on a video of three cars, two of them known (one by a look-alike), over MQTT."""
    got = run_and_collect(tmp_path, video, mosquitto.port, "known_plates:\n  entries:\n"
                          "    - {name: our car, plates: [RK115AN]}\n    - {name: van, plates: [PJC49O3]}\n")
    events = {e["text"]: e["known_plate"] for e in (json.loads(p) for t, p in got if t.endswith("/plate"))}
    assert set(events) == {text for text, _ in PLATES}
    assert events == {
        "RK115AN": {"name": "our car", "plate": "RK115AN", "match": "exact", "distance": 0},
        "PJC4903": {"name": "van", "plate": "PJC49O3", "match": "lookalike", "distance": 0},
        "7ABC123": None,
    }


def test_eval_tool_counts_kept_misreads_and_wrong_pairs(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    # PJB7392 and PJB7393 are one edit apart: a wrong pair each way; 7ABC123 is far from both
    labels.write_text("file,text,region,source\na.png,PJB7392,br,x\nb.png,PJB 7393,br,x\nc.png,7ABC123,us,x\n"
                      "d.png,PJB7392,br,x\n", encoding="utf-8")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "eval_known_plates.py"), str(labels), "--json",
                           str(out)], capture_output=True, text=True, timeout=120, check=True)
    r = json.loads(out.read_text())
    assert r["labels"] == 3 and r["pairs"] == 6 and r["wrong_pairs"] == 2
    assert r["kept"] == r["misreads"] > 3 * 7  # every drop and every look-alike swap still matches
    assert "33.333 %" in proc.stdout
    zero = subprocess.run([sys.executable, str(ROOT / "tools" / "eval_known_plates.py"), str(labels), "--max-edits",
                           "0", "--json", str(out)], capture_output=True, text=True, timeout=120, check=True)
    r0 = json.loads(out.read_text())
    assert r0["wrong_pairs"] == 0 and r0["kept"] < r0["misreads"], zero.stdout
