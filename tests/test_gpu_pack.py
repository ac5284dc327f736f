"""tools/gpu_pack.py and the two hooks a lent GPU machine needs (EDGE_OCR_FONT_DIR, EDGE_OCR_DATA)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tools import gpu_pack
from tools.detector_data import hash_split, load_frames
from tools.synth_plates import PROVINCES, RENDERERS, available_fonts

ROOT = Path(__file__).resolve().parents[1]


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture
def fonts_from(monkeypatch):
    """Point EDGE_OCR_FONT_DIR at a folder; the font list is cached, so it is cleared around."""
    def use(folder: Path) -> None:
        monkeypatch.setenv("EDGE_OCR_FONT_DIR", str(folder))
        available_fonts.cache_clear()

    yield use
    available_fonts.cache_clear()


def test_font_dir_is_where_the_renderers_look(tmp_path, fonts_from):
    latin, cjk = available_fonts()
    for p in (latin[0], cjk[0]):
        (tmp_path / Path(p).name).symlink_to(p)
    fonts_from(tmp_path)
    got_latin, got_cjk = available_fonts()
    assert got_latin == [str(tmp_path / Path(latin[0]).name)]
    assert got_cjk == [str(tmp_path / Path(cjk[0]).name)]
    img, text = RENDERERS["cn"](np.random.default_rng(0))  # draws with both fonts
    assert text[0] in PROVINCES and np.asarray(img.convert("L")).std() > 10


def test_font_dir_without_a_cjk_font_says_so(tmp_path, fonts_from):
    latin, _ = available_fonts()
    (tmp_path / Path(latin[0]).name).symlink_to(latin[0])
    fonts_from(tmp_path)
    with pytest.raises(RuntimeError, match="no CJK font"):
        available_fonts()


def test_data_folder_follows_the_environment(tmp_path):
    env = dict(os.environ, EDGE_OCR_DATA=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", "from tools.detector_data import DATA; print(DATA)"], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path)


def test_crops_are_grey_at_most_the_height_and_keep_their_labels(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    tall = np.zeros((192, 400, 3), np.uint8)
    tall[:, :, 2] = 200  # red: grey is 0.299 * 200
    cv2.imwrite(str(src / "a" / "tall.png"), tall)
    cv2.imwrite(str(src / "a" / "small.png"), np.full((40, 120, 3), 90, np.uint8))
    write_csv(src / "labels.csv", [{"file": "a/tall.png", "text": "AB123", "region": "eu", "source": "s1"},
                                   {"file": "a/small.png", "text": "7XYZ", "region": "us", "source": "s2"}])
    assert gpu_pack.pack_crops(src / "labels.csv", tmp_path / "dst", 96) == 2
    _, rows = gpu_pack.read_rows(tmp_path / "dst" / "labels.csv")
    assert [(r["file"], r["text"], r["source"]) for r in rows] == [("a/tall.png", "AB123", "s1"),
                                                                   ("a/small.png", "7XYZ", "s2")]
    t = cv2.imread(str(tmp_path / "dst" / "a" / "tall.png"), cv2.IMREAD_UNCHANGED)
    s = cv2.imread(str(tmp_path / "dst" / "a" / "small.png"), cv2.IMREAD_UNCHANGED)
    assert t.shape == (96, 200) and s.shape == (40, 120)
    assert abs(int(t[50, 100]) - round(0.299 * 200)) <= 1 and int(s[5, 5]) == 90


def test_frames_shrink_to_the_width_with_their_boxes(tmp_path):
    src = tmp_path / "frames"
    (src / "eu").mkdir(parents=True)
    img = np.zeros((720, 1280, 3), np.uint8)
    cv2.rectangle(img, (400, 300), (599, 349), (255, 255, 255), -1)
    cv2.imwrite(str(src / "eu" / "f.jpg"), img)
    cv2.imwrite(str(src / "eu" / "g.jpg"), np.zeros((300, 500, 3), np.uint8))
    write_csv(src / "frames.csv", [{"file": "eu/f.jpg", "x": 400, "y": 300, "w": 200, "h": 50, "text": "AB1", "region": "eu"},
                                   {"file": "eu/g.jpg", "x": 10, "y": 20, "w": 30, "h": 9, "text": "CD2", "region": "eu"}])
    assert gpu_pack.pack_frames(src, tmp_path / "out", 640, 90) == 2
    photos = load_frames(tmp_path / "out", "train") + load_frames(tmp_path / "out", "val")
    by_w = {p.image.shape: p.quads[0] for p in photos}
    assert set(by_w) == {(360, 640), (300, 500)}
    np.testing.assert_allclose(by_w[(360, 640)][0], [200, 150])
    np.testing.assert_allclose(by_w[(360, 640)][2], [300, 175])
    np.testing.assert_allclose(by_w[(300, 500)][0], [10, 20])
    big = by_w[(360, 640)]
    inside = next(p.image for p in photos if p.image.shape == (360, 640))[int(big[0, 1]) + 5, int(big[0, 0]) + 5]
    assert inside > 200  # the white box is where the scaled box says


def test_scenes_keep_every_validation_one_and_fill_the_room_with_training_ones(tmp_path):
    src = tmp_path / "scenes"
    src.mkdir()
    names = [f"neg-{i:04d}.jpg" for i in range(40)]
    for n in names:
        (src / n).write_bytes(b"x" * 1000)
    val = [n for n in names if hash_split(n, 8) == "val"]
    assert val, "the names chosen give no validation scene"
    n_val, n_train = gpu_pack.pack_scenes(src, tmp_path / "out", room=len(val) * 1000 + 5500)
    assert (n_val, n_train) == (len(val), 5)
    kept = sorted(p.name for p in (tmp_path / "out").iterdir())
    train = [n for n in names if n not in val]
    assert kept == sorted(val + train[:5])
