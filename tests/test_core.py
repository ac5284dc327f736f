"""The reading core, the stage set and the frame record: one crop reads the same through every
entry point, a reload neither loses nor repeats the car in view, the voter's memory is bounded,
and picamera2's lores plane is what the localiser and the motion gate work on."""

from __future__ import annotations

import json
import logging
import tracemalloc
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.video_eval import crop_readings
from bench.video_scene import Car
from edge_ocr.capture.quad import iou
from edge_ocr.capture.sources.picam import LoresFrame
from edge_ocr.cli import main
from edge_ocr.config import HttpConfig, RecognizerConfig, parse_config
from edge_ocr.daemon import LogSink, Pipeline
from edge_ocr.read.recognizer import DEFAULT_MODEL, Recognizer
from edge_ocr.serve.http_api import HttpApi
from edge_ocr.stages import Stages, load_recognizer
from edge_ocr.types import Frame
from tools.evaluate import evaluate

from . import scenes


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return load_recognizer(RecognizerConfig())


def pipeline(yaml: str, recognizer: Recognizer) -> Pipeline:
    now = [0.0]
    p = Pipeline(Stages.from_config(parse_config("mqtt: {enabled: false}\n" + yaml), recognizer), LogSink(),
                 clock=lambda: now[0])
    p.now = now  # type: ignore[attr-defined]
    return p


def feed(p: Pipeline, images: list[np.ndarray], t0: float = 0.0, fps: float = 10.0) -> list:
    events = []
    for i, img in enumerate(images):
        ts = t0 + i / fps
        p.now[0] = ts  # type: ignore[attr-defined]
        events += p.process(Frame(ts, 1_800_000_000.0 + ts, img, i))
    return events


def box_polygon(box: tuple[int, ...]) -> str:
    x, y, w, h = box
    return f"[[[{x}, {y}], [{x + w}, {y}], [{x + w}, {y + h}], [{x}, {y + h}]]]"


# ----------------------------------------------------------------------------- one crop, one text

def test_the_same_crop_reads_the_same_through_every_entry_point(tmp_path: Path, recognizer: Recognizer,
                                                                 capsys) -> None:
    # a Brazilian plate whose "8" is drawn as a B: the model reads "PJC49B3", the Brazilian
    # formats make it "PJC4983"; before one core, `recognize` and `tune` skipped the formats
    frame, box = scenes.still_with_box("PJC49B3", "br", 960, 540)
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "gate.png"), frame)
    cfg_path = tmp_path / "gate.yaml"
    yaml = (f"camera: {{type: folder, uri: '{folder}', fps: 50, loop: true}}\n"
            f"roi: {{units: pixels, fixed_box: true, polygons: {box_polygon(box)}}}\n"
            "motion: {enabled: false}\nformats: {regions: [br]}\nvoting: {min_confidence: 0.5}\n")
    cfg_path.write_text("mqtt: {enabled: false}\n" + yaml)

    # the daemon
    p = pipeline(yaml, recognizer)
    events = feed(p, [frame] * 3) + p.flush(60.0)
    daemon_text = [e.text for e in events]
    # the crop it read, as a lossless file for the still-image doors
    rec = p.last_view[0]  # type: ignore[index]
    assert p.roi is not None
    crop = p.stages.read_frame(rec, p.roi)[0].crop
    assert crop is not None
    crop_file = tmp_path / "crop.png"
    cv2.imwrite(str(crop_file), crop)
    raw = recognizer.recognize([crop], retry_below=0)[0].text

    # edge-ocr recognize, with the config's regions
    assert main(["recognize", "--json", "--config", str(cfg_path), str(crop_file)]) == 0
    recognize_text = json.loads(capsys.readouterr().out)["text"]

    # /api/ocr?crop=1, through the HTTP server
    stages = Stages.from_config(parse_config(cfg_path.read_text()), recognizer)
    api = HttpApi("127.0.0.1", 0, None, 1 << 20, read=stages.still.read, status=dict, snapshot=lambda: None,
                  events=list, max_reads=HttpConfig().max_concurrent_reads)
    api.start()
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{api.port}/api/ocr?crop=1", crop_file.read_bytes(),
                                     {"Content-Type": "image/png"})
        with urllib.request.urlopen(req, timeout=30) as r:
            http_text = json.loads(r.read())["text"]
    finally:
        api.stop()

    # edge-ocr tune
    assert main(["tune", "--config", str(cfg_path), "--out", str(tmp_path / "snap.png"), "--frames", "2"]) == 0
    tune_text = json.loads(capsys.readouterr().out)["candidates"][0]["text"]

    # bench/video_eval.py's per-crop figure: the crop file as a photo whose plate box is all of it
    h, w = crop.shape[:2]
    car = Car(crop_file.name, (0, 0, w, h), "PJC4983", "br")
    [(video_eval_text, video_eval_right)] = crop_readings([car], tmp_path, parse_config(cfg_path.read_text()),
                                                          {"br": ["br"]})

    # tools/evaluate.py (the model card's and BENCHMARKS.md's accuracy), the crop labelled br
    (tmp_path / "labels.csv").write_text(f"file,text,region\n{crop_file.name},PJC4983,br\n")
    ev = evaluate(str(DEFAULT_MODEL), tmp_path / "labels.csv", latency_n=1)
    assert ev["regions"]["overall"] == {"n": 1, "exact": 1.0, "cer": 0.0} and ev["failures"] == []  # read PJC4983

    assert raw == "PJC49B3"  # the case is the one meant: the format rules change the reading
    assert daemon_text == ["PJC4983"]
    assert (recognize_text, http_text, tune_text, video_eval_text) == ("PJC4983",) * 4
    assert video_eval_right


