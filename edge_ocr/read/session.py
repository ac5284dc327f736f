"""One recogniser model's onnxruntime session: loaded once (CPU, explicit threads, graph
optimisation), its metadata read (charset, input size, normalisation, name, version: the keys of
``models/README.md``), and crops run through it in batches to per-frame class probabilities.
What the probabilities say is ``recognizer``'s business (decoding, re-reads)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .ctc import softmax
from .preprocess import PreprocessSpec, preprocess_batch

log = logging.getLogger(__name__)

META_PREFIX = "edge_ocr."
REQUIRED_META = ("charset", "input_height", "input_width", "mean", "std", "name", "version")

_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


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
    # logits are divided by this before the softmax (``edge_ocr.temperature``, fitted by
    # tools/calibrate.py): the network is overconfident, and a confidence a gate can put a
    # threshold on must be as often right as it says; 1.0 for a file without the key
    temperature: float = 1.0


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
        temperature = float(m.get("temperature", 1.0))
    except ValueError as exc:
        raise ModelError(f"{path}: bad number in model metadata: {exc}") from None
    if not m["charset"]:
        raise ModelError(f"{path}: model metadata {META_PREFIX}charset is empty")
    if not 0.05 <= temperature <= 20:  # nan fails this too
        raise ModelError(f"{path}: model metadata {META_PREFIX}temperature must be in 0.05..20, got {temperature}")
    return ModelInfo(str(path), m["name"], m["version"], m["charset"], spec, m, temperature)


class ModelSession:
    """A CRNN's onnxruntime session and what its file says about it.

    Args:
        path: ONNX file exported by tools/export_onnx.py (FP32 or INT8).
        threads: onnxruntime intra-op threads.
        graph_optimization: disable | basic | extended | all.
        batch_size: most crops per session call.
        trim: cut the padding off narrow crops when the model allows it (metadata
            ``edge_ocr.dynamic_width``); False always feeds the full model width.

    Raises:
        ModelError: the file is missing, not an ONNX model, or lacks the metadata.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int, graph_optimization: str, batch_size: int,
                 trim: bool = True) -> None:
        import onnxruntime as ort  # here, not at the top: config-only paths need not pay its import

        path = Path(path)
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
        self.batch_size = batch_size
        width_dim = self.session.get_inputs()[0].shape[-1]
        self.trim = int(self.info.meta.get("dynamic_width", 0)) if trim and not isinstance(width_dim, int) else 0
        log.info("model loaded: %s %s v%s, %d chars, input %dx%d%s, confidence temperature %g, %d thread(s)",
                 path.name, self.info.name, self.info.version, len(self.info.charset), self.info.spec.width,
                 self.info.spec.height, f" (narrower crops cut to a multiple of {self.trim})" if self.trim else "",
                 self.info.temperature, threads)

    @property
    def charset(self) -> str:
        return self.info.charset

    def logits(self, crops: Sequence[npt.NDArray]) -> npt.NDArray[np.float32]:
        """Crops (one batch) -> (N, T, C) raw network outputs, before the temperature."""
        x = preprocess_batch(list(crops), self.info.spec, self.trim)
        return self.session.run(None, {self.input_name: x})[0]

    def probabilities(self, crops: Sequence[npt.NDArray]) -> npt.NDArray[np.float32]:
        """Crops -> (N, T, C) per-frame class probabilities at the model's calibrated
        temperature (T of the widest batch; the steps a narrower batch did not compute are
        filled with blank)."""
        outs = []
        inv_t = np.float32(1.0 / self.info.temperature)
        for s in range(0, len(crops), self.batch_size):
            logits = self.logits(crops[s: s + self.batch_size])
            outs.append(softmax(logits * inv_t if inv_t != 1 else logits))
        if not outs:
            return np.zeros((0, 0, len(self.charset) + 1), np.float32)
        steps = max(o.shape[1] for o in outs)
        for k, o in enumerate(outs):
            if o.shape[1] < steps:  # a trimmed batch: extra steps are certain blanks, which decode to nothing
                pad = np.zeros((o.shape[0], steps - o.shape[1], o.shape[2]), np.float32)
                pad[:, :, 0] = 1.0
                outs[k] = np.concatenate([o, pad], axis=1)
        return np.concatenate(outs)
