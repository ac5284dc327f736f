"""Average two checkpoints of the same network, weight by weight (a "model soup").

    python -m tools.average_weights A B OUT.pt [--weight 0.5]

A and B are ``tools/train.py`` checkpoints (``.pt``) or shipped FP32 ONNX files (read with
``train.load_onnx_weights``). OUT takes B's checkpoint fields (step, args) with the averaged
weights, ready for ``tools/export_onnx.py``.

Why: a long fine-tune on one data mix drifts towards it. 1.4.0 is 1.3.0 averaged half and half with
its own GPU fine-tune; the average read every source at least as well as the fine-tune alone
on the validation split (models/MODEL_CARD.md, "1.4.0"). Both must come from the same start with the
same frozen batch-norms (``--init-onnx`` freezes them), or the average means nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tools.crnn import CHARSET, CRNN
from tools.train import load_onnx_weights


def load(path: Path) -> dict:
    if path.suffix == ".onnx":
        model = CRNN()
        load_onnx_weights(model, path)
        return {"model": model.state_dict(), "charset": CHARSET}
    return torch.load(path, map_location="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--weight", type=float, default=0.5, help="share of B in the average")
    args = ap.parse_args()
    if not 0.0 <= args.weight <= 1.0:
        sys.exit(f"--weight must be between 0 and 1, not {args.weight}")
    a, b = load(args.a), load(args.b)
    if a.get("charset", CHARSET) != b.get("charset", CHARSET):
        sys.exit(f"{args.a} and {args.b} have different charsets: they are not the same network")
    wa, wb = a["model"], b["model"]
    if wa.keys() != wb.keys():
        sys.exit(f"{args.a} and {args.b} have different layers: {sorted(set(wa) ^ set(wb))[:5]}")
    avg = {}
    for k, vb in wb.items():
        va = wa[k]
        if va.shape != vb.shape:
            sys.exit(f"layer {k}: shape {tuple(va.shape)} in {args.a}, {tuple(vb.shape)} in {args.b}")
        # integer buffers (batch-norm counters) are not weights: keep B's
        avg[k] = (va.float() * (1 - args.weight) + vb.float() * args.weight).to(vb.dtype) if vb.is_floating_point() else vb
    out = dict(b)
    out["model"] = avg
    out.pop("opt", None)  # an optimiser state belongs to one trajectory, not to the average
    torch.save(out, args.out)
    print(f"averaged {args.a} ({1 - args.weight:.2f}) and {args.b} ({args.weight:.2f}) -> {args.out}")


if __name__ == "__main__":
    main()
