"""Train the plate detector (a centre-point network, grey in, plate corners out).

    python -m tools.train_detector runs/det --minutes 90            # CPU, one training thread
    python -m tools.train_detector runs/det --minutes 10 --device cuda --batch 128 --workers 8
    python -m tools.train_detector runs/det --minutes 30 --resume   # go on from runs/det/last.pt

Samples come from ``detector_data.DetectorData`` (real frames and car photos of the train split,
plates pasted into no-plate scenes, camera degradations), drawn live by DataLoader workers. Every
``--eval-every`` seconds the model is scored on the validation frames (recall@1/@5 at IoU >= 0.5,
at the runtime's working width and decoder) and on validation no-plate scenes (share with any
plate at ``--score``); ``best.pt`` keeps the best by recall@1 minus false plates. The log is
``OUT/train.log``, one line per step block and per evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edge_ocr.capture.quad import extent, iou
from edge_ocr.find.detector import REG_SCALE, STRIDE, decode, prepare
from tools.detector_data import DATA, DetectorData, load_frames, load_openimages, load_scenes


def cbr(i: int, o: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class Block(nn.Module):
    """Depthwise 3x3 (dilated for reach) + pointwise, residual."""

    def __init__(self, c: int, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, 1, dilation, dilation=dilation, groups=c, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.dw(x)))
        return F.relu(x + self.bn2(self.pw(y)))


class PlateDet(nn.Module):
    """Stride-4 heat map + 8 corner offsets; a small FPN joins 1/16 and 1/8 context back in."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.s4 = nn.Sequential(cbr(1, 16, 2), cbr(16, w, 2), Block(w))
        self.s8 = nn.Sequential(cbr(w, w * 3 // 2, 2), Block(w * 3 // 2), Block(w * 3 // 2))
        self.s16 = nn.Sequential(cbr(w * 3 // 2, w * 2, 2), Block(w * 2), Block(w * 2, 2), Block(w * 2, 4))
        self.lat16 = nn.Conv2d(w * 2, w, 1)
        self.lat8 = nn.Conv2d(w * 3 // 2, w, 1)
        self.lat4 = nn.Conv2d(w, w, 1)
        self.mix8 = cbr(w, w)
        self.head = nn.Sequential(cbr(w, w), nn.Conv2d(w, 9, 1))
        nn.init.constant_(self.head[1].bias[:1], -2.2)  # start near "no plate" (prior 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.s4(x)
        b = self.s8(a)
        c = self.s16(b)
        p8 = self.mix8(self.lat8(b) + F.interpolate(self.lat16(c), scale_factor=2.0, mode="nearest"))
        p4 = self.lat4(a) + F.interpolate(p8, scale_factor=2.0, mode="nearest")
        return self.head(p4)


class Exported(nn.Module):
    """What ships: the heat map through a sigmoid, offsets as they are."""

    def __init__(self, net: PlateDet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return torch.cat([torch.sigmoid(y[:, :1]), y[:, 1:]], 1)


def targets(quads: np.ndarray, ignore: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Heat map, its weight, corner offsets and their weight at stride ``STRIDE``."""
    n = size // STRIDE
    heat = np.zeros((n, n), np.float32)
    weight = np.ones((n, n), np.float32)
    reg = np.zeros((8, n, n), np.float32)
    rw = np.zeros((n, n), np.float32)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    for q, ign in zip(quads, ignore):
        lo, hi = q.min(0) / STRIDE, q.max(0) / STRIDE
        if ign:
            x0, y0 = np.floor(np.maximum(lo, 0)).astype(int)
            x1, y1 = np.ceil(np.minimum(hi, n - 1)).astype(int)
            weight[y0 : y1 + 1, x0 : x1 + 1] = 0
            continue
        c = q.mean(0) / STRIDE
        sx, sy = max(0.6, (hi[0] - lo[0]) / 6), max(0.6, (hi[1] - lo[1]) / 6)
        g = np.exp(-((xx + 0.5 - c[0]) ** 2) / (2 * sx * sx) - ((yy + 0.5 - c[1]) ** 2) / (2 * sy * sy))
        heat = np.maximum(heat, g)
        ix, iy = int(c[0]), int(c[1])
        heat[iy, ix] = 1.0
        pw = float(np.linalg.norm(q[1] - q[0]))
        for dy, dx in ((0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)):
            x, y = ix + dx, iy + dy
            if 0 <= x < n and 0 <= y < n and (dx == 0 and dy == 0 or rw[y, x] == 0):
                centre = np.array([(x + 0.5) * STRIDE, (y + 0.5) * STRIDE], np.float32)
                reg[:, y, x] = ((q - centre) / REG_SCALE).reshape(8)
                # errors count relative to the plate's width: 2 px on a 20 px plate is a lot
                rw[y, x] = (1.0 if dx == 0 and dy == 0 else 0.5) * REG_SCALE / max(pw, 16.0)
    return heat, weight, reg, rw


class Stream(torch.utils.data.IterableDataset):
    def __init__(self, size: int, seed: int, bank: int) -> None:
        self.size, self.seed, self.bank = size, seed, bank
        self.data: DetectorData | None = None

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        if self.data is None:
            self.data = DetectorData(self.size, seed=self.seed * 100 + wid, bank=self.bank)
        rng = np.random.default_rng([self.seed, wid, int(time.time())])
        while True:
            img, q, ig = self.data.sample(rng)
            h, w, r, rw = targets(q, ig, self.size)
            yield img[None].astype(np.float32) / 255, h, w, r, rw


def focal(logits: torch.Tensor, heat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of plates."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (heat >= 1.0).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos) * weight
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def load_val(limit_scenes: int) -> dict:
    real = DATA / "plates-real-dev"
    return {
        "frames": load_frames(real / "frames", "val"),
        "openimages": load_openimages(DATA / "plates-openimages-dev", "val"),
        "scenes": load_scenes(DATA / "scenes-neg", "val", limit_scenes),
    }


def predict(model: nn.Module, grey: np.ndarray, work_width: int, min_score: float, max_det: int = 5) -> list:
    x, scale = prepare(grey, work_width)
    dev = next(model.parameters()).device  # a model training on a GPU is evaluated there
    with torch.no_grad():
        y = model(torch.from_numpy(x).to(dev))[0].cpu().numpy()
    return [(d.quad / scale, d.score) for d in decode(y, min_score, max_det)]


def evaluate(model: nn.Module, val: dict, work_width: int, score: float) -> dict:
    """Recall@1/@5 on frames, recall@5 of >= 60 px plates on openimages, false-plate share on scenes."""
    model.eval()
    exp = Exported(model)
    r1 = r5 = 0
    for ph in val["frames"]:
        dets = predict(exp, ph.image, work_width, score)
        ious = [iou(extent(q), extent(ph.quads[0])) for q, _ in dets]
        r1 += bool(ious) and ious[0] >= 0.5
        r5 += any(v >= 0.5 for v in ious)
    big = found = 0
    for ph in val["openimages"]:
        dets = predict(exp, ph.image, work_width, score)
        for gt in ph.quads:
            if gt[1, 0] - gt[0, 0] >= 60:
                big += 1
                found += any(iou(extent(q), extent(gt)) >= 0.5 for q, _ in dets)
    fp = sum(bool(predict(exp, s, work_width, score, 1)) for s in val["scenes"])
    model.train()
    n = max(len(val["frames"]), 1)
    return {"recall1": r1 / n, "recall5": r5 / n, "oi60": found / max(big, 1), "fp": fp / max(len(val["scenes"]), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--size", type=int, default=256, help="training canvas, px")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=32, help="network width (channels at 1/4)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--bank", type=int, default=600, help="rendered plates kept per worker")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=float, default=600, help="seconds between evaluations")
    ap.add_argument("--work-width", type=int, default=640)
    ap.add_argument("--score", type=float, default=0.5, help="detection threshold in evaluation")
    ap.add_argument("--val-scenes", type=int, default=200)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    logf = (args.out / "train.log").open("a", encoding="utf-8")

    def say(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    dev = torch.device(args.device)
    model = PlateDet(args.width).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, best, spent = 0, -1e9, 0.0
    if args.resume and (args.out / "last.pt").exists():
        ck = torch.load(args.out / "last.pt", map_location=dev)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best, spent = ck["step"], ck.get("best", best), ck.get("seconds", 0.0)
        say(f"resumed at step {step} ({spent / 60:.1f} min trained)")
    params = sum(p.numel() for p in model.parameters())
    say(f"PlateDet width {args.width}: {params} parameters; {json.dumps(vars(args), default=str)}")
    loader = torch.utils.data.DataLoader(Stream(args.size, args.seed + step, args.bank), batch_size=args.batch,
                                         num_workers=args.workers, persistent_workers=args.workers > 0,
                                         prefetch_factor=4 if args.workers else None)
    val = load_val(args.val_scenes)
    budget = args.minutes * 60
    t0 = time.time() - spent
    last_eval = time.time()
    total = spent + budget
    agg = np.zeros(3)
    for img, heat, weight, reg, rw in loader:
        elapsed = time.time() - t0
        # cosine from lr to lr/30 over the whole planned time (resumed runs continue the curve)
        frac = min(elapsed / total, 1.0)
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.033 + 0.967 * 0.5 * (1 + math.cos(math.pi * frac)))
        img, heat, weight, reg, rw = (t.to(dev) for t in (img, heat, weight, reg, rw))
        y = model(img)
        lh = focal(y[:, 0], heat, weight)
        lr_ = ((y[:, 1:] - reg).abs().sum(1) * rw).sum() / (rw > 0).float().sum().clamp(min=1.0)
        loss = lh + lr_
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        agg += (lh.item(), lr_.item(), 1)
        if step % 50 == 0:
            say(f"step {step} {elapsed / 60:.1f} min heat {agg[0] / agg[2]:.4f} reg {agg[1] / agg[2]:.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e}")
            agg[:] = 0
        done = elapsed >= total
        if time.time() - last_eval >= args.eval_every or done:
            last_eval = time.time()
            m = evaluate(model, val, args.work_width, args.score)
            ck = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "seconds": elapsed,
                  "args": vars(args) | {"out": str(args.out)}, "width": args.width, "metrics": m}
            merit = m["recall1"] + 0.5 * m["oi60"] - 2 * m["fp"]
            if merit > best:
                best = merit
                torch.save(ck, args.out / "best.pt")
            ck["best"] = best
            torch.save(ck, args.out / "last.pt")
            say(f"eval step {step}: recall@1 {m['recall1']:.3f} recall@5 {m['recall5']:.3f} "
                f"openimages>=60px {m['oi60']:.3f} false-plate scenes {m['fp']:.3f} (merit {merit:.3f}, best {best:.3f})")
        if done:
            break
    say(f"done: {step} steps")


if __name__ == "__main__":
    main()
