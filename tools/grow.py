"""Grow a trained CRNN into a larger one that starts out computing the same function.

    python -m tools.grow models/plate_crnn_fp32.onnx runs/grow-h160/init.pt --hidden 160
    python -m tools.grow models/plate_crnn_fp32.onnx runs/grow-w15/init.pt --widths 24,72,96,144,192
    python -m tools.grow models/plate_crnn_fp32.onnx runs/grow-l2/init.pt --layers 2

then fine-tune it (``tools/train.py --init runs/grow-h160/init.pt --freeze-bn ...``). A capacity
sweep on a CPU cannot afford to train each size from scratch; growing the shipped model lets
every size start from what the shipped one knows, so the same fine-tuning budget compares what
the extra capacity adds (issue 25).

- Wider convolutions: each new channel copies an existing one (weights and batch-norm); the next
  layer's weights for a channel and its copies are split in random shares that sum to one, so the
  sum is unchanged and the copies do not stay twins.
- More hidden units: the new projection outputs and LSTM units get a small random start; every
  weight from a new unit into an old one, and into the classifier, is zero, so they change
  nothing until training gives them a use.
- More LSTM layers: residual layers whose ``mix`` starts at zero.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from tools.average_weights import load
from tools.crnn import CHARSET, CRNN, from_checkpoint


def _shares(mapping: torch.Tensor, gen: torch.Generator, noise: float) -> torch.Tensor:
    """For each new channel, its share of the old channel it copies: shares of one old channel sum to 1."""
    raw = 1.0 + noise * (2 * torch.rand(len(mapping), generator=gen) - 1)
    total = torch.zeros(int(mapping.max()) + 1).index_add_(0, mapping, raw)
    return raw / total[mapping]


@torch.no_grad()
def grow(old: CRNN, widths: list[int], hidden: int, layers: int, seed: int = 0, noise: float = 0.2) -> CRNN:
    a = old.arch
    if any(n < o for n, o in zip(widths, a["widths"], strict=True)) or hidden < a["hidden"] or layers < a["layers"]:
        raise ValueError(f"can only grow: {a} -> widths {widths}, hidden {hidden}, layers {layers}")
    if old.extra:
        raise ValueError("growing a network that already has extra LSTM layers is not supported")
    gen = torch.Generator().manual_seed(seed)
    new = CRNN(num_classes=old.fc.out_features, hidden=hidden, widths=tuple(widths), layers=layers)
    convs_o = [m for m in old.cnn if isinstance(m, nn.Conv2d)]
    bns_o = [m for m in old.cnn if isinstance(m, nn.BatchNorm2d)]
    convs_n = [m for m in new.cnn if isinstance(m, nn.Conv2d)]
    bns_n = [m for m in new.cnn if isinstance(m, nn.BatchNorm2d)]

    # which old channel each new channel copies, and its share of that channel's outgoing weights
    maps, shares = [], []
    for k, conv in enumerate(convs_o):
        c_old, c_new = conv.out_channels, convs_n[k].out_channels
        extra = torch.randint(0, c_old, (c_new - c_old,), generator=gen)
        m = torch.cat([torch.arange(c_old), extra])
        maps.append(m)
        shares.append(_shares(m, gen, noise) if c_new > c_old else torch.ones(c_new))
    for k, (co, cn) in enumerate(zip(convs_o, convs_n, strict=True)):
        w = co.weight[maps[k]]  # out channels copied
        if k > 0:
            w = w[:, maps[k - 1]] * shares[k - 1][None, :, None, None]
        cn.weight.copy_(w)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bns_n[k], name).copy_(getattr(bns_o[k], name)[maps[k]])

    # projection: its input is (channel, row) flattened, two rows per channel
    h_old = a["hidden"]
    last_map, last_share = maps[-1], shares[-1]
    cols = torch.stack([2 * last_map, 2 * last_map + 1], 1).reshape(-1)
    col_share = torch.stack([last_share, last_share], 1).reshape(-1)
    pw = torch.zeros_like(new.proj.weight)
    nn.init.normal_(pw, std=0.02)
    pw[:h_old] = old.proj.weight[:, cols] * col_share[None, :]
    new.proj.weight.copy_(pw)
    new.proj.bias.zero_()
    new.proj.bias[:h_old] = old.proj.bias

    # the LSTM: old units keep their weights, weights from new inputs or units into old units are
    # zero, new units start small and random; gate blocks (i, f, g, o) of ``hidden`` rows each
    for suffix in ("", "_reverse"):
        for kind in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            d = getattr(new.rnn, kind + suffix)
            fresh = torch.empty_like(d)
            nn.init.uniform_(fresh, -0.05, 0.05)
            blocks = list(fresh.chunk(4, 0))
            for b, sb in zip(blocks, getattr(old.rnn, kind + suffix).chunk(4, 0), strict=True):
                b[:h_old] = 0 if kind.startswith("weight") else sb
                if kind.startswith("weight"):  # input (the projection's) and recurrent columns alike
                    b[:h_old, :h_old] = sb
            d.copy_(torch.cat(blocks, 0))
    for mix in new.mix:  # extra layers are residual: at zero they add nothing
        nn.init.zeros_(mix.weight)
        nn.init.zeros_(mix.bias)
    fw = torch.zeros_like(new.fc.weight)
    fw[:, :h_old] = old.fc.weight[:, :h_old]
    fw[:, hidden:hidden + h_old] = old.fc.weight[:, h_old:]
    new.fc.weight.copy_(fw)
    new.fc.bias.copy_(old.fc.bias)
    return new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="FP32 ONNX (tools/export_onnx.py) or train.py checkpoint")
    ap.add_argument("out", type=Path, help="checkpoint to write, for train.py --init")
    ap.add_argument("--widths", default=None, help="five convolution widths, comma-separated (default: unchanged)")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ck = load(args.source)
    old = from_checkpoint(ck)
    a = old.arch
    widths = [int(x) for x in args.widths.split(",")] if args.widths else a["widths"]
    try:
        new = grow(old, widths, args.hidden or a["hidden"], args.layers or a["layers"], seed=args.seed)
    except ValueError as e:
        sys.exit(f"{args.source}: {e}")
    old.eval()
    new.eval()
    x = torch.randn(4, 1, 32, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = float((old(x) - new(x)).abs().max())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": new.state_dict(), "charset": ck.get("charset", CHARSET), "arch": new.arch, "step": 0}, args.out)
    n_old = sum(p.numel() for p in old.parameters())
    n_new = sum(p.numel() for p in new.parameters())
    print(f"grew {args.source} ({n_old} parameters) into {args.out} ({n_new}, {new.arch}); "
          f"max |old - new| on random crops = {diff:.2e}")


if __name__ == "__main__":
    main()
