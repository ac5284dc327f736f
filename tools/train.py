"""Train the plate CRNN with CTC on synthetic shards, optionally mixed with real labelled crops.

    python -m tools.synth_mix data/shards --shards 40 --count 2000 --seed 1   # synthetic data
    python -m tools.train --shards data/shards --real ../shared/data/plates-real-dev/crops/labels.csv \
        --out runs/main --steps 30000

Seeded, resumable (``--resume`` picks up ``OUT/last.pt``), logs one line per ``--log-every``
steps to stdout and ``OUT/train.log``. Real crops are split deterministically by plate: one in
three plates (``evaluate.split_of(text, region) == "val"``, every crop of that plate) is never
trained on and is used for validation.
The shard folder is re-scanned every 1,000 steps, so a generator can keep adding shards.
"""

from __future__ import annotations

import argparse
import csv
import functools
import glob
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from edge_ocr.read.preprocess import PreprocessSpec
from tools import qat
from tools.crnn import CHARSET, CRNN, from_checkpoint
from tools.evaluate import normalise, row_split, small_view
from tools.synth_plates import pack_samples

SPEC = PreprocessSpec()
CHAR_INDEX = {c: i + 1 for i, c in enumerate(CHARSET)}


def normalise_label(text: str, region: str) -> str:
    """The label convention the model learns and evaluation compares (see MODEL_CARD.md)."""
    return normalise(text, region, CHARSET)


