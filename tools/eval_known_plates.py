"""How well known-plate matching (``edge_ocr.known_plates``) tells a misread known plate from
another car, on real plate labels.

    python -m tools.eval_known_plates ../shared/data/plates-real-dev/crops/labels.csv [--max-edits 1]

For every distinct label text (``text`` column of a labels CSV):

- **kept**: the label is the only known plate, and each reading one look-alike swap away (every
  position, every other member of its look-alike group: ``PJB7392`` -> ``PJ87392``) or one
  character short (every position dropped) must still match it; also reported, both misreads at
  once (a swap and a drop), which only look-alike folding keeps within one edit;
- **wrongly matched**: every other distinct label, read exactly, must not match it (ordered
  pairs: ``a`` known, ``b`` read).

Prints the shares (and writes them as JSON with ``--json``). The labels are read in place.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from edge_ocr.config import KnownPlatesConfig
from edge_ocr.decide.known_plates import LOOKALIKE_GROUPS, KnownPlates, normalise


def swaps(text: str) -> list[str]:
    """Every reading of ``text`` with one look-alike swapped."""
    return [text[:i] + other + text[i + 1:] for i, c in enumerate(text)
            for group in LOOKALIKE_GROUPS if c in group for other in group if other != c]


def drops(text: str) -> list[str]:
    """Every reading of ``text`` with one character dropped."""
    return [t for t in (text[:i] + text[i + 1:] for i in range(len(text))) if t]


def misreads(text: str) -> list[str]:
    """Every one-look-alike-swap and every one-dropped-character reading of ``text``."""
    return swaps(text) + drops(text)


def evaluate(texts: list[str], max_edits: int, lookalikes: bool) -> dict[str, float | int]:
    def matcher(plates: list[str]) -> KnownPlates:
        return KnownPlates([(p, [p]) for p in plates], max_edits, lookalikes)

    kept = tried = kept2 = tried2 = 0
    for t in texts:
        one = matcher([t])
        variants = misreads(t)
        tried += len(variants)
        kept += sum(one.match(v) is not None for v in variants)
        both = [d for s in swaps(t) for d in drops(s)]  # two misreads at once
        tried2 += len(both)
        kept2 += sum(one.match(v) is not None for v in both)
    every = matcher(texts)
    wrong = sum(len(every.matches(b)) - 1 for b in texts)  # each matches itself exactly
    pairs = len(texts) * (len(texts) - 1)
    return {"labels": len(texts), "misreads": tried, "kept": kept, "kept_share": kept / tried,
            "swap_and_drop": tried2, "swap_and_drop_kept": kept2, "swap_and_drop_share": kept2 / max(tried2, 1),
            "pairs": pairs, "wrong_pairs": wrong, "wrong_share": wrong / pairs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("labels", help="labels CSV with a text column")
    ap.add_argument("--max-edits", type=int, default=KnownPlatesConfig().max_edits)
    ap.add_argument("--no-lookalikes", action="store_true")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    with open(args.labels, newline="", encoding="utf-8") as f:
        texts = sorted({normalise(r["text"]) for r in csv.DictReader(f) if r["text"].strip()})
    t0 = time.perf_counter()
    r = evaluate(texts, args.max_edits, not args.no_lookalikes)
    print(f"{r['labels']} distinct labels, max_edits {args.max_edits}, look-alikes "
          f"{'off' if args.no_lookalikes else 'on'} ({time.perf_counter() - t0:.0f} s)")
    print(f"kept: {r['kept']}/{r['misreads']} misreads (one look-alike swap or one dropped character) "
          f"still match their plate: {100 * r['kept_share']:.2f} %")
    print(f"a look-alike swap and a dropped character together: {r['swap_and_drop_kept']}/{r['swap_and_drop']} "
          f"still match: {100 * r['swap_and_drop_share']:.2f} %")
    print(f"wrongly matched: {r['wrong_pairs']}/{r['pairs']} ordered pairs of different labels: "
          f"{100 * r['wrong_share']:.3f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
