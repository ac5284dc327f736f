"""tools/calibrate.py and bench/recognize_parts.py end to end on a few rendered crops (no timing
is judged: the tools must fit, store, time every step and catch a changed reading)."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

from edge_ocr.config import RecognizerConfig
from edge_ocr.read.recognizer import DEFAULT_MODEL
from edge_ocr.stages import load_recognizer

from . import scenes

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    res = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_calibrate_fits_on_one_half_reports_the_other_and_writes_the_temperature(tmp_path: Path) -> None:
    plates = [("7ABC123", "us"), ("RK115AN", "eu"), ("PJC4903", "br"), ("5XYZ789", "us"), ("AB123CD", "eu"),
              ("QRS4D21", "br"), ("8KLM456", "us"), ("GH456JK", "eu"), ("TUV7E88", "br"), ("2DEF345", "us")]
    with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "text", "region", "source"])
        for k, (text, region) in enumerate(plates):
            cv2.imwrite(str(tmp_path / f"{k}.png"), scenes.clean_plate(text, region, 20 + 3 * k))
            w.writerow([f"{k}.png", text, region, f"rendered-{region}"])
    model = tmp_path / "m.onnx"
    shutil.copy(DEFAULT_MODEL, model)
    out = _run("-m", "tools.calibrate", str(tmp_path / "labels.csv"), "--split", "all", "--models", str(model), "--write")
    fitted = float(out.split("-> temperature ")[1].split()[0])
    assert "fitted on" in out and "test half" in out and "| 0.99–1.00 |" in out and "source rendered-us" in out
    assert f"wrote edge_ocr.temperature = {fitted:g}" in out
    assert load_recognizer(RecognizerConfig(model=str(model))).info.temperature == fitted


def test_recognize_parts_times_every_step_and_catches_a_changed_reading(tmp_path: Path) -> None:
    table = _run("-m", "bench.recognize_parts", "--synthetic", "3")
    for step in ("two-row test", "clahe", "network", "softmax+decode", "whole recognize"):
        assert f"| {step} |" in table
    dump = tmp_path / "before.json"
    _run("-m", "bench.recognize_parts", "--synthetic", "3", "--dump", str(dump))
    assert "3 crops, 0 differ" in _run("-m", "bench.recognize_parts", "--synthetic", "3", "--compare", str(dump))
    old = json.loads(dump.read_text())
    old["synthetic-99-1"][1] += "X"  # as if a change had made the crop read differently
    dump.write_text(json.dumps(old))
    assert "3 crops, 1 differ" in _run("-m", "bench.recognize_parts", "--synthetic", "3", "--compare", str(dump))