def read_labels(csv_path: Path) -> list[dict]:
    with open(csv_path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["path"] = str(csv_path.parent / r["file"])
    return rows


def read_cached(cache: dict, path: str) -> np.ndarray:
    """A real crop, read from disk once per run."""
    if path not in cache:
        cache[path] = cv2.imread(path, cv2.IMREAD_COLOR)
    return cache[path]


def augment_real(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild camera-like changes for real crops: box jitter, rotation, blur, light, JPEG."""
    h, w = img.shape[:2]
    dx0, dx1 = (rng.uniform(-0.04, 0.06, 2) * w).astype(int)
    dy0, dy1 = (rng.uniform(-0.06, 0.1, 2) * h).astype(int)
    img = cv2.copyMakeBorder(img, max(dy0, 0), max(dy1, 0), max(dx0, 0), max(dx1, 0), cv2.BORDER_REPLICATE)
    img = img[max(-dy0, 0): img.shape[0] - max(-dy1, 0), max(-dx0, 0): img.shape[1] - max(-dx1, 0)]
    if rng.random() < 0.5:
        hh, ww = img.shape[:2]
        M = cv2.getRotationMatrix2D((ww / 2, hh / 2), rng.normal(0, 2.0), 1.0)
        M[0, 1] += rng.normal(0, 0.05)
        img = cv2.warpAffine(img, M, (ww, hh), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.3:
        s = rng.uniform(0.4, 0.9)
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (img.shape[1], img.shape[0]))
    img = np.clip(img.astype(np.float32) * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 90))])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


class ShardPool:
    """All synthetic samples from the shard folder, held as uint8 (5 KB each)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.loaded: set[str] = set()
        self.imgs: list[np.ndarray] = []
        self.widths: list[np.ndarray] = []
        self.labels: list[str] = []
        self.refresh()

    def refresh(self) -> int:
        new = 0
        for path in sorted(glob.glob(os.path.join(self.folder, "shard-*.npz"))):
            if path in self.loaded or path.endswith(".tmp.npz"):
                continue
            with np.load(path) as z:
                self.imgs.append(z["imgs"])
                self.widths.append(z["widths"])
                self.labels.extend(normalise_label(str(t), str(r)) for t, r in zip(z["labels"], z["regions"]))
            self.loaded.add(path)
            new += 1
        if new:
            self.all_imgs = np.concatenate(self.imgs)
            self.all_widths = np.concatenate(self.widths)
        return new

    def __len__(self) -> int:
        return len(self.labels)


def to_tensor(imgs: np.ndarray, widths: np.ndarray) -> torch.Tensor:
    x = (imgs.astype(np.float32) / 255.0 - SPEC.mean) / SPEC.std
    cols = np.arange(SPEC.width)[None, None, :]
    x = np.where(cols < widths[:, None, None], x, SPEC.pad_value)
    return torch.from_numpy(x[:, None].astype(np.float32))


def encode(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    flat = [CHAR_INDEX[c] for t in labels for c in t]
    return torch.tensor(flat, dtype=torch.long), torch.tensor([len(t) for t in labels], dtype=torch.long)


def greedy(logits: torch.Tensor) -> list[str]:
    best = logits.argmax(-1).numpy()
    out = []
    for row in best:
        prev, s = 0, []
        for k in row:
            if k != prev and k != 0:
                s.append(CHARSET[k - 1])
            prev = k
        out.append("".join(s))
    return out


def augment_real_as(img: np.ndarray, rng: np.random.Generator, small: float = 0.0) -> np.ndarray:
    """``augment_real``, then for a ``small`` share of crops the plate as a camera sees it small
    (48-110 px wide, JPEG-coded: ``evaluate.small_view``)."""
    img = augment_real(img, rng)
    if small and rng.random() < small:
        img = small_view(img, int(rng.integers(48, 111)), int(rng.integers(35, 90)))
    return img


def real_batch(rows: list[dict], cache: dict, rng: np.random.Generator, n: int, augment: bool,
               small: float = 0.0):
    def one(i: int) -> tuple:
        r = rows[int(i)]
        img = read_cached(cache, r["path"])
        if augment:
            img = augment_real_as(img, rng, small)
        return img, normalise_label(r["text"], r["region"]), r["region"]

    imgs, widths, labels, _ = pack_samples((one(i) for i in rng.integers(0, len(rows), n)), SPEC)
    return imgs, widths.astype(np.int64), labels


def evaluate_rows(model: nn.Module, rows: list[dict], cache: dict, dev: torch.device | None = None,
                  tight: bool = False) -> dict:
    """Greedy exact-match by region. ``tight`` runs each crop alone, cut to its own width
    (rounded up to 8), as a runtime with a dynamic-width model does."""
    dev = dev or torch.device("cpu")
    modes = {m: m.training for m in model.modules()}  # restored after: QAT keeps batch-norm frozen
    model.eval()
    correct, by_region = 0, {}
    step = 1 if tight else 128
    with torch.no_grad():
        for s in range(0, len(rows), step):
            chunk = rows[s: s + step]
            imgs, widths, _, _ = pack_samples(((read_cached(cache, r["path"]), r["text"], r["region"]) for r in chunk),
                                              SPEC)
            x = to_tensor(imgs, widths)
            if tight:
                x = x[..., : min(SPEC.width, (int(widths.max()) + 7) // 8 * 8)]
            preds = greedy(model(x.to(dev)).float().cpu())
            for r, p in zip(chunk, preds):
                ok = p == normalise_label(r["text"], r["region"])
                correct += ok
                a = by_region.setdefault(r["region"], [0, 0])
                a[0] += ok
                a[1] += 1
    for m, was in modes.items():
        m.train(was)
    res = {k: round(v[0] / v[1], 4) for k, v in sorted(by_region.items())}
    res["all"] = round(correct / max(len(rows), 1), 4)
    return res


def load_onnx_weights(model: CRNN, path: Path) -> None:
    """Start from a shipped FP32 ONNX model (tools/export_onnx.py output) when its checkpoint is
    not at hand. The export folded each batch-norm into its convolution, so the batch-norms
    become identities (mean 0, var 1, weight 1, bias = the folded bias) and must stay frozen
    (``qat.freeze_bn``) while fine-tuning. ONNX orders the LSTM gates i, o, f, c; PyTorch i, f, c, o."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    convs = [m for m in model.cnn if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.cnn if isinstance(m, nn.BatchNorm2d)]
    conv_w = [v for k, v in inits.items() if k.startswith("onnx::Conv_") and v.ndim == 4]
    conv_b = [v for k, v in inits.items() if k.startswith("onnx::Conv_") and v.ndim == 1]
    mats = [v for k, v in inits.items() if k.startswith("onnx::MatMul_")]
    lstm = [v for k, v in inits.items() if k.startswith("onnx::LSTM_")]
    if len(conv_w) != len(convs) or len(mats) != 2 or len(lstm) != 3:
        raise SystemExit(f"{path}: not the layout tools/export_onnx.py writes for this CRNN")
    for k, (conv, bn) in enumerate(zip(convs, bns, strict=True)):
        conv.weight.data = torch.from_numpy(conv_w[k].copy())
        bn.weight.data.fill_(1.0)
        bn.bias.data = torch.from_numpy(conv_b[k].copy())
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # so (x - 0) / sqrt(var + eps) is exactly x
    model.proj.weight.data = torch.from_numpy(mats[0].T.copy())
    model.proj.bias.data = torch.from_numpy(inits["proj.bias"].copy())
    model.fc.weight.data = torch.from_numpy(mats[1].T.copy())
    model.fc.bias.data = torch.from_numpy(inits["fc.bias"].copy())
    b, w, r = min(lstm, key=lambda a: a.ndim), *[a for a in lstm if a.ndim == 3]

    def order(a: np.ndarray) -> np.ndarray:
        return np.concatenate([np.split(a, 4, axis=0)[i] for i in (0, 2, 3, 1)])

    hid = model.rnn.hidden_size
    for d, suffix in enumerate(("", "_reverse")):
        getattr(model.rnn, f"weight_ih_l0{suffix}").data = torch.from_numpy(order(w[d]).copy())
        getattr(model.rnn, f"weight_hh_l0{suffix}").data = torch.from_numpy(order(r[d]).copy())
        getattr(model.rnn, f"bias_ih_l0{suffix}").data = torch.from_numpy(order(b[d][: 4 * hid]).copy())
        getattr(model.rnn, f"bias_hh_l0{suffix}").data = torch.from_numpy(order(b[d][4 * hid:]).copy())


def pick(imgs: np.ndarray, widths: np.ndarray, labels: list[str], avail: int, n: int,
         rng: np.random.Generator, cap: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """n random samples of the first ``avail``; with cap < full width only those that fit in it."""
    idx = rng.integers(0, avail, n if cap >= SPEC.width else 8 * n)
    if cap < SPEC.width:
        fit = idx[widths[idx] <= cap][:n]
        idx = fit if len(fit) >= n // 4 else idx[:n]
    return imgs[idx], widths[idx].astype(np.int64), [labels[int(i)] for i in idx]


def joined_if_two_row(row: dict, cache: dict) -> bool:
    """A two-row crop (source ``*-2row``) is trained on only if the runtime joins its rows into
    one line; one it cannot join would teach the network to read seven characters in 40 columns."""
    if not row.get("source", "").endswith("2row"):
        return True
    from edge_ocr.capture.grey import to_grey
    from edge_ocr.read.tworow import find_rows

    img = read_cached(cache, row["path"])  # kept: training reads it again
    return img is not None and find_rows(to_grey(img)) is not None


def cpu_has_bf16() -> bool:
    """bf16 matrix units (AMX or AVX-512 BF16): there autocast runs ~1.6x faster than FP32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", default=None, help="folder of synthetic .npz shards (tools/synth_mix.py --shards)")
    ap.add_argument("--stream-workers", type=int, default=0,
                    help="render synthetic plates (and augment real crops) in this many processes while training")
    ap.add_argument("--recipe", type=int, default=2, choices=[1, 2, 3],
                    help="what the stream workers render (tools/synth_mix.py --recipe; 3: the fast renderer, "
                         "tools/synth_fast.py)")
    ap.add_argument("--real-workers", type=int, default=2, help="of the stream workers, how many augment real crops")
    ap.add_argument("--buffer", type=int, default=200000, help="streamed synthetic samples kept for sampling")
    ap.add_argument("--real", type=Path, default=None, help="labels.csv of real crops to mix in (train split only)")
    ap.add_argument("--real-fraction", type=float, default=0.25, help="share of each batch taken from real crops")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=30000)
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="train for this wall-clock time instead of --steps (the LR schedule follows the clock)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--real-small", type=float, default=0.0,
                    help="share of real crops shown as a small plate (48-110 px wide, JPEG): the live camera's case")
    ap.add_argument("--var-width", type=float, default=0.0,
                    help="share of batches cut to a narrower width (teaches the model to run on unpadded crops)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (fine-tuning)")
    ap.add_argument("--init-onnx", type=Path, default=None,
                    help="start from a shipped FP32 ONNX model (batch-norms then stay frozen)")
    ap.add_argument("--freeze-bn", action="store_true", help="keep batch-norm statistics fixed")
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                    help="bf16 autocast on the CPU (auto: where lscpu shows amx_bf16 or avx512_bf16)")
    ap.add_argument("--exclude-source", action="append", default=[],
                    help="leave the real crops of this source (labels.csv 'source') out of training")
    ap.add_argument("--qat", action="store_true",
                    help="quantisation-aware fine-tuning (tools/qat.py): train against the INT8 rounding; "
                         "use with --init and a small --lr")
    args = ap.parse_args()
    if not args.shards and not args.stream_workers:
        sys.exit("give --shards DIR or --stream-workers N (or both)")

    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)  # augmentation is tiny; OpenCV's pool would only fight torch for the cores
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train.log", "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def say(msg: str) -> None:
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    real_train, real_val, cache = [], [], {}
    if args.real:
        rows = read_labels(args.real)
        real_train = [r for r in rows if row_split(r) == "train" and r.get("source") not in args.exclude_source
                      and joined_if_two_row(r, cache)]
        real_val = [r for r in rows if row_split(r) == "val"]
    stream = None
    if args.stream_workers:  # fork before torch touches an accelerator
        from tools.synth_stream import Stream

        stream = Stream(args.stream_workers, args.seed, real_train, args.real_workers, args.buffer,
                        max(2000, args.buffer // 10), normalise_label,
                        functools.partial(augment_real_as, small=args.real_small), recipe=args.recipe)
    pool = ShardPool(args.shards) if args.shards else None
    if pool is not None and not len(pool) and stream is None:
        sys.exit(f"no shards in {args.shards}: run python -m tools.synth_mix {args.shards} --shards N first")
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)

    model = CRNN()
    opt_state = None
    step = 0
    done_s = 0.0  # training time of earlier sittings: a resumed --minutes run keeps its schedule
    if args.init:  # its architecture too: a grown network (tools/grow.py) starts here
        model = from_checkpoint(torch.load(args.init, map_location="cpu"))
    if args.init_onnx:
        load_onnx_weights(model, args.init_onnx)
        args.freeze_bn = True
    last = args.out / "last.pt"
    if args.resume and last.exists():
        ck = torch.load(last, map_location="cpu")
        model = from_checkpoint(ck)
        opt_state = ck["opt"]
        step = ck["step"]
        done_s = float(ck.get("elapsed_s", 0.0))
        rng = np.random.default_rng([args.seed, step])
        say(f"resumed from {last} at step {step}")
    if args.qat:
        qat.prepare(model)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    if opt_state:
        opt.load_state_dict(opt_state)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    if stream is not None:  # enough to sample from before the first step
        waited = time.time()
        while len(stream.synth) < min(args.buffer, 20 * args.batch):
            # one chunk a call: a drain that waits up to 1000 chunks only returns once the workers
            # pause for a second, which fast renderers (recipe 3) never do
            stream.drain(max_chunks=1, block=1.0)
            if not stream.alive() or time.time() - waited > 300:
                sys.exit("the synthetic data workers died or produced nothing in 5 minutes (fonts installed?)")
    n_params = sum(p.numel() for p in model.parameters())
    say(f"start: params={n_params} shards={len(pool) if pool else 0} stream_workers={args.stream_workers} "
        f"real_train={len(real_train)} real_val={len(real_val)} steps={args.steps} minutes={args.minutes} "
        f"batch={args.batch} device={dev} threads={torch.get_num_threads()}")

    budget = args.minutes * 60.0
    warm = min(500, args.steps // 10)

    def lr_at(s: int, elapsed: float) -> float:
        frac = elapsed / budget if budget else (s - warm) / max(1, args.steps - warm)
        if (budget and frac < 0.02) or (not budget and s < warm):
            return args.lr * (frac / 0.02 if budget else (s + 1) / warm)
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) + 1e-5

    def save(path: Path) -> dict:
        weights = qat.clean_state_dict(model) if args.qat else {k: v.cpu() for k, v in model.state_dict().items()}
        ck = {"model": weights, "opt": opt.state_dict(), "step": step, "elapsed_s": time.time() - t0,
              "charset": CHARSET, "arch": model.arch, "args": {k: str(v) for k, v in vars(args).items()}}
        torch.save(ck, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
        return ck

    model.train()
    if args.qat or args.freeze_bn:
        qat.freeze_bn(model)
    bf16 = dev.type == "cpu" and (args.bf16 == "on" or (args.bf16 == "auto" and cpu_has_bf16()))
    say(f"bf16 autocast: {bf16}")
    t0, seen, loss_sum, n_log = time.time() - done_s, 0, 0.0, 0
    best = -1.0
    while True:
        elapsed = time.time() - t0
        if (budget and elapsed >= budget) or (not budget and step >= args.steps):
            break
        if pool is not None and step % 1000 == 0 and step and pool.refresh():
            say(f"step {step}: shard pool now {len(pool)} samples")
        if stream is not None:
            stream.drain()
        cap = SPEC.width
        if args.var_width and rng.random() < args.var_width:
            cap = int(rng.choice([48, 64, 80, 96, 112, 128, 144]))
        real_streamed = stream is not None and args.real_workers > 0  # else augmented here, per batch
        has_real = bool(real_train) and (not real_streamed or len(stream.real) > 0)
        n_real = int(round(args.batch * args.real_fraction)) if has_real else 0
        n_syn = args.batch - n_real
        parts = []
        if stream is not None and pool is not None and len(pool):
            n_pool = n_syn // 2
            parts.append(pick(pool.all_imgs, pool.all_widths, pool.labels, len(pool), n_pool, rng, cap))
            parts.append(pick(stream.synth.imgs, stream.synth.widths, stream.synth.labels, len(stream.synth),
                              n_syn - n_pool, rng, cap))
        elif stream is not None:
            parts.append(pick(stream.synth.imgs, stream.synth.widths, stream.synth.labels, len(stream.synth),
                              n_syn, rng, cap))
        else:
            parts.append(pick(pool.all_imgs, pool.all_widths, pool.labels, len(pool), n_syn, rng, cap))
        if n_real and real_streamed:
            parts.append(pick(stream.real.imgs, stream.real.widths, stream.real.labels, len(stream.real),
                              n_real, rng, cap))
        elif n_real:
            ri, rw, rl = real_batch(real_train, cache, rng, n_real * (1 if cap >= SPEC.width else 4), augment=True,
                                    small=args.real_small)
            keep = np.flatnonzero(rw <= cap)[:n_real] if cap < SPEC.width else np.arange(n_real)
            parts.append((ri[keep], rw[keep], [rl[int(k)] for k in keep]))
        imgs = np.concatenate([p[0] for p in parts])
        widths = np.concatenate([p[1] for p in parts])
        labels = [t for p in parts for t in p[2]]
        width_now = max(min(SPEC.width, cap), int(widths.max()))
        width_now = min(SPEC.width, (width_now + 7) // 8 * 8)
        x = to_tensor(imgs, widths)[..., :width_now].to(dev, non_blocking=True)
        targets, tlen = encode(labels)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, elapsed)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)  # N, T, C
        logp = logits.float().log_softmax(-1).permute(1, 0, 2)  # T, N, C
        ilen = torch.full((x.shape[0],), logp.shape[0], dtype=torch.long)
        loss = ctc(logp, targets.to(dev), ilen.to(dev), tlen.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        seen += x.shape[0]
        n_log += 1
        loss_sum = loss_sum + loss.detach()  # summed on the device: .item() every step would sync it
        if step % args.log_every == 0:
            el = time.time() - t0
            extra = f" stream synth={stream.synth.total} real={stream.real.total}" if stream else ""
            say(f"step {step} loss {float(loss_sum) / max(1, n_log):.4f} lr {lr_at(step, el):.2e} "
                f"{seen / max(el - done_s, 1e-6):.0f} samples/s{extra}")
            loss_sum, n_log = 0.0, 0
        if step % args.eval_every == 0:
            ck = save(last)
            if real_val:
                res = evaluate_rows(model, real_val, cache, dev)
                say(f"step {step} eval real_val {json.dumps(res)}")
                if res["all"] >= best:
                    best = res["all"]
                    torch.save(ck, args.out / "best.pt")
    save(last)
    if real_val:
        res = evaluate_rows(model, real_val, cache, dev)
        say(f"step {step} eval real_val {json.dumps(res)}")
        tight = evaluate_rows(model, real_val, cache, dev, tight=True)
        say(f"step {step} eval real_val unpadded {json.dumps(tight)}")
    if stream is not None:
        stream.close()
    say(f"done: {step} steps in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