def test_recognize_regions_default_from_the_config_else_all(tmp_path: Path, capsys) -> None:
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), scenes.clean_plate("PJC49B3", "br", 48))

    def read(*args: str) -> dict:
        assert main(["recognize", "--json", *args, str(crop)]) == 0
        return dict(json.loads(capsys.readouterr().out))

    out = read()  # every region: PJC49B3 is itself a plausible (US, EU) plate and the model is sure of its B
    assert (out["text"], out["format_ok"]) == ("PJC49B3", True)
    assert [c["char"] for c in out["chars"]] == list("PJC49B3")
    out = read("--regions", "cn")  # no Chinese layout fits: read as it is, flagged
    assert (out["text"], out["region"], out["format_ok"]) == ("PJC49B3", None, False)
    out = read("--regions", "br")  # only Brazil: no layout fits as read, so LLLDDDD mends the B
    assert (out["text"], out["region"], out["format_ok"]) == ("PJC4983", "br", True)
    assert [c["char"] for c in out["chars"]] == list("PJC4983")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("formats: {regions: [cn]}\n")
    assert read("--config", str(cfg))["text"] == "PJC49B3"
    assert read("--config", str(cfg), "--regions", "br,cn")["text"] == "PJC4983"  # the flag wins
    cfg.write_text("formats: {mend_below: 1}\n")  # every region, no gate: the strict layouts mend a sure B
    assert read("--config", str(cfg))["text"] == "PJC4983"
    assert main(["recognize", "--regions", "xx", str(crop)]) == 2
    assert "--regions: unknown xx" in capsys.readouterr().err


