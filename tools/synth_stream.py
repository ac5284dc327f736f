"""Training data streamed from worker processes into fixed-size ring buffers.

Rendering a synthetic plate costs ~10 ms of one core with Pillow (recipes 1 and 2; recipe 3's
atlas-composed one-row plates a fraction of that, ``python -m bench.synth_speed``), far more than
a training step of the CRNN on any accelerator, so ``train.py --stream-workers N`` keeps N processes rendering
(and augmenting real crops) while the trainer samples batches from what has arrived so far.
Each sample is stored the way the model sees it before normalisation: (32, 160) uint8 after
resize + CLAHE, with its content width, so a buffer of 200,000 samples is 1 GB.

Workers are plain processes forked before the trainer touches the accelerator; each renders
its own deterministic stream (``synth_mix.sample(seed, index)`` with a per-worker seed).
"""

from __future__ import annotations

import multiprocessing as mp
import queue

import numpy as np

CHUNK = 64


def _synth_worker(seed: int, out: mp.Queue, height: int, width: int, recipe: int = 1) -> None:
    import cv2

    from edge_ocr.read.preprocess import PreprocessSpec
    from tools.synth_mix import sample
    from tools.synth_plates import pack_samples

    cv2.setNumThreads(1)
    spec = PreprocessSpec(height=height, width=width)
    for start in range(0, 1 << 62, CHUNK):
        out.put(("synth", *pack_samples((sample(seed, i, recipe=recipe) for i in range(start, start + CHUNK)), spec)))


def _real_worker(seed: int, rows: list[dict], out: mp.Queue, height: int, width: int, augment_real) -> None:
    import cv2

    from edge_ocr.read.preprocess import PreprocessSpec
    from tools.synth_plates import pack_samples

    cv2.setNumThreads(1)
    spec = PreprocessSpec(height=height, width=width)
    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}

    def one(r: dict) -> tuple:
        if r["path"] not in cache:
            cache[r["path"]] = cv2.imread(r["path"], cv2.IMREAD_COLOR)
        return augment_real(cache[r["path"]], rng), r["text"], r["region"]

    while True:
        out.put(("real", *pack_samples((one(rows[int(i)]) for i in rng.integers(0, len(rows), CHUNK)), spec)))


class Ring:
    """Fixed-capacity sample store; new chunks overwrite the oldest."""

    def __init__(self, capacity: int, height: int, width: int) -> None:
        self.imgs = np.zeros((capacity, height, width), np.uint8)
        self.widths = np.zeros(capacity, np.int64)
        self.labels: list[str] = [""] * capacity
        self.capacity, self.filled, self.pos, self.total = capacity, 0, 0, 0

    def add(self, imgs: np.ndarray, widths: np.ndarray, labels: list[str]) -> None:
        for k in range(len(labels)):
            self.imgs[self.pos] = imgs[k]
            self.widths[self.pos] = widths[k]
            self.labels[self.pos] = labels[k]
            self.pos = (self.pos + 1) % self.capacity
        self.filled = min(self.capacity, self.filled + len(labels))
        self.total += len(labels)

    def __len__(self) -> int:
        return self.filled


class Stream:
    """Starts the workers and moves what they made into the synthetic and real rings."""

    def __init__(self, n_workers: int, seed: int, real_rows: list[dict], real_workers: int,
                 capacity: int, real_capacity: int, normalise, augment_real,
                 height: int = 32, width: int = 160, recipe: int = 1) -> None:
        ctx = mp.get_context("fork")
        self.q: mp.Queue = ctx.Queue(maxsize=4 * max(n_workers, 1))
        self.normalise = normalise
        self.synth = Ring(capacity, height, width)
        self.real = Ring(real_capacity, height, width)
        self.procs = []
        n_real = real_workers if real_rows else 0
        for w in range(n_workers):
            if w < n_real:
                p = ctx.Process(target=_real_worker, args=(seed * 1000 + w, real_rows, self.q, height, width, augment_real),
                                daemon=True)
            else:
                # seeds from 100 up never collide with the shard seeds used by synth_mix --shards
                p = ctx.Process(target=_synth_worker, args=(100 + seed * 1000 + w, self.q, height, width, recipe),
                                daemon=True)
            p.start()
            self.procs.append(p)

    def drain(self, max_chunks: int = 1000, block: float = 0.0) -> int:
        n = 0
        while n < max_chunks:
            try:
                kind, imgs, widths, texts, regions = self.q.get(timeout=block) if block else self.q.get_nowait()
            except queue.Empty:
                break
            labels = [self.normalise(str(t), str(r)) for t, r in zip(texts, regions)]
            (self.synth if kind == "synth" else self.real).add(imgs, widths, labels)
            n += 1
        return n

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.procs)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
