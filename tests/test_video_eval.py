"""bench/video_eval.py: scoring by hand, the videos it makes, and one small run end to end
(real Mosquitto, real daemon, real models) on car photos made here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from bench.video_eval import SECTION, assign, near, score, shards, update_benchmarks
from bench.video_scene import Car, Pass, load_cars, make_demo_video, plate_crop, render

from . import scenes

ROOT = Path(__file__).resolve().parents[1]


def _pass(text: str, enter: float, leave: float, region: str = "eu") -> Pass:
    return Pass(Car(f"{text}.jpg", (0, 0, 100, 25), text, region), 1.0, 0, 1, enter, leave, enter + 0.3, leave - 0.3,
                100)


def test_events_go_to_the_car_in_view_and_are_scored() -> None:
    passes = [_pass("RK115AN", 1.0, 4.0), _pass("AB123CD", 5.0, 8.0), _pass("XY987ZT", 9.0, 12.0),
              _pass("0AB1234", 13.0, 16.0, "us")]
    events = [(2.0, "RK115AN"), (3.9, "RK115AN"), (4.3, "TEXAS"),  # right, a duplicate, an extra
              (6.0, "AB123C0"),  # a misread: wrong
              (10.0, "ONLY"),  # not near the plate: the car is missed, one extra
              (14.0, "OAB1234"),  # US labels write O as 0: right
              (30.0, "STRAY")]  # no car near
    per_car, stray = assign(passes, events)
    assert per_car == [["RK115AN", "RK115AN", "TEXAS"], ["AB123C0"], ["ONLY"], ["OAB1234"]]
    assert stray == [(30.0, "STRAY")]
    res = score(passes, per_car, len(stray))
    assert [c["outcome"] for c in res["cars"]] == ["right", "wrong", "missed", "right"]
    s = res["summary"]["overall"]
    assert (s["right"], s["wrong"], s["missed"], s["duplicate_events"]) == (2, 1, 1, 1)
    assert (s["extra_events"], s["extra_misreads"], s["extra_other"], s["stray_events"]) == (3, 1, 2, 1)
    assert res["summary"]["us"]["right"] == 1 and res["summary"]["eu"]["cars"] == 3
    assert near("MRK", "520MRK") and not near("TEXAS", "520MRK")


def _photos(tmp_path: Path, plates: list[tuple[str, str]]) -> Path:
    """Car photos with a plate at a known box, and their frames.csv."""
    rows = ["file,x,y,w,h,text,region"]
    for i, (text, region) in enumerate(plates):
        photo = make_demo_video.scene(900, 600, np.random.default_rng(i))
        plate = make_demo_video.clean_plate(text, region, 40, seed=i)
        ph, pw = plate.shape[:2]
        x, y = 300, 380
        photo[y:y + ph, x:x + pw] = plate
        cv2.imwrite(str(tmp_path / f"car{i}.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append(f"car{i}.jpg,{x},{y},{pw},{ph},{text},{region}")
    csv = tmp_path / "frames.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_scene_puts_each_plate_in_view_when_its_truth_says(tmp_path: Path) -> None:
    csv = _photos(tmp_path, [("RK115AN", "eu"), ("AZJ6991", "br")])
    cars = load_cars(csv)
    assert cars[0].box[:2] == (300, 380) and cars[1].region == "br"
    video = tmp_path / "v.avi"
    passes = render(video, cars, tmp_path, fps=10, pass_s=2.0, gap_s=1.0, scales=(1.0,), blurs=(0,), fourcc="MJPG")
    frames = [f.image for f in scenes.video_frames(video, 10)]
    assert len(frames) == 2 * (10 + 20) + 10
    bg = frames[0].astype(int)
    for p in passes:
        assert 0 < p.enter < p.plate_from < p.plate_to < p.leave and p.direction in (1, -1)
        assert np.abs(frames[int(round(p.plate_from * 10))].astype(int) - bg).mean() > 5  # a car in view
        assert np.abs(frames[int(round(p.enter * 10)) - 1].astype(int) - bg).mean() < 3  # not yet
    assert passes[0].direction == -passes[1].direction
    crop = plate_crop(cv2.imread(str(tmp_path / "car0.jpg")), cars[0].box)
    assert crop.shape[1] == cars[0].box[2] + 2 * round(cars[0].box[2] * 0.08)


def test_run_end_to_end_on_two_cars(tmp_path: Path) -> None:
    csv = _photos(tmp_path, [("RK115AN", "eu"), ("AZJ6991", "br")])
    out, md = tmp_path / "res.json", tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Pipeline\n\nnumbers\n")
    proc = subprocess.run([sys.executable, "-m", "bench.video_eval", "--frames", str(csv), "--regions", "own",
                           "--jobs", "1", "--scales", "1", "--blurs", "0", "--codec", "MJPG", "--json", str(out),
                           "--benchmarks", str(md)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [(c["text"], c["outcome"], c["crop_ok"]) for c in res["cars"]] == [
        ("RK115AN", "right", True), ("AZJ6991", "right", True)]
    s = res["summary"]["overall"]
    assert s["duplicate_events"] == 0 and s["extra_events"] == 0 and s["stray_events"] == 0
    assert [d["exit_code"] for d in res["daemons"]] == [0, 0]  # own regions: one daemon per region
    text = md.read_text()
    assert "## Pipeline\n\nnumbers" in text and "## Real video" in text and "| overall | 2 | 2 |" in text
    assert not list(ROOT.glob("shard*"))  # the videos stay out of the repository


def test_a_plate_photographed_twice_passes_in_two_videos() -> None:
    # the daemon rightly does not publish a plate again within voting.repeat_after_s, so two
    # photos of one car in one video would score a miss that is no fault of the daemon
    cars = [Car(f"{i}.jpg", (0, 0, 100, 25), t, "eu") for i, t in enumerate(["AA111AA", "BB222BB", "AA111AA",
                                                                             "CC333CC", "AA111AA", "BB222BB"])]
    plan = shards(cars, "shipped", ["eu"], 27)
    assert sorted(c.file for g, _ in plan for c in g) == sorted(c.file for c in cars)  # nobody lost
    for group, regions in plan:
        assert regions == ["eu"]
        assert len({c.text for c in group}) == len(group)
    assert [c.text for c in plan[0][0]] == ["AA111AA", "BB222BB", "CC333CC"]  # the order kept


def test_an_offline_run_gets_its_own_block_inside_the_section(tmp_path: Path) -> None:
    passes = [_pass("RK115AN", 1.0, 4.0), _pass("BX450CD", 5.0, 8.0)]
    res = score(passes, [["RK115AN"], ["BX45OCD", "EXIT"]])
    res["daemons"] = [{"frames": 80}]
    res["run"] = {"regions": "shipped", "offline": True, "shipped_regions": ["eu"], "command": "python -m bench.video_eval",
                  "date": "2026-11-29", "wall_s": 1.0, "jobs": 1}
    md = tmp_path / "B.md"
    md.write_text(f"# Benchmarks\n\n{SECTION}\n\nintro\n\n<!-- video-eval:shipped -->\nold\n<!-- /video-eval:shipped -->\n\n"
                  "## Daemon memory\n\nrss\n")
    update_benchmarks(md, res)
    text = md.read_text()
    assert "<!-- video-eval:shipped -->\nold\n" in text  # the camera-pace block is left alone
    block = text[text.index("<!-- video-eval:offline-shipped -->"):text.index("<!-- /video-eval:offline-shipped -->")]
    assert text.index("<!-- /video-eval:offline-shipped -->") < text.index("## Daemon memory")
    assert "| overall | 2 | 1 | 1 | 0 | 50.0 % |" in block and "`EXIT`" in block
    update_benchmarks(md, res)  # again: replaced, not added
    assert md.read_text().count("<!-- video-eval:offline-shipped -->") == 1
