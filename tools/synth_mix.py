"""The training mix: which plates (``synth_plates``' one-row layouts, ``synth_tworow``'s two-row
ones) a recipe renders, sample by sample, and the command that writes them.
Deterministic for a seed: sample ``i`` of seed ``s`` is always the same image.

    python -m tools.synth_mix OUT_DIR --count 2000 --seed 1            # writes PNGs + labels.csv
    python -m tools.synth_mix OUT_DIR --shards 40 --count 2000 --seed 1 # .npz training shards
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from edge_ocr.capture.grey import to_grey
from edge_ocr.read.preprocess import PreprocessSpec
from edge_ocr.read.tworow import find_rows
from tools import synth_fast
from tools.synth_plates import RENDERERS, _pick, camera, pack_samples, write_pngs
from tools.synth_tworow import render2

# recipe 1: what model 1.2.0 was trained on (and what the tests and the synthetic benchmark
# render); recipe 2: crop-robust training (issue 16): generic Latin plates ("xx") and two-row
# plates in the mix, and the robust camera; recipe 3 (issue 25): recipe 2's mix, its plates composed
# from glyph atlases by ``synth_fast`` (several times faster, look-alikes boosted)
MIX = {1: ["us", "us", "eu", "eu", "br", "cn", "cn"],
       2: ["us", "us", "us", "eu", "eu", "eu", "br", "br", "cn", "cn", "xx", "xx", "xx", "2row", "2row"]}
MIX[3] = MIX[2]


def sample(seed: int, index: int, region: str | None = None, recipe: int = 1) -> tuple[np.ndarray, str, str]:
    """Sample ``index`` of the stream for ``seed``: (BGR crop, label, region)."""
    if recipe == 3:
        return synth_fast.sample(seed, index, region, mix=MIX[3])
    rng = np.random.default_rng([seed, index])
    if region is None:
        region = _pick(rng, MIX[recipe])
    if region == "2row":
        # only crops the runtime joins into one line teach the model anything: a two-row crop
        # it does not join is squeezed to a few columns with seven characters in them
        for _ in range(4):
            crop, label, region2 = render2(rng, robust=recipe >= 2)
            if find_rows(to_grey(crop)) is not None:
                return crop, label, region2
        region = "xx"
    plate, label = RENDERERS[region](rng)
    return camera(rng, plate, region, robust=recipe >= 2), label, region



def write_shard(path: Path, seed: int, start: int, count: int, height: int, width: int, recipe: int = 1) -> None:
    """Render ``count`` samples and store them already resized to the model height with CLAHE
    (``pack_samples``), so training spends its cores on the network."""
    imgs, widths, labels, regions = pack_samples((sample(seed, start + k, recipe=recipe) for k in range(count)),
                                                 PreprocessSpec(height=height, width=width))
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, imgs=imgs, widths=widths, labels=np.array(labels), regions=np.array(regions))
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output folder (PNG files and labels.csv)")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--region", choices=[*RENDERERS, "2row"], default=None, help="only this region")
    ap.add_argument("--shards", type=int, default=0,
                    help="instead of PNGs, write this many .npz training shards of --count samples")
    ap.add_argument("--first-shard", type=int, default=0)
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--recipe", type=int, choices=sorted(MIX), default=1,
                    help="1: the 1.2.0 mix; 2: crop-robust (generic Latin and two-row plates, tight/loose/small crops); "
                         "3: recipe 2's mix rendered by tools/synth_fast.py")
    args = ap.parse_args()
    if args.shards:
        args.out.mkdir(parents=True, exist_ok=True)
        for sh in range(args.first_shard, args.first_shard + args.shards):
            path = args.out / f"shard-{args.seed}-{sh:04d}.npz"
            if not path.exists():
                write_shard(path, args.seed, sh * args.count, args.count, args.height, args.width, args.recipe)
                print(f"wrote {path}", flush=True)
        return
    write_pngs(args.out, (sample(args.seed, i, args.region, args.recipe) for i in range(args.count)), args.seed,
               "synthetic")
    print(f"wrote {args.count} crops to {args.out}")


if __name__ == "__main__":
    main()
