"""The recogniser: plate crops into readings.

load -> preprocess -> run (``session.ModelSession``: the onnxruntime session, the model's own
metadata, batches) -> decode (``ctc``: greedy or beam, the formats' patterns, the regions'
characters) -> re-read the unsure crops from re-cut copies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..types import Reading
from .ctc import Decoded, beam_search, greedy_decode
from .preprocess import recut_variants
from .session import ModelSession

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "plate_crnn_int8.onnx"


def _most_confident_discounted(reads: list[Reading]) -> Reading:
    """The most confident of several reads of one crop, its confidence multiplied by the share
    of reads that agree with it (spread evenly over its characters, so the overall confidence
    stays their product). Taking the maximum alone would inflate confidence: the most confident
    of six unsure reads is often wrong, and it would pass the publish threshold (on the synthetic
    test set: same accuracy, but 1 point more wrong readings published; with the discount, none)."""
    best = max(reads, key=lambda r: r.confidence)
    share = sum(r.text == best.text for r in reads) / len(reads)
    if share >= 1.0 or not best.text:
        return best
    f = share ** (1.0 / len(best.text))
    chars = tuple(c * f for c in best.char_confidences)
    return Reading(best.text, float(np.prod(chars)), chars)


class Recognizer:
    """Reads plate crops with one ONNX CRNN.

    Args:
        model_path: ONNX file exported by tools/export_onnx.py (FP32 or INT8).
        threads: onnxruntime intra-op threads.
        graph_optimization: disable | basic | extended | all.
        decoder: greedy | beam.
        beam_width: beams for the beam decoder.
        batch_size: most crops per session call.
        format_margin: with format patterns, how much less likely (natural log) a format-fitting
            reading may be than the free one and still win (2.0, chosen on the synthetic test set).
        trim: cut the padding off narrow crops when the model allows it (metadata
            ``edge_ocr.dynamic_width``); False always feeds the full model width.

    Raises:
        ModelError: the file is missing, not an ONNX model, or lacks the metadata.
    """

    def __init__(self, model_path: str | os.PathLike[str], threads: int, graph_optimization: str, decoder: str,
                 beam_width: int, batch_size: int, trim: bool = True, *, format_margin: float) -> None:
        self.model = ModelSession(model_path, threads, graph_optimization, batch_size, trim)
        self.info = self.model.info
        self.decoder = decoder
        self.beam_width = beam_width
        self.format_margin = format_margin
        self._masks: dict[frozenset[str], npt.NDArray[np.float32]] = {}

    @property
    def batch_size(self) -> int:
        return self.model.batch_size

    @property
    def trim(self) -> int:
        return self.model.trim

    @property
    def charset(self) -> str:
        return self.info.charset

    def logits(self, crops: Sequence[npt.NDArray]) -> npt.NDArray[np.float32]:
        """Crops (one batch) -> (N, T, C) raw network outputs, before the temperature."""
        return self.model.logits(crops)

    def probabilities(self, crops: Sequence[npt.NDArray]) -> npt.NDArray[np.float32]:
        """Crops -> (N, T, C) per-frame class probabilities (``session.ModelSession``)."""
        return self.model.probabilities(crops)

    def decode(self, probs: npt.NDArray[np.floating],
               patterns: Sequence[Sequence[set[str] | str]] | None = None) -> Decoded:
        """One crop's probabilities -> best reading. With ``patterns`` (per-position allowed
        characters, e.g. ``FormatRules.decoder_patterns``), the most probable reading that fits
        one of them, if its log-probability is within ``format_margin`` of the unconstrained
        beam's best; otherwise the unconstrained reading."""
        if patterns:
            best = Decoded("", 0.0, (), -np.inf)
            for pat in patterns:
                d = beam_search(probs, self.charset, self.beam_width, pattern=pat)
                if d.text and d.log_prob > best.log_prob:
                    best = d
            free = beam_search(probs, self.charset, self.beam_width)
            # a format-fitting reading wins only if the model finds it nearly as likely as its own
            # best: it mends a 1/I or 0/D look-alike, but does not force a vanity plate into a format
            if best.text and best.log_prob >= free.log_prob - self.format_margin:
                return best
            return free
        if self.decoder == "beam":
            return beam_search(probs, self.charset, self.beam_width)
        return greedy_decode(probs, self.charset)

    def class_mask(self, allowed: str | frozenset[str] | set[str] | None) -> npt.NDArray[np.float32] | None:
        """(C,) 0/1 weights of the output classes whose character is in ``allowed`` (blank
        always kept); ``None`` for no restriction. Cached: the region set rarely changes."""
        if allowed is None:
            return None
        key = frozenset(allowed)
        mask = self._masks.get(key)
        if mask is None:
            mask = np.array([1.0] + [1.0 if c in key else 0.0 for c in self.charset], np.float32)
            if len(self._masks) >= 16:  # a handful of region sets per process; never grows with input
                self._masks.clear()
            self._masks[key] = mask
        return mask

    def recognize(self, crops: Sequence[npt.NDArray],
                  patterns: Sequence[Sequence[set[str] | str]] | None = None,
                  retry_below: float = 0.0,
                  allowed: str | frozenset[str] | set[str] | None = None) -> list[Reading]:
        """Plate crops (BGR, BGRA, grey, 8/16-bit) -> one Reading each, in order.

        ``retry_below``: a crop read less confidently is read again from five re-cut copies
        (``preprocess.recut_variants``) and the most confident reading kept, discounted by
        disagreement; 0 never re-reads. Costs up to 6x for those crops only. The policy is the
        reader's (``reading.PlateReader``, decided when it is built), not the model's.
        ``allowed``: the only characters the decoder may emit (region-aware
        decoding, ``FormatRules.charset``); the model's probability of any other character is
        moved to the rest before decoding, so a Brazilian crop can never read as a Hanzi."""
        mask = self.class_mask(allowed)
        out = [self._reading(p, patterns, mask) for p in self.probabilities(crops)]
        unsure = [i for i, r in enumerate(out) if r.confidence < retry_below]
        if unsure:
            owners, variants = [], []
            for i in unsure:
                for v in recut_variants(crops[i]):
                    owners.append(i)
                    variants.append(v)
            reads: dict[int, list[Reading]] = {i: [out[i]] for i in unsure}
            for i, p in zip(owners, self.probabilities(variants), strict=True):
                reads[i].append(self._reading(p, patterns, mask))
            for i, rs in reads.items():
                out[i] = _most_confident_discounted(rs)
        return out

    def _reading(self, probs: npt.NDArray[np.floating],
                 patterns: Sequence[Sequence[set[str] | str]] | None,
                 mask: npt.NDArray[np.float32] | None = None) -> Reading:
        if mask is not None:
            probs = probs * mask
            probs = probs / np.maximum(probs.sum(-1, keepdims=True), 1e-12)
        d = self.decode(probs, patterns)
        return Reading(d.text, d.confidence, d.char_confidences)
