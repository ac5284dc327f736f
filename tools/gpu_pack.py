"""Pack what training needs and the GPU machine lacks into one folder that travels with the run.

    python -m tools.gpu_pack .gpu                    # tools/gpu_session.sh pack calls this

The lent GPU machine gets the git working tree and the folders a call carries (64 MiB in all),
not ``../shared``, and has no fonts. This writes, under DEST:

- ``data/plates-real-dev/crops``: the labelled crops, grey (what the recogniser reads: the same
  ``cv2.COLOR_BGR2GRAY`` as ``to_grey``), at most ``--crop-height`` px high, PNG, ``labels.csv``;
- ``data/detcrops``: the shipped detector's crops of the train-split frames (``tools.detector_crops``),
  likewise, with a ``labels.csv`` that also lists the crops above by relative path;
- ``data/plates-real-dev/frames``: the dev frames, grey JPEG, at most ``--frame-width`` px wide
  (the detector works at 640), ``frames.csv`` boxes scaled with them;
- ``data/plates-openimages-dev``, as it is;
- ``data/scenes-neg``: every validation scene and, by name, as many training scenes as
  ``--budget-mb`` leaves room for (the rest of the folder is counted first);
- ``fonts``: the fonts ``tools/synth_plates.py`` lists and finds here, under the same names; the
  CJK one cut down to the characters the renderers draw when fontTools can be imported.

The wheels (``wheels/``) are fetched by ``tools/gpu_session.sh pack`` before this runs, and count
towards the budget. Everything is deterministic: the same data gives the same folder.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import string
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from tools.detector_data import DATA, hash_split
from tools.synth_plates import CHARSET, available_fonts

ROOT = Path(__file__).resolve().parents[1]
# every character a renderer can draw comes from these files' text, the charset or ASCII
RENDERERS = ("synth_plates.py", "synth_tworow.py", "synth_mix.py", "synth_fast.py")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_rows(path: Path, fields: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def grey_at_most(img: np.ndarray, max_h: int = 0, max_w: int = 0) -> tuple[np.ndarray, float]:
    """Grey, shrunk (area) so its height <= max_h and its width <= max_w; and the scale."""
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    s = min(1.0, max_h / h if max_h else 1.0, max_w / w if max_w else 1.0)
    if s < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return grey, s


def pack_crops(labels: Path, dest: Path, max_h: int) -> int:
    """Grey copies of the crops ``labels`` lists (its paths relative or absolute), under their
    relative names, and the labels.csv listing them. Returns the number of crops."""
    fields, rows = read_rows(labels)
    for r in rows:
        src = labels.parent / r["file"]
        img = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"{src}: cannot read the crop listed in {labels}")
        grey, _ = grey_at_most(img, max_h=max_h)
        name = Path(r["file"]).with_suffix(".png")
        if name.is_absolute():
            raise SystemExit(f"{labels}: {r['file']} is an absolute path; give crops under the CSV's folder")
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dest / name), grey, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        r["file"] = name.as_posix()
    write_rows(dest / "labels.csv", fields, rows)
    return len(rows)


def pack_detcrops(frames_csv: Path, crops: Path, dest: Path, max_h: int) -> int:
    """tools.detector_crops on the full-resolution frames, packed like the crops; its labels.csv
    also lists the packed ``crops`` (relative to ``dest``), as ``--also`` would."""
    from tools import detector_crops

    with tempfile.TemporaryDirectory() as tmp:
        if detector_crops.main([str(frames_csv), tmp]):
            raise SystemExit("tools.detector_crops failed")
        n = pack_crops(Path(tmp) / "labels.csv", dest, max_h)
    fields, rows = read_rows(dest / "labels.csv")
    _, given = read_rows(crops / "labels.csv")
    rel = Path("..") / crops.relative_to(dest.parent)
    for r in given:
        r["file"] = (rel / r["file"]).as_posix()
    write_rows(dest / "labels.csv", fields, rows + [{k: r.get(k, "") for k in fields} for r in given])
    return n


def pack_frames(src: Path, dest: Path, max_w: int, quality: int) -> int:
    fields, rows = read_rows(src / "frames.csv")
    for r in rows:
        img = cv2.imread(str(src / r["file"]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise SystemExit(f"{src / r['file']}: cannot read the frame")
        grey, s = grey_at_most(img, max_w=max_w)
        name = Path(r["file"]).with_suffix(".jpg")
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dest / name), grey, [cv2.IMWRITE_JPEG_QUALITY, quality])
        r["file"] = name.as_posix()
        for k in "xywh":
            r[k] = str(round(int(r[k]) * s))
    write_rows(dest / "frames.csv", fields, rows)
    return len(rows)


def pack_scenes(src: Path, dest: Path, room: int) -> tuple[int, int]:
    """All validation scenes, then training scenes by name while ``room`` bytes last.
    Returns (validation scenes, training scenes)."""
    dest.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in src.glob("*.jpg"))
    val = [n for n in names if hash_split(n, 8) == "val"]
    train = [n for n in names if hash_split(n, 8) == "train"]
    for n in val:
        shutil.copyfile(src / n, dest / n)
    room -= sum((src / n).stat().st_size for n in val)
    kept = 0
    for n in train:
        size = (src / n).stat().st_size
        if size > room:
            break
        shutil.copyfile(src / n, dest / n)
        room -= size
        kept += 1
    return len(val), kept


def drawn_characters() -> str:
    text = "".join((ROOT / "tools" / f).read_text(encoding="utf-8") for f in RENDERERS if (ROOT / "tools" / f).exists())
    return "".join(sorted(set(text) | set(CHARSET) | set(string.printable)))


def pack_fonts(dest: Path) -> list[str]:
    """Copies of the fonts found here; the CJK one subset when fontTools is importable."""
    dest.mkdir(parents=True, exist_ok=True)
    latin, cjk = available_fonts()
    for p in latin:
        shutil.copyfile(p, dest / Path(p).name)
    notes = [f"{len(latin)} Latin fonts"]
    try:
        from fontTools import subset
    except ImportError:
        subset = None
    for p in cjk:
        if subset is None:
            shutil.copyfile(p, dest / Path(p).name)
            notes.append(f"{Path(p).name} whole (no fontTools: put its wheel on PYTHONPATH to subset it)")
            continue
        opts = subset.Options()
        opts.font_number = 0  # the face Pillow's ImageFont.truetype opens by default
        opts.layout_features = ["*"]
        font = subset.load_font(p, opts)
        sub = subset.Subsetter(opts)
        sub.populate(text=drawn_characters())
        sub.subset(font)
        subset.save_font(font, str(dest / Path(p).name), opts)  # a TTF under the TTC's name: Pillow reads either
        notes.append(f"{Path(p).name} cut to the {len(drawn_characters())} characters the renderers draw")
    return notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding plates-real-dev, plates-openimages-dev, scenes-neg")
    ap.add_argument("--crop-height", type=int, default=96, help="crops taller than this are shrunk (the network reads 32)")
    ap.add_argument("--frame-width", type=int, default=800, help="a packed frame's width at most, px")
    ap.add_argument("--frame-quality", type=int, default=85)
    ap.add_argument("--budget-mb", type=float, default=52.0, help="the whole folder, wheels included, in MB (1e6 bytes)")
    ap.add_argument("--no-detcrops", action="store_true", help="leave out the detector's crops of the train frames")
    args = ap.parse_args(argv)

    real = args.data / "plates-real-dev"
    if not (real / "crops" / "labels.csv").is_file():
        print(f"error: {real / 'crops' / 'labels.csv'} not found (--data)", file=sys.stderr)
        return 2
    data = args.dest / "data"
    for part in ("data", "fonts"):  # a repeated pack starts clean; the wheels stay
        shutil.rmtree(args.dest / part, ignore_errors=True)
    report = [f"fonts: {'; '.join(pack_fonts(args.dest / 'fonts'))}"]
    crops = data / "plates-real-dev" / "crops"
    report.append(f"crops: {pack_crops(real / 'crops' / 'labels.csv', crops, args.crop_height)}")
    if not args.no_detcrops:
        n = pack_detcrops(real / "frames" / "frames.csv", crops, data / "detcrops", args.crop_height)
        report.append(f"detector crops: {n}")
    n = pack_frames(real / "frames", data / "plates-real-dev" / "frames", args.frame_width, args.frame_quality)
    report.append(f"frames: {n}")
    shutil.copytree(args.data / "plates-openimages-dev", data / "plates-openimages-dev")
    room = int(args.budget_mb * 1e6) - folder_bytes(args.dest)
    n_val, n_train = pack_scenes(args.data / "scenes-neg", data / "scenes-neg", room)
    report.append(f"no-plate scenes: {n_val} validation, {n_train} training")
    for line in report:
        print(line)
    for part in sorted(p for p in args.dest.iterdir() if p.is_dir()):
        print(f"{part}: {folder_bytes(part) / 1e6:.1f} MB")
    total = folder_bytes(args.dest)
    print(f"total {args.dest}: {total / 1e6:.1f} MB ({total / 2**20:.1f} MiB)")
    if total > args.budget_mb * 1e6:
        print(f"error: {total / 1e6:.1f} MB is over --budget-mb {args.budget_mb}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
