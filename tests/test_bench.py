"""The benchmark entry point runs end to end with tiny settings, so it cannot rot.
(Benchmarks themselves do not run in CI, and no test here judges a timing.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.needs_torch  # bench takes the charset and the multiply-add count from tools/crnn.py
def test_bench_smoke_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    res = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    md = out.read_text()
    for heading in ("## Side by side", "## Recogniser", "## Accuracy", "## Pipeline", "## MQTT",
                    "## Raspberry Pi estimate"):
        assert heading in md
    data = json.loads(out.with_suffix(".json").read_text())
    names = [e["engine"] for e in data["engines"]]
    assert names[:3] == ["edge-ocr INT8", "edge-ocr FP32", "edge-ocr INT8, still image (re-reads)"] and len(names) == 5
    for e in data["engines"]:
        # a peer is either measured or named with the line that installs it: never silently absent
        assert ("regions" in e and e["regions"]["overall"]["n"] == 12) or "install" in e["missing"]
    assert data["daemon"]["exit_code"] == 0 and data["daemon"]["start_to_ready_s"] > 0
    assert data["daemon"]["frames"] > 0
    assert data["mqtt"]["queued_during_outage"] == 20 and data["mqtt"]["sustained_events_per_s"] > 0
    assert {p["motion_gating"] for p in data["pipeline"]} == {True, False}
    assert [w["width"] for w in data["widths"]] == [64, 96, 128, 160] and data["widths"][0]["int8"] > 0