def test_recognize_builds_its_reader_from_the_config_with_the_flags_over_it(tmp_path: Path, capsys, caplog) -> None:
    # recognize used to build its own recogniser with one thread whatever recognizer.threads said
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), scenes.clean_plate("PJC49B3", "br", 48))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("recognizer: {threads: 2, graph_optimization: basic}\nformats: {regions: [br]}\n")
    caplog.set_level(logging.INFO, logger="edge_ocr.read.session")
    assert main(["recognize", "--json", "--config", str(cfg), str(crop)]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "PJC4983"  # the config's formats: br mends the B
    assert "2 thread(s)" in caplog.text
    caplog.clear()
    assert main(["recognize", "--json", "--config", str(cfg), "--threads", "3", str(crop)]) == 0
    assert "3 thread(s)" in caplog.text
    assert main(["recognize", "--retry-below", "2", str(crop)]) == 2  # the schema checks the flags too
    assert "command line: recognizer.retry_below" in capsys.readouterr().err


# ----------------------------------------------------------------------------- reload

def test_reload_with_a_car_in_view_publishes_it_once(recognizer: Recognizer) -> None:
    car = scenes.still("RK115AN", "eu", 640, 360)
    p = pipeline("motion: {enabled: false}\n", recognizer)
    events = feed(p, [car] * 4)
    assert [e.text for e in events] == ["RK115AN"]
    new = Stages.from_config(parse_config("mqtt: {enabled: false}\nmotion: {enabled: false}\n"
                                          "localizer: {max_candidates: 3}\n"), recognizer)
    events += p.reload(new)
    assert p.stages is new and p.stages.reader.localizer.max_candidates == 3  # the whole set was swapped
    events += feed(p, [car] * 20, t0=0.4)
    events += p.flush(100.0)
    assert [e.text for e in events] == ["RK115AN"]  # not again from the new voter


def test_reload_flushes_the_car_that_was_still_being_voted_on(recognizer: Recognizer) -> None:
    car = scenes.still("PJC4903", "br", 640, 360)
    road = scenes.scene(640, 360, np.random.default_rng(0))
    p = pipeline("motion: {enabled: false}\nvoting: {min_votes: 5}\n", recognizer)
    assert feed(p, [car] * 2) == []  # two readings, five needed: still pending
    flushed = p.reload(Stages.from_config(parse_config("mqtt: {enabled: false}\nmotion: {enabled: false}\n"),
                                          recognizer))
    later = feed(p, [road] * 10, t0=0.2) + p.flush(100.0)
    assert [e.text for e in flushed] == ["PJC4903"] and later == []  # the car left: not lost


# ----------------------------------------------------------------------------- memory

def test_voter_memory_is_bounded_for_a_flickering_plate_at_1080p(recognizer: Recognizer) -> None:
    # the last character flickers D/O for 15 s at 10 fps and the plate is never sure enough to
    # publish (min_confidence 1.0 keeps it so, whichever reading the voter's cap keeps): the
    # track holds its 100 most confident readings, and none may hold its frame
    a, box = scenes.still_with_box("RK115AD", "eu", 1920, 1080)
    b, _ = scenes.still_with_box("RK115AO", "eu", 1920, 1080)
    p = pipeline("motion: {enabled: false}\nvoting: {min_confidence: 1.0}\n"
                 f"roi: {{units: pixels, fixed_box: true, polygons: {box_polygon(box)}}}\n", recognizer)
    feed(p, [a.copy(), b.copy()])  # warm-up: model buffers, ROI masks
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(150):
            ts = 0.2 + i / 10
            p.now[0] = ts  # type: ignore[attr-defined]
            # a fresh array per frame, as a camera delivers them
            p.process(Frame(ts, ts, (a if i % 2 else b).copy(), i))
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    texts = {r.text for _, r in p.last_view[1]}  # type: ignore[index]
    assert texts <= {"RK115AD", "RK115AO"} and p.counters["readings"] == 152
    assert p.counters["events"] == 0 and p.stages.voter.active_tracks == 1
    assert grown < 20 * 2**20, f"{grown / 2**20:.0f} MB held for one undecided plate"


# ----------------------------------------------------------------------------- the Pi fast path

def test_the_lores_plane_is_what_the_localiser_searches(recognizer: Recognizer) -> None:
    image, box = scenes.still_with_box("RK115AN", "eu", 1280, 720)
    lores = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (960, 540), interpolation=cv2.INTER_AREA)
    p = pipeline("motion: {enabled: false}\n", recognizer)
    p.process(LoresFrame(0.0, 0.0, image, 0, np.full((540, 960), 128, np.uint8)))
    assert p.counters["candidates"] == 0  # a blank lores plane: nothing to find, whatever the main image shows
    p.process(LoresFrame(0.1, 0.1, image, 1, lores))
    seen = p.last_view[1]  # type: ignore[index]
    assert [r.text for _, r in seen] == ["RK115AN"]
    assert iou(seen[0][0], box) > 0.5  # found on the lores plane, boxed and cut in main-stream pixels


def test_the_lores_plane_is_what_the_motion_gate_watches(recognizer: Recognizer) -> None:
    road = scenes.scene(1280, 720, np.random.default_rng(0))
    lores = cv2.resize(cv2.cvtColor(road, cv2.COLOR_BGR2GRAY), (960, 540), interpolation=cv2.INTER_AREA)
    cars = list(scenes.drive([("RK115AN", "eu")], 1280, 720, fps=10, seconds_per_car=1, gap_s=0))
    p = pipeline("motion: {enabled: true, hold_s: 0}\n", recognizer)
    for i, img in enumerate(cars):
        p.process(LoresFrame(i / 10, i / 10, img, i, lores))  # the car moves on main only
    assert p.counters["gated"] == len(cars) - 1  # only the first frame, with nothing to compare, went through


def test_a_lores_plane_of_another_shape_is_not_used(recognizer: Recognizer) -> None:
    image = scenes.still("RK115AN", "eu", 1280, 720)
    p = pipeline("motion: {enabled: false}\n", recognizer)
    p.process(LoresFrame(0.0, 0.0, image, 0, np.full((300, 960), 128, np.uint8)))  # 16:5, not 16:9
    assert [r.text for _, r in p.last_view[1]] == ["RK115AN"]  # type: ignore[index]


def test_the_http_reader_follows_a_reload(recognizer: Recognizer) -> None:
    crop = scenes.clean_plate("PJC49B3", "br", 48)
    p = pipeline("formats: {regions: [br]}\n", recognizer)

    def read() -> str:
        # the plate as read (the top-level text is only for a plate of an enabled region's format)
        return str(p.stages.still.read(crop, crop=True)["plates"][0]["text"])

    before = read()
    p.reload(Stages.from_config(parse_config("mqtt: {enabled: false}\nformats: {regions: [cn]}\n"), recognizer))
    assert (before, read()) == ("PJC4983", "PJC49B3")
