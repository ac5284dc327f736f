"""bench/still_eval.py on photos made here: the /api/ocr answer scored against the truth."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

from bench.still_eval import evaluate, table
from bench.video_scene import load_cars

from . import scenes

ROOT = Path(__file__).resolve().parents[1]


def test_photos_are_scored_best_any_crop_and_found(tmp_path: Path) -> None:
    rows = []
    for i, (text, region) in enumerate([("RK115AN", "eu"), ("PJC4903", "br")]):
        img, box = scenes.still_with_box(text, region, 1280, 720, seed=i)
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
        rows.append({"file": f"{i}.png", "x": box[0], "y": box[1], "w": box[2], "h": box[3], "text": text,
                     "region": region})
    # a photo whose truth is wrong: nothing can match it
    img, box = scenes.still_with_box("BX450CD", "eu", 1280, 720, seed=5)
    cv2.imwrite(str(tmp_path / "2.png"), img)
    rows.append({"file": "2.png", "x": box[0], "y": box[1], "w": box[2], "h": box[3], "text": "ZZ999ZZ", "region": "eu"})
    with open(tmp_path / "frames.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    res = evaluate(load_cars(tmp_path / "frames.csv"), tmp_path, ROOT / "config.yaml", "own")
    by = {r["file"]: r for r in res["rows"]}
    assert by["0.png"]["best"] == "RK115AN" and by["0.png"]["best_ok"] and by["0.png"]["crop_ok"]
    assert by["1.png"]["best"] == "PJC4903" and by["1.png"]["found"]
    assert by["2.png"]["best"] == "BX450CD" and not by["2.png"]["best_ok"] and not by["2.png"]["any_ok"]
    assert by["2.png"]["found"]  # the box was found; only the (false) truth's text differs
    s = res["summary"]
    assert s["overall"]["photos"] == 3 and s["overall"]["best_pct"] == 66.7 and s["overall"]["found_pct"] == 100.0
    assert s["eu"]["best_pct"] == 50.0 and s["br"]["best_pct"] == 100.0
    assert "| overall | 3 | 66.7 % |" in table(s)
