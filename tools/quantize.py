"""FP32 ONNX CRNN -> INT8 ONNX (static QDQ quantisation of the convolutional part).

    python -m tools.quantize models/plate_crnn_fp32.onnx models/plate_crnn_int8.onnx \
        --calib ../shared/data/plates-real-dev/crops/labels.csv

Steps: onnxruntime's ``quant_pre_process`` (shape inference + graph optimisation), then
``quantize_static`` in QDQ format, signed activations and weights (S8S8), per-channel weights,
calibrated on a few hundred preprocessed crops. Conv, the projection MatMul and the
pooling/activation ops around them are quantised statically; static quantisation has no LSTM
kernel, so the LSTM's weights are then quantised dynamically (``DynamicQuantizeLSTM``, int8
weights, activations quantised per call; ``--lstm float`` leaves it float). The first conv and
the classifier stay float (quantising them cost 16 points). The model's metadata is carried over.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge_ocr.read.preprocess import preprocess
from edge_ocr.read.session import read_model_info


class Crops(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray], name: str) -> None:
        self.it = iter([{name: b} for b in batches])

    def get_next(self):  # onnxruntime CalibrationDataReader interface
        return next(self.it, None)


def calibration_batches(model_path: Path, labels: Path | None, n_real: int, n_synth: int, seed: int) -> list[np.ndarray]:
    m = onnx.load(str(model_path))
    info = read_model_info(model_path, {p.key: p.value for p in m.metadata_props})
    imgs: list[np.ndarray] = []
    if labels:
        with open(labels, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        from tools.evaluate import row_split

        # calibrate only on crops the model was trained on, so the validation third stays unseen
        rows = [r for r in rows if row_split(r) == "train"]
        rng = np.random.default_rng(seed)
        for i in rng.permutation(len(rows))[:n_real]:
            img = cv2.imread(str(labels.parent / rows[int(i)]["file"]), cv2.IMREAD_COLOR)
            if img is not None:
                imgs.append(img)
    if n_synth:
        from tools import synth_mix

        imgs += [synth_mix.sample(seed + 1000, i)[0] for i in range(n_synth)]
    x = np.stack([preprocess(im, info.spec) for im in imgs])
    return [x[i: i + 16] for i in range(0, len(x), 16)]


def pools_as_slices(model: onnx.ModelProto) -> int:
    """Rewrite each 2x2/2 MaxPool as the Max of its four strided slices (same numbers).

    The first conv stays float, so the pool after it runs in float, and onnxruntime's plain
    NCHW MaxPool kernel took 0.37 ms of a 2.5 ms INT8 crop at width 128 on x86 (the FP32 graph
    runs it in the fast NCHWc layout instead, so only the INT8 model gets this). Four Slice and
    three Max take under 0.1 ms. Exact for even heights and widths, which the model always gets
    (32 high, widths a multiple of 8). Returns the pools rewritten.
    """
    g = model.graph
    rewritten = 0
    for pool in [n for n in g.node if n.op_type == "MaxPool"]:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pool.attribute}
        if list(attrs.get("kernel_shape", [])) != [2, 2] or list(attrs.get("strides", [])) != [2, 2] \
                or any(attrs.get("pads", [])) or attrs.get("ceil_mode", 0) or len(pool.output) != 1:
            continue
        x, y, base = pool.input[0], pool.output[0], pool.name or pool.output[0]
        consts = {
            "axes": [2, 3], "ends": [2**62, 2**62], "steps": [2, 2],
            "s00": [0, 0], "s01": [0, 1], "s10": [1, 0], "s11": [1, 1],
        }
        for k, v in consts.items():
            g.initializer.append(onnx.numpy_helper.from_array(np.array(v, np.int64), f"{base}_{k}"))
        nodes = [onnx.helper.make_node("Slice", [x, f"{base}_{s}", f"{base}_ends", f"{base}_axes", f"{base}_steps"],
                                       [f"{base}_{s}_out"], name=f"{base}_{s}") for s in ("s00", "s01", "s10", "s11")]
        nodes.append(onnx.helper.make_node("Max", [f"{base}_{s}_out" for s in ("s00", "s01", "s10", "s11")], [y],
                                           name=f"{base}_max"))
        idx = list(g.node).index(pool)
        g.node.remove(pool)
        for k, n in enumerate(nodes):
            g.node.insert(idx + k, n)
        rewritten += 1
    return rewritten


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fp32", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--calib", type=Path, default=None, help="labels.csv of crops for calibration")
    ap.add_argument("--calib-real", type=int, default=200, help="crops taken from --calib")
    ap.add_argument("--calib-synth", type=int, default=200, help="synthetic crops (tools/synth_mix.py)")
    ap.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    ap.add_argument("--percentile", type=float, default=99.99, help="with --method percentile: the activation "
                    "percentile taken as the range")
    # measured on the held-out crops (1.2.0): dynamic int8 LSTM weights keep the accuracy (88.4 % both),
    # halve the file (0.91 -> 0.47 MB) and cut ~10 % of the latency on x86
    ap.add_argument("--lstm", choices=["float", "dynamic"], default="dynamic",
                    help="LSTM weights: dynamic int8 (DynamicQuantizeLSTM) or left float")
    ap.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--ops", default="Conv,MaxPool,Relu,MatMul,Gemm", help="op types to quantise")
    # measured: quantising the first conv (raw normalised pixels) and the classifier cost ~16
    # points of exact-plate accuracy on the real validation crops; keeping both in float costs ~0
    ap.add_argument("--exclude", default="/cnn/cnn.0/Conv,/fc/MatMul", help="comma-separated node names kept in float")
    ap.add_argument("--activations", choices=["s8", "u8"], default="s8",
                    help="s8: S8S8, the format ARM64 kernels prefer; u8: U8S8, which x86 without VNNI runs faster")
    ap.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=True,
                    help="7-bit weights, so x86 without VNNI does not saturate (same results on every CPU)")
    ap.add_argument("--act-symmetric", action=argparse.BooleanOptionalAction, default=None,
                    help="symmetric activation ranges (default: yes for s8, no for u8)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    batches = calibration_batches(args.fp32, args.calib, args.calib_real if args.calib else 0, args.calib_synth,
                                  args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        sliced = Path(tmp) / "sliced.onnx"
        fp32 = onnx.load(str(args.fp32))
        pools = pools_as_slices(fp32)
        onnx.save(fp32, str(sliced))
        quant_pre_process(str(sliced), str(pre), skip_symbolic_shape=True)
        act_symmetric = args.activations == "s8" if args.act_symmetric is None else args.act_symmetric
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[args.method]
        stat = Path(tmp) / "static.onnx"
        quantize_static(
            str(pre), str(stat), Crops(batches, "image"),
            quant_format=QuantFormat.QDQ, weight_type=QuantType.QInt8,
            activation_type=QuantType.QInt8 if args.activations == "s8" else QuantType.QUInt8,
            per_channel=args.per_channel, calibrate_method=method,
            op_types_to_quantize=args.ops.split(","),
            nodes_to_exclude=[n for n in args.exclude.split(",") if n],
            extra_options={"ActivationSymmetric": act_symmetric, "CalibPercentile": args.percentile},
            # 7-bit weights: x86 CPUs without VNNI run int8 convs with 16-bit pairwise sums that
            # saturate on full-range weights, so x86 then reads differently from ARM64 and from
            # the QDQ reference (found by tools/arm64-check.sh)
            reduce_range=args.reduce_range,
        )
        if args.lstm == "dynamic":
            quantize_dynamic(str(stat), str(args.out), weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM"])
        else:
            stat.replace(args.out)
    src = onnx.load(str(args.fp32))
    q = onnx.load(str(args.out))
    del q.metadata_props[:]
    for p in src.metadata_props:
        q.metadata_props.add(key=p.key, value=p.value)
    q.metadata_props.add(key="edge_ocr.quantization",
                         value=f"static QDQ {args.activations.upper()}S8 reduce_range={args.reduce_range} per_channel={args.per_channel} calib={args.method} "
                               f"n={sum(len(b) for b in batches)} lstm={args.lstm} pools_as_slices={pools}")
    onnx.save(q, str(args.out))
    print(f"quantised {args.fp32} -> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), "
          f"calibrated on {sum(len(b) for b in batches)} crops")


if __name__ == "__main__":
    main()
