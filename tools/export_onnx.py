"""Checkpoint -> self-describing ONNX model, verified against PyTorch.

    python -m tools.export_onnx runs/main/last.pt models/plate_crnn_fp32.onnx --version 1.0.0

The exported graph takes ``image`` float32 (N, 1, 32, W) with W a multiple of 8 up to 160 and
returns ``logits`` (N, W/2, C) (class 0 = CTC blank). Everything the runtime needs is written to ``metadata_props`` under
``edge_ocr.*`` (see models/README.md). The tool reloads the file in onnxruntime, runs a batch
through both and fails if the largest difference exceeds ``--tol``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from edge_ocr.read.preprocess import PreprocessSpec
from tools.crnn import CHARSET, CRNN, count_macs, describe, from_checkpoint

SPEC = PreprocessSpec()


def metadata(name: str, version: str, training: str, charset: str, extra: dict | None = None,
             arch: dict | None = None) -> dict[str, str]:
    meta = {
        "charset": charset,
        "blank_index": "0",
        "input_height": str(SPEC.height),
        "input_width": str(SPEC.width),
        "mean": str(SPEC.mean),
        "std": str(SPEC.std),
        "pad_value": str(SPEC.pad_value),
        "clahe_clip": str(SPEC.clahe_clip),
        "clahe_tile": str(SPEC.clahe_tile),
        "color": "grey",
        "name": name,
        "version": version,
        "training_data": training,
        "label_normalisation": "uppercase; separators dropped; US plates write letter O as digit 0",
        "architecture": describe(arch),
        "macs": str(count_macs(**(arch or {}))),
        # the graph accepts any width that is a multiple of 8 up to input_width: the runtime
        # cuts the padding off a narrow crop instead of computing over it
        "dynamic_width": "8",
    }
    meta.update(extra or {})
    return {"edge_ocr." + k: v for k, v in meta.items()}


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for k, v in meta.items():
        if k in existing:
            existing[k].value = v
        else:
            p = model.metadata_props.add()
            p.key, p.value = k, v


def export(model: CRNN, out: Path, meta: dict[str, str], opset: int = 17) -> None:
    model.eval()
    dummy = torch.zeros(2, 1, SPEC.height, SPEC.width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (dummy,), str(out), input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch", 3: "width"}, "logits": {0: "batch", 1: "steps"}}, opset_version=opset,
            dynamo=False,
        )
    m = onnx.load(str(out))
    set_metadata(m, meta)
    onnx.checker.check_model(m)
    onnx.save(m, str(out))


def verify(model: CRNN, path: Path, batch: int = 8, seed: int = 0) -> float:
    """Max abs difference of logits between PyTorch and onnxruntime on random batches at
    the full width and at a narrow one."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for width in (SPEC.width, 64):
        x = rng.uniform(-1, 1, (batch, 1, SPEC.height, width)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"image": x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="train.py checkpoint (.pt)")
    ap.add_argument("out", type=Path, help="ONNX file to write")
    ap.add_argument("--name", default="plate_crnn")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--training", default="", help="one-line training data summary for the metadata")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args()

    ck = torch.load(args.checkpoint, map_location="cpu")
    charset = ck.get("charset", CHARSET)
    model = from_checkpoint(ck)
    model.eval()
    training = args.training or f"train.py step {ck.get('step')}; " + json.dumps(ck.get("args", {}))[:500]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(model, args.out, metadata(args.name, args.version, training, charset, arch=ck.get("arch")), args.opset)
    diff = verify(model, args.out)
    size = args.out.stat().st_size
    print(f"exported {args.out} ({size / 1e6:.2f} MB, opset {args.opset}); max |torch - onnxruntime| = {diff:.2e}")
    if diff > args.tol:
        sys.exit(f"verification failed: difference {diff:.2e} > tolerance {args.tol:.0e}")


if __name__ == "__main__":
    main()
