"""How fast the synthetic plates render on one core: the Pillow renderer (``tools.synth_mix``
recipe 2, what model 1.4.0 trained on) against the atlas-composed one (``tools.synth_fast``,
``synth_mix`` recipe 3: recipe 2's mix of one- and two-row plates).

    python -m bench.synth_speed              # about a minute
    python -m bench.synth_speed --seconds 5  # quicker, noisier

Each renderer runs in this process on one thread (OpenCV's pool off), as a stream worker does,
for ``--seconds`` of wall time; "+ pack" adds what the worker does next (``pack_samples``: grey,
two-row joining, resize to the model's height, CLAHE). Prints plates per second, the CPU, and how
busy the machine was meanwhile (``bench.machine.LoadMeter``): on a shared machine the figures are
lower bounds.
"""

from __future__ import annotations

import argparse
import json
import time

import cv2

from bench.machine import LoadMeter, load_sentence, machine
from edge_ocr.read.preprocess import PreprocessSpec
from tools import synth_fast, synth_mix
from tools.synth_plates import pack_samples

ONE_ROW_MIX = [r for r in synth_mix.MIX[2] if r != "2row"]


def _one_row(seed: int, i: int):
    return synth_fast.sample(seed, i, ONE_ROW_MIX[i % len(ONE_ROW_MIX)])


RENDERERS = {
    "old: synth_mix recipe 2 (Pillow)": lambda seed, i: synth_mix.sample(seed, i, recipe=2),
    "fast: synth_fast one-row plates": _one_row,
    "fast: synth_mix recipe 3 (the whole mix)": lambda seed, i: synth_mix.sample(seed, i, recipe=3),
}


def rate(make, seconds: float, pack: bool) -> tuple[float, int]:
    """(plates per second, plates) rendering ``make(seed, i)`` for ``seconds``."""
    spec = PreprocessSpec()
    make(1, 0)  # fonts and atlases loaded outside the clock
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        batch = [make(7, n + k) for k in range(16)]
        if pack:
            pack_samples(iter(batch), spec)
        n += len(batch)
    return n / (time.perf_counter() - t0), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="wall time per renderer and mode")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    meter = LoadMeter()
    rows = []
    for name, make in RENDERERS.items():
        for pack in (False, True):
            r, n = rate(make, args.seconds, pack)
            rows.append({"renderer": name, "pack": pack, "plates_per_s": round(r, 1), "plates": n})
    load = meter.stop()
    m = machine()
    if args.json:
        print(json.dumps({"machine": m, "load": load, "rows": rows}))
        return
    print(f"synthetic plates per second on one core of {m['cpu']} ({m['cores']} cores, {m['arch']}), "
          f"{args.seconds:g} s each")
    for row in rows:
        print(f"  {row['renderer']:42s} {'+ pack' if row['pack'] else '      '}  {row['plates_per_s']:8.1f} /s"
              f"  ({row['plates']} plates)")
    print(load_sentence(load))


if __name__ == "__main__":
    main()
