"""The recogniser: owns one onnxruntime session and turns plate crops into readings.

load -> preprocess -> run -> decode. Everything the runtime needs to know about the model
(charset, input size, normalisation, name, version) is read from the ONNX file's own
metadata (``metadata_props``; keys documented in ``models/README.md``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..types import Reading
from .ctc import Decoded, beam_search, greedy_decode, softmax
from .preprocess import PreprocessSpec, preprocess_batch, recut_variants

log = logging.getLogger(__name__)

META_PREFIX = "edge_ocr."
REQUIRED_META = ("charset", "input_height", "input_width", "mean", "std", "name", "version")

_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "plate_crnn_int8.onnx"


class ModelError(Exception):
    """A model file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    version: str
    charset: str
    spec: PreprocessSpec
    meta: dict[str, str]


def read_model_info(path: str | os.PathLike[str], meta: dict[str, str]) -> ModelInfo:
    """Model metadata -> ModelInfo. Raises ModelError naming the missing or bad keys."""
    missing = [k for k in REQUIRED_META if META_PREFIX + k not in meta]
    if missing:
        raise ModelError(f"{path}: model metadata lacks {', '.join(META_PREFIX + k for k in missing)} "
                         "(export with tools/export_onnx.py)")
    m = {k[len(META_PREFIX):]: v for k, v in meta.items() if k.startswith(META_PREFIX)}
    try:
        spec = PreprocessSpec(
            height=int(m["input_height"]), width=int(m["input_width"]),
            mean=float(m["mean"]), std=float(m["std"]),
            clahe_clip=float(m.get("clahe_clip", 0.0)), clahe_tile=int(m.get("clahe_tile", 4)),
            pad_value=float(m.get("pad_value", 0.0)),
        )
    except ValueError as exc:
        raise ModelError(f"{path}: bad number in model metadata: {exc}") from None
    if not m["charset"]:
        raise ModelError(f"{path}: model metadata {META_PREFIX}charset is empty")
    return ModelInfo(str(path), m["name"], m["version"], m["charset"], spec, m)


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

    def __init__(self, model_path: str | os.PathLike[str] = DEFAULT_MODEL, threads: int = 1,
                 graph_optimization: str = "all", decoder: str = "greedy", beam_width: int = 8,
                 batch_size: int = 8, trim: bool = True, format_margin: float = 2.0) -> None:
        import onnxruntime as ort  # here, not at the top: config-only paths need not pay its import

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[graph_optimization])
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: not a loadable ONNX model: {first}") from None
        self.info = read_model_info(path, self.session.get_modelmeta().custom_metadata_map)
        self.input_name = self.session.get_inputs()[0].name
        classes = self.session.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes != len(self.info.charset) + 1:
            raise ModelError(f"{path}: output has {classes} classes but the charset has "
                             f"{len(self.info.charset)} characters (+1 blank)")
        self.decoder = decoder
        self.beam_width = beam_width
        self.batch_size = batch_size
        self.format_margin = format_margin
        self._masks: dict[frozenset[str], npt.NDArray[np.float32]] = {}
        width_dim = self.session.get_inputs()[0].shape[-1]
        self.trim = int(self.info.meta.get("dynamic_width", 0)) if trim and not isinstance(width_dim, int) else 0
        log.info("model loaded: %s %s v%s, %d chars, input %dx%d%s, %d thread(s)", path.name, self.info.name,
                 self.info.version, len(self.info.charset), self.info.spec.width, self.info.spec.height,
                 f" (narrower crops cut to a multiple of {self.trim})" if self.trim else "", threads)

    @property
    def charset(self) -> str:
        return self.info.charset

    def probabilities(self, crops: Sequence[npt.NDArray]) -> npt.NDArray[np.float32]:
        """Crops -> (N, T, C) per-frame class probabilities (T of the widest batch; the steps a
        narrower batch did not compute are filled with blank)."""
        outs = []
        for s in range(0, len(crops), self.batch_size):
            x = preprocess_batch(list(crops[s: s + self.batch_size]), self.info.spec, self.trim)
            logits = self.session.run(None, {self.input_name: x})[0]
            outs.append(softmax(logits))
        if not outs:
            return np.zeros((0, 0, len(self.charset) + 1), np.float32)
        steps = max(o.shape[1] for o in outs)
        for k, o in enumerate(outs):
            if o.shape[1] < steps:  # a trimmed batch: extra steps are certain blanks, which decode to nothing
                pad = np.zeros((o.shape[0], steps - o.shape[1], o.shape[2]), np.float32)
                pad[:, :, 0] = 1.0
                outs[k] = np.concatenate([o, pad], axis=1)
        return np.concatenate(outs)

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
